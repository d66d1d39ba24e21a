# Shared by the three harnesses. Runs inside the sample process *before* any user code, so
# everything the verdict depends on is bound here, out of reach of later monkey-patching:
# `os.write`, `sys.exc_info` and the exception classes are captured as locals, and results
# go only to the verdict channel (fd 3), each line prefixed by this run's nonce.


def make_reporter(res_fd, nonce, write=os.write):
    prefix = nonce + b" "

    def report(line):
        try:
            write(res_fd, prefix + line.encode("utf-8", "replace") + b"\n")
        except:  # noqa: E722  the sample closed fd 3: the parent then sees no verdict (failure)
            pass

    return report


def make_classifier(
    assertion=AssertionError, memory=MemoryError, exc_info=sys.exc_info, issub=issubclass
):
    def classify():
        t = exc_info()[0]
        if t is not None and issub(t, assertion):
            return "wrong_answer"
        if t is not None and issub(t, memory):
            return "memory_exceeded"
        return "runtime_error"

    return classify


def one_line(exc):
    try:
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
    except:  # noqa: E722
        return "error"


def compile_program(program, report):
    try:
        return compile(program, "<program>", "exec", dont_inherit=True)
    except:  # noqa: E722  SyntaxError, ValueError (null bytes), RecursionError, MemoryError
        report("compile_error " + one_line(sys.exc_info()[1]))
        return None
