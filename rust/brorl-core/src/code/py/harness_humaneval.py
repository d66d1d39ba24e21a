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
    g = program_globals("__brorl_candidate__")
    exec(code, g)  # an exception here ends the process: the test process sees EOF
    fn = lookup(g, job["entry"])
    while True:
        frame = rf(5, read, _FRAME_LIMIT)
        if frame is None:
            return 0
        try:
            args, kwargs = dec(frame)
            value = fn(*args, **kwargs)
            try:
                reply = enc(("ok", value), True)
            except plain_error as e:
                reply = enc(("raise", "TypeError", f"the candidate returned something that is not plain data: {e}"))
        except BaseException as e:  # noqa: B036
            reply = enc(("raise", type(e).__name__, str(e)[:1000]))
        sf(5, reply, write)
