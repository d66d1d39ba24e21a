# kind="call": calls `entry_point(*args)` (or `Class.method`, on a fresh instance) once per
# test and writes each return value as plain data on the result channel:
# `R<index>:<value>` or `E<index>:<status>;`. brorl compares the values with the expected
# ones, which never enter the sandbox: whatever is written here can only claim an output.


class _CallTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _CallTimeout()


def _no_timer(which, seconds):
    pass


# The encodings of the false plain values (`assert not candidate(...)`).
_FALSY = frozenset((b"N", b"F", b"i0;", b"f" + _struct.pack("<d", 0.0), b"f" + _struct.pack("<d", -0.0),
                    b"s0:", b"b0:", b"l0:", b"t0:", b"S0:", b"Z0:", b"d0:"))


# A literal test's candidate raised an exception of this name: the status the test process gives.
_RAISED = {"AssertionError": b"wrong_answer", "MemoryError": b"memory_exceeded"}


def run_call():
    job = read_job()
    put = make_writer(4)
    # A humaneval test read as calls (run.rs `humaneval_literal`), one letter per call: `t`
    # where only the value's truth is checked, else `v`. It gets what the test process's proxy
    # would: no timer but the run's wall clock (one here would reset the program's own
    # `signal.alarm`), a value one level down and at most `_FRAME_LIMIT` (the proxy's reply is
    # `("ok", value)`), any true value for `t` (the channel would cap a large one), and a value
    # that is not plain data is an error.
    literal = job.get("literal")
    enc, plain_error = encode, PlainError
    setitimer = signal.setitimer if literal is None else _no_timer
    timeout_cls, real = _CallTimeout, signal.ITIMER_REAL
    timeout_s = float(job["timeout_s"]) if literal is None else 0.0
    all_args = [json.loads(a) for a in json.loads(job["args"])]
    not_plain = b"wrong_answer" if literal is None else b"runtime_error"
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
    if literal is None:
        signal.signal(signal.SIGALRM, _alarm)
    for i, args in enumerate(all_args):
        try:
            setitimer(real, timeout_s)
            value = fn(**args) if type(args) is dict else fn(*args)
            setitimer(real, 0)
        except timeout_cls:
            fail(i, b"timeout")
            continue
        except BaseException as e:  # noqa: B036
            setitimer(real, 0)
            if literal is None:
                fail(i, b"memory_exceeded" if isinstance(e, MemoryError) else b"runtime_error")
            else:
                # What the test process makes of it: the builtin exception of that name
                # (`harness_humaneval.py`), so an `AssertionError` fails the assertion.
                fail(i, _RAISED.get(type(e).__name__, b"runtime_error"))
            continue
        try:
            if literal is None:
                data = enc(value, True)
            else:
                parts = []
                _enc(value, parts.append, 1, True)
                data = b"".join(parts)
                if len(data) + 8 > _FRAME_LIMIT:
                    raise plain_error("over the proxy's frame limit")
                if literal[i] == "t":
                    data = b"F" if data in _FALSY else b"T"
        except plain_error:
            fail(i, not_plain)  # not plain data: cannot equal an expected value
            continue
        put(b"R%d:" % i + data)
    return 0
