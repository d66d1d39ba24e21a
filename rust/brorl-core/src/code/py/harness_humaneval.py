# kind="humaneval": two processes forked from the template. The test process ("check") runs
# the dataset's trusted code (the prompt when given, then the tests) and calls `check` with a
# proxy `candidate`; the candidate process ("cand") runs the program and answers each call.
# Only plain data crosses (see codec.py), decoded by the test process into fresh builtin
# objects, so nothing the program does can reach the test's builtins, frames, comparisons or
# its result channel. The verdict is the word the test process writes on its own channel.

import builtins as _builtins

# The candidate's exception is re-raised in the test process by builtin class name, so tests
# that expect e.g. ValueError still work. StopIteration and StopAsyncIteration are left out: raised
# from inside `map`, `filter`, `zip` or `next(it, default)` they would silently end the test's
# iteration (`assert all(map(check_one, cases))` over no cases is true), so they arrive as
# RuntimeError, as PEP 479 does for a generator.
_SAFE_EXCEPTIONS = {
    name: obj
    for name, obj in vars(_builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, (StopIteration, StopAsyncIteration))
}
_SAFE_EXCEPTIONS["StopIteration"] = _SAFE_EXCEPTIONS["StopAsyncIteration"] = RuntimeError
# SystemExit, KeyboardInterrupt, GeneratorExit raised by the candidate: in one process they
# would pass through the test's `except Exception` and end it.
_FATAL_EXCEPTIONS = frozenset(
    name
    for name, obj in vars(_builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException) and not issubclass(obj, Exception)
)
_FRAME_LIMIT = 64 << 20


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin class (its own class, say):
    catchable by the test, as it would be in one process."""


class CandidateGone(BaseException):
    """The candidate process failed to answer (exited, was killed, sent something that is not
    plain data). Not an Exception: in one process the test would have died with it, so a test's
    `except Exception` around a call must not turn the candidate's exit into a pass."""


class CandidateOutOfMemory(CandidateGone):
    """The test process ran out of memory taking in the candidate's reply: a MemoryError there
    would be an Exception, and a test's `except Exception` around the call would skip the case."""


def run_check():
    job = read_job()
    put = make_writer(4)
    if "args" in job:
        return drive_calls(job, put)
    status = "runtime_error"
    try:
        g = {"__name__": "__brorl_check__"}
        if job.get("prompt"):
            exec(compile(job["prompt"], "<prompt>", "exec", dont_inherit=True), g)
        exec(compile(job["tests"], "<tests>", "exec", dont_inherit=True), g)
        candidate = make_proxy(5, job["entry"])
        name = job["entry"].split(".")[0]
        g[name] = candidate  # tests that call the entry point by its name reach the proxy too
        ran = g["check"](candidate)
        if type(ran).__name__ in ("generator", "coroutine", "async_generator"):
            # `async def check` or a `yield` in it: calling it ran none of its assertions
            ran.close()
            raise TypeError("check() must be a plain function: it returned a " + type(ran).__name__)
        status = "passed"
    except AssertionError:
        status = "wrong_answer"
        traceback.print_exc()
    except (MemoryError, CandidateOutOfMemory):
        status = "memory_exceeded"
    except BaseException:  # noqa: B036
        traceback.print_exc()
    put(status.encode())
    return 0


def make_proxy(fd, entry):
    read, write = os.read, os.write

    def candidate(*args, **kwargs):
        try:
            request = encode((args, kwargs))
        except PlainError as e:
            raise TypeError(f"{entry}: arguments must be plain data for the candidate process: {e}") from None
        try:
            send_frame(fd, request, write)
            frame = recv_frame(fd, read, _FRAME_LIMIT)
        except (OSError, PlainError):  # gone, or a frame header over the limit
            frame = None
        except MemoryError:
            raise CandidateOutOfMemory(f"{entry}: out of memory receiving the reply") from None
        if frame is None:
            raise CandidateGone(f"{entry}: the candidate process is gone")
        try:
            reply = decode(frame)
        except MemoryError:
            raise CandidateOutOfMemory(f"{entry}: out of memory decoding the reply") from None
        except Exception:  # noqa: BLE001 - whatever the frame, the candidate broke the protocol
            reply = None
        if type(reply) is tuple and len(reply) == 2 and reply[0] == "ok":
            return reply[1]
        if type(reply) is tuple and len(reply) == 3 and reply[0] == "raise" and type(reply[1]) is str:
            if reply[1] in _FATAL_EXCEPTIONS:
                raise CandidateGone(f"{entry}: the candidate raised {reply[1]}")
            cls = _SAFE_EXCEPTIONS.get(reply[1], CandidateError)
            raise cls(str(reply[2]))
        raise CandidateGone(f"{entry}: malformed reply from the candidate process")

    candidate.__name__ = entry.split(".")[-1]
    return candidate


