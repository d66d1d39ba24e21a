# kind="stdio": runs `program` as __main__ with the test input on stdin. brorl reads the exit
# status and stdout once the process is gone and compares; the expected output never enters
# the sandbox. The result channel only carries a compile error and is closed before user code.


def run_stdio():
    job = read_job()
    put = make_writer(4)
    system_exit, memory_error, exc_info = SystemExit, MemoryError, sys.exc_info
    print_exc, stdout = traceback.print_exc, sys.stdout
    code = compile_program(job["program"], put)
    os.close(4)
    if code is None:
        return 0
    status = 0
    try:
        exec(code, program_globals("__main__"))
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
            if not stream.closed:  # as the interpreter at exit: a stream the program closed is done
                stream.flush()
        except:  # noqa: E722
            status = status or 1
    return status


HARNESSES = {"check": run_check, "cand": run_cand, "call": run_call, "stdio": run_stdio}
