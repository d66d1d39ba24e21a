# kind="humaneval": `program` (prompt + completion) and the test source defining
# `check(candidate)` run in one process; the test passes only if `check(entry_point)` returns.
# A bare `except:` (no name lookup that user code could redirect) turns every exception,
# SystemExit included, into a failure; `sys.exit`/`os._exit` before the verdict leave the
# verdict channel without a line, which the parent scores as a failure too.


def run_humaneval(job, res_fd, nonce):
    program, tests, entry = job
    report = make_reporter(res_fd, nonce)
    classify = make_classifier()
    settrace, setprofile = sys.settrace, sys.setprofile
    code = compile_program(program, report)
    if code is None:
        return 0
    try:
        test_code = compile(tests, "<tests>", "exec", dont_inherit=True)
    except:  # noqa: E722
        report("test 0 runtime_error")
        return 0
    g = {"__name__": "__brorl_candidate__"}
    try:
        exec(code, g)
        exec(test_code, g)
        candidate = g[entry]
        check = g["check"]
        settrace(None)  # a trace hook installed by the program could skip asserts
        setprofile(None)
        check(candidate)
        status = "passed"
    except:  # noqa: E722
        status = classify()
    report("test 0 " + status)
    return 0
