# kind="call": calls `entry_point(*args)` (or `Class.method`, on a fresh instance) once per
# test and reports the JSON of the return value. The expected values never enter the
# sandbox: the Rust parent compares, so a forged report can only claim an output.


class _CallTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _CallTimeout()


def run_call(job, res_fd, nonce):
    program, args_json, entry, timeout_s = job
    report = make_reporter(res_fd, nonce)
    classify = make_classifier()
    dumps, loads, setitimer = json.dumps, json.loads, signal.setitimer
    timeout_cls, real = _CallTimeout, signal.ITIMER_REAL
    all_args = [loads(a) for a in args_json]  # parsed before user code can touch `json`
    code = compile_program(program, report)
    if code is None:
        return 0
    g = {"__name__": "__brorl_candidate__"}
    try:
        exec(code, g)
        if "." in entry:
            cls_name, method = entry.split(".", 1)
            fn = getattr(g[cls_name](), method)
        else:
            fn = g[entry]
    except:  # noqa: E722
        status = classify()
        for i in range(len(all_args)):
            report(f"test {i} {status}")
        return 0
    signal.signal(signal.SIGALRM, _alarm)
    for i, args in enumerate(all_args):
        try:
            setitimer(real, timeout_s)
            value = fn(**args) if type(args) is dict else fn(*args)
            setitimer(real, 0)
        except:  # noqa: E722
            setitimer(real, 0)
            t = sys.exc_info()[0]
            report(f"test {i} " + ("timeout" if t is timeout_cls else classify()))
            continue
        try:
            encoded = dumps(value, allow_nan=False)
        except:  # noqa: E722  not JSON (a set, an object, NaN): cannot equal a JSON answer
            report(f"test {i} wrong_answer")
            continue
        report(f"test {i} returned {encoded}")
    return 0