def run_cand():
    job = read_job()
    put = make_writer(4)
    code = compile_program(job["program"], put)
    os.close(4)
    if code is None:
        return 0
    read, write, enc, dec, plain_error = os.read, os.write, encode, decode, PlainError
    sf, rf = send_frame, recv_frame
    # kind="call" (`drive_calls` on the other end): say when the program has run, so that its
    # import time is not counted against the first call, and stop each call at `timeout_s` (this
    # timer is only a courtesy to the program: the driver times every call on its own clock).
    driven = "timeout_s" in job
    timeout_s = float(job["timeout_s"]) if driven else 0.0
    setitimer, real = signal.setitimer, signal.ITIMER_REAL
    g = program_globals("__brorl_candidate__")
    if driven:
        try:
            exec(code, g)
            fn = lookup(g, job["entry"])
            ready = ("ok", None)
        except BaseException as e:  # noqa: B036
            fn, ready = None, ("raise", type(e).__name__, "")
        sf(5, enc(ready), write)
        if fn is None:
            return 0
        signal.signal(signal.SIGALRM, _alarm)
    else:
        exec(code, g)  # an exception here ends the process: the test process sees EOF
        fn = lookup(g, job["entry"])
    while True:
        frame = rf(5, read, _FRAME_LIMIT)
        if frame is None:
            return 0
        try:
            args, kwargs = dec(frame)
            if driven:
                setitimer(real, timeout_s)
            value = fn(*args, **kwargs)
            if driven:
                setitimer(real, 0)
            try:
                reply = enc(("ok", value), True)
            except plain_error as e:
                reply = enc(("not_plain",) if driven else
                            ("raise", "TypeError", f"the candidate returned something that is not plain data: {e}"))
        except BaseException as e:  # noqa: B036
            if driven:
                setitimer(real, 0)
            reply = enc(("raise", type(e).__name__, str(e)[:1000]))
        sf(5, reply, write)


class _CallTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _CallTimeout()


# A call of kind="call" answered later than its `timeout_s` by this much is a timeout for the
# driver (the candidate's own timer, when the program leaves it alone, stops it at `timeout_s`).
_CALL_GRACE_S = 0.5


class _Late(Exception):
    pass


def _recv_by(fd, deadline):
    """The next frame on `fd` (None at EOF), raising `_Late` once `deadline` (monotonic) passes
    before it is complete; no deadline for None."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)

    def read(fd_, n):
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000) + 1)):
                raise _Late()
        return os.read(fd_, n)

    return recv_frame(fd, read, _FRAME_LIMIT)


def drive_calls(job, put):
    """kind="call", brorl's side (a test process, run.rs `call`): sends each call's arguments to
    the candidate process and times its answer on this process's own clock, out of the
    program's reach, so no handler, `setitimer` or `except BaseException` in the program buys a
    call more than `timeout_s`. A call answered late is a timeout, and so is every later one
    (the candidate is still busy with it). Writes `R<index>:<value>` (the value re-encoded from
    the plain data received) or `E<index>:<status>;` on its own result channel."""
    all_args = [json.loads(a) for a in json.loads(job["args"])]
    limit = float(job["timeout_s"]) + _CALL_GRACE_S
    write = os.write

    def rest(i, status):
        for j in range(i, len(all_args)):
            put(b"E%d:%s;" % (j, status))
        return 0

    def reply_of(frame):
        try:
            return decode(frame)
        except (PlainError, MemoryError):
            return None

    try:
        ready = _recv_by(5, None)  # the program's own run: bounded by the run's wall clock only
    except (OSError, PlainError):
        ready = None
    ready = None if ready is None else reply_of(ready)
    if ready != ("ok", None) or type(ready) is not tuple:
        failed = type(ready) is tuple and len(ready) == 3 and ready[0] == "raise" and ready[1] == "MemoryError"
        return rest(0, b"memory_exceeded" if failed else b"runtime_error")
    for i, args in enumerate(all_args):
        try:
            send_frame(5, encode(((), args) if type(args) is dict else (tuple(args), {})), write)
        except PlainError:  # nested deeper than plain data goes
            put(b"E%d:runtime_error;" % i)
            continue
        except OSError:
            return rest(i, b"runtime_error")
        try:
            frame = _recv_by(5, time.monotonic() + limit)
        except _Late:
            return rest(i, b"timeout")
        except (OSError, PlainError):
            frame = None
        reply = None if frame is None else reply_of(frame)
        if type(reply) is not tuple or not reply:
            return rest(i, b"runtime_error")  # gone, or broke the protocol
        if reply[0] == "ok" and len(reply) == 2:
            try:
                put(b"R%d:" % i + encode(reply[1]))
            except OSError:  # over the file-size limit: every later record is lost too
                return 0
        elif reply[0] == "not_plain" and len(reply) == 1:
            put(b"E%d:wrong_answer;" % i)  # cannot equal an expected value
        elif reply[0] == "raise" and len(reply) == 3 and type(reply[1]) is str:
            name = reply[1]
            put(b"E%d:%s;" % (i, b"timeout" if name == "_CallTimeout" else
                                 b"memory_exceeded" if name == "MemoryError" else b"runtime_error"))
        else:
            return rest(i, b"runtime_error")
    return 0
