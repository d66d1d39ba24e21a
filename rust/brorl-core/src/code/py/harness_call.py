# kind="call": calls `entry_point(*args)` (or `Class.method`, on a fresh instance) once per
# test and writes each return value as plain data on the result channel:
# `R<index>:<value>` or `E<index>:<status>;`. brorl compares the values with the expected
# ones, which never enter the sandbox: whatever is written here can only claim an output.


class _CallTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _CallTimeout()


def run_call():
    job = read_job()
    put = make_writer(4)
    enc, plain_error, setitimer = encode, PlainError, signal.setitimer
    timeout_cls, real, timeout_s = _CallTimeout, signal.ITIMER_REAL, float(job["timeout_s"])
    all_args = [json.loads(a) for a in json.loads(job["args"])]
    # a humaneval test read as calls: a value that is not plain data is an error there
    not_plain = job.get("not_plain", "wrong_answer").encode()
    code = compile_program(job["program"], put)
    if code is None:
        return 0
    g = program_globals("__brorl_candidate__")

    def fail(i, status):
        put(b"E%d:%s;" % (i, status))

    try:
        exec(code, g)
        fn = lookup(g, job["entry"])
    except MemoryError:
        for i in range(len(all_args)):
            fail(i, b"memory_exceeded")
        return 0
    except:  # noqa: E722
        for i in range(len(all_args)):
            fail(i, b"runtime_error")
        return 0
    signal.signal(signal.SIGALRM, _alarm)
    for i, args in enumerate(all_args):
        try:
            setitimer(real, timeout_s)
            value = fn(**args) if type(args) is dict else fn(*args)
            setitimer(real, 0)
        except timeout_cls:
            fail(i, b"timeout")
            continue
        except MemoryError:
            setitimer(real, 0)
            fail(i, b"memory_exceeded")
            continue
        except:  # noqa: E722
            setitimer(real, 0)
            fail(i, b"runtime_error")
            continue
        try:
            data = enc(value, True)
        except plain_error:
            fail(i, not_plain)  # not plain data: cannot equal an expected value
            continue
        put(b"R%d:" % i + data)
    return 0
