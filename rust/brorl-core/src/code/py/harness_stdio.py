# kind="stdio": runs `program` as __main__ with the test input on stdin. The verdict is the
# exit status and stdout, both read by the parent; the expected output never enters the
# sandbox. The verdict channel is closed before user code runs: it only carries compile errors.


def run_stdio(program, res_fd, nonce):
    report = make_reporter(res_fd, nonce)
    system_exit, memory_error, exc_info = SystemExit, MemoryError, sys.exc_info
    print_exc, stdout = traceback.print_exc, sys.stdout
    code = compile_program(program, report)
    if code is None:
        return 0
    os.close(res_fd)
    status = 0
    try:
        exec(code, {"__name__": "__main__"})
    except:  # noqa: E722
        t, e = exc_info()[:2]
        if t is not None and issubclass(t, system_exit):
            status = 0 if e.code is None or e.code == 0 else 1
        elif t is not None and issubclass(t, memory_error):
            status = 102
        else:
            try:
                print_exc()
            except:  # noqa: E722
                pass
            status = 1
    for stream in (sys.stdout, stdout):
        try:
            stream.flush()
        except:  # noqa: E722
            status = status or 1
    return status
