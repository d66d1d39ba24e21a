# Shared by the harnesses. Descriptors in a sample: 0-2 stdin/stdout/stderr (memory files
# brorl reads once the sample is gone), 3 the job (JSON written by brorl), 4 the result
# channel (a memory file only this process holds), 5 (humaneval) the socket between the test
# process and the candidate process.


def read_job():
    """The job brorl wrote on descriptor 3: per field, `name size\n` then `size` bytes of UTF-8
    (run.rs `job`); cheaper in a fresh fork than JSON, whose decoder touches many more pages."""
    data = os.pread(3, os.fstat(3).st_size, 0)
    os.close(3)
    job, i, end = {}, 0, len(data)
    while i < end:
        j = data.index(b"\n", i)
        name, _, size = data[i:j].partition(b" ")
        i = j + 1 + int(size)
        job[name.decode()] = data[j + 1:i].decode()
    return job


def make_writer(fd, write=os.write):
    def put(data):
        view = memoryview(data)
        while view:
            view = view[write(fd, view):]

    return put


def one_line(exc):
    try:
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
    except:  # noqa: E722
        return "error"


def compile_program(program, put):
    """The compiled program, or None after reporting `C<len>:<message>` on the result channel."""
    try:
        return compile(program, "<program>", "exec", dont_inherit=True)
    except:  # noqa: E722  SyntaxError, ValueError (null bytes), RecursionError, MemoryError
        msg = one_line(sys.exc_info()[1]).encode("utf-8", "replace")
        try:
            put(b"C%d:" % len(msg) + msg)
        except OSError:
            pass
        return None


def program_globals(name):
    """The globals the program runs in: those of a module registered under `name`, so that
    what finds a function or class through its module (pickle, and so multiprocessing's
    `Pool.map(f, ...)`) finds the program's own (a bare dict made both fail)."""
    module = type(sys)(name)
    sys.modules[name] = module
    return module.__dict__


def lookup(g, entry):
    if "." in entry:
        cls_name, method = entry.split(".", 1)
        return getattr(g[cls_name](), method)
    return g[entry]
