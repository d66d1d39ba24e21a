# A humaneval test read as calls (run.rs `humaneval_literal`): calls `entry_point(*args)` once
# per literal assertion and writes each return value as plain data on the result channel:
# `R<index>:<value>` or `E<index>:<status>;`. brorl judges the assertions, whose expected values
# never enter the sandbox: whatever is written here can only claim an output. (kind="call" runs
# in two processes instead: `drive_calls` in `harness_humaneval.py`.)


# The encodings of the false plain values (`assert not candidate(...)`).
_FALSY = frozenset((b"N", b"F", b"i0;", b"f" + _struct.pack("<d", 0.0), b"f" + _struct.pack("<d", -0.0),
                    b"s0:", b"b0:", b"l0:", b"t0:", b"S0:", b"Z0:", b"d0:"))


# A literal test's candidate raised an exception of this name: the status the test process gives.
_RAISED = {"AssertionError": b"wrong_answer", "MemoryError": b"memory_exceeded"}


def run_call():
    job = read_job()
    put = make_writer(4)
    # One letter per call: `t` where only the value's truth is checked, else `v`. A call gets
    # what the test process's proxy would: no timer but the run's wall clock (one here would
    # reset the program's own `signal.alarm`), a value one level down and at most `_FRAME_LIMIT`
    # (the proxy's reply is `("ok", value)`), any true value for `t` (the channel would cap a
    # large one), and a value that is not plain data is an error.
    literal = job["literal"]
    plain_error = PlainError
    all_args = [json.loads(a) for a in json.loads(job["args"])]
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
    for i, args in enumerate(all_args):
        try:
            value = fn(**args) if type(args) is dict else fn(*args)
        except BaseException as e:  # noqa: B036
            # What the test process makes of it: the builtin exception of that name
            # (`harness_humaneval.py`), so an `AssertionError` fails the assertion.
            fail(i, _RAISED.get(type(e).__name__, b"runtime_error"))
            continue
        try:
            parts = []
            _enc(value, parts.append, 1, True)
            data = b"".join(parts)
            if len(data) + 8 > _FRAME_LIMIT:
                raise plain_error("over the proxy's frame limit")
            if literal[i] == "t":
                data = b"F" if data in _FALSY else b"T"
        except plain_error:
            fail(i, b"runtime_error")  # not plain data: an error, as in the test process
            continue
        put(b"R%d:" % i + data)
    return 0
