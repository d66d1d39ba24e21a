# brorl code worker ("zygote"). brorl-core starts one per worker inside the sandbox envelope
# (its own pid, mount and network namespaces where the kernel allows, an unprivileged uid, an
# empty environment) and keeps it warm: each sample is a fork of this interpreter, so a sample
# pays for a fork instead of an interpreter start-up.
#
# Protocol on fds 0 (requests) and 1 (responses): frames of a 4-byte little-endian length and
# a UTF-8 JSON body. After the imports the worker sends {"ready": ...}; then one response per
# request. The sample's verdict travels on a dedicated channel (a memory file at fd 3 in the
# sample, read here once the sample is gone), every line prefixed by a random nonce drawn here
# for that run; stdout/stderr are memory files only ever shown as excerpts, so printing
# anything proves nothing.
import os
import sys
import json
import struct
import select
import signal
import resource
import time

# Modules sample programs commonly import, loaded once here so each fork inherits them. Not
# `threading` or `random`: their at-fork hooks would run on every fork, and every module
# makes the worker bigger and so each fork slower; samples import the rest themselves.
import bisect, collections, copy, functools, heapq, io, itertools, math  # noqa: E401,F401
import operator, re, string, traceback, typing  # noqa: E401,F401

IS_INIT = os.getpid() == 1  # pid 1 of our own pid namespace: kill(-1) reaches only samples
LIBC = None


def _prctl(option, value):
    global LIBC
    import ctypes

    if LIBC is None:
        LIBC = ctypes.CDLL(None, use_errno=True)
    return LIBC.prctl(option, ctypes.c_ulong(value), 0, 0, 0)


def read_exact(fd, n):
    chunks = []
    while n:
        b = os.read(fd, n)
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def read_frame(fd):
    head = read_exact(fd, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    return read_exact(fd, n)


def write_frame(fd, obj):
    body = json.dumps(obj).encode()
    data = struct.pack("<I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


def children_of(pid):
    # Used only outside a pid namespace: this worker is a child subreaper, so every orphaned
    # descendant of a sample is re-parented to it and shows up here.
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def sweep():
    """Kill and reap every process a sample left behind (none may outlive its sample)."""
    # Called once the sample itself is reaped: its orphans were re-parented to us (pid 1 of
    # the namespace, or a child subreaper), so no children at all means nothing is left.
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    if IS_INIT:
        try:
            os.kill(-1, signal.SIGKILL)  # inside our pid namespace: every process but us
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    me = os.getpid()
    for _ in range(10000):
        kids = children_of(me)
        if not kids:
            return
        for k in kids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(k, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for _ in kids:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


def rmtree(path):
    # The sample may have left read-only or unreadable directories; fix modes on the way down.
    try:
        os.chmod(path, 0o700)
        names = os.listdir(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for name in names:
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            rmtree(p)
        else:
            os.unlink(p)
    os.rmdir(path)


class Limits:
    def __init__(self, req):
        self.memory = int(req["memory_bytes"])
        self.nproc = int(req["nproc"])
        self.fsize = int(req["fsize_bytes"])
        self.nofile = int(req["nofile"])
        self.out_cap = int(req["out_cap"])
        self.err_cap = int(req["err_cap"])

    def apply(self, wall_s):
        cpu = int(wall_s) + 1
        for res, val in (
            (resource.RLIMIT_CORE, (0, 0)),
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_FSIZE, (self.fsize, self.fsize)),
            (resource.RLIMIT_NOFILE, (self.nofile, self.nofile)),
            (resource.RLIMIT_NPROC, (self.nproc, self.nproc)),
            (resource.RLIMIT_AS, (self.memory, self.memory)),
        ):
            resource.setrlimit(res, val)


def capture(fd, cap):
    """(first `cap` bytes written to memory file `fd`, whether more was written)."""
    size = os.fstat(fd).st_size
    return os.pread(fd, min(cap, size), 0), size > cap


def run_child(harness, job, limits, wall_s, workdir, stdin_data, nonce):
    """Forks one sandboxed sample and supervises it until it ends, times out or is killed.

    Returns its wait status, whether it timed out, stdout (capped) and whether more was
    written, stderr (capped) and the verdict lines that carry this run's nonce. Everything the
    sample started is dead and reaped on return."""
    # stdout, stderr and the verdict go to memory files read once the sample is gone: this
    # worker sleeps until then (one wake-up per sample), RLIMIT_FSIZE bounds what they hold,
    # and a sample that rewinds or truncates them can only erase its own output.
    out_fd = os.memfd_create("stdout")
    err_fd = os.memfd_create("stderr")
    res_fd = os.memfd_create("verdict")
    if stdin_data is None:
        in_fd = os.dup(DEV_NULL)
    else:
        in_fd = os.memfd_create("stdin")
        os.write(in_fd, stdin_data.encode())
        os.lseek(in_fd, 0, os.SEEK_SET)
    os.mkdir(workdir, 0o700)
    top_fd = max(TOP_FD, out_fd, err_fd, res_fd, in_fd)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        status = 120
        own = ()
        try:
            os.setpgid(0, 0)
            os.dup2(in_fd, 0)
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            os.dup2(res_fd, 3)
            os.closerange(4, top_fd + 1)
            os.chdir(workdir)
            os.umask(0o077)
            # sys.stdin/stdout/stderr already wrap fds 0-2 and hold nothing buffered (this
            # worker only uses os.read/os.write), so they now read and write the sample's.
            own = (sys.stdout, sys.stderr)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            limits.apply(wall_s)
            status = harness(job, 3, nonce)
        finally:
            for stream in own:
                try:
                    stream.flush()  # the excerpts shown for diagnosis
                except:  # noqa: E722
                    pass
            os._exit(status)
    os.close(in_fd)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    timed_out = not poller.poll(max(1, int(wall_s * 1000) + 1))
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, wstatus = os.waitpid(pid, 0)
    elapsed = time.monotonic() - start
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    sweep()
    stdout, truncated = capture(out_fd, limits.out_cap)
    stderr, _ = capture(err_fd, limits.err_cap)
    verdict, _ = capture(res_fd, 1 << 20)
    for fd in (out_fd, err_fd, res_fd, pidfd):
        os.close(fd)
    rmtree(workdir)
    if IS_INIT:
        # Our /tmp and /dev/shm are private to this worker: empty them, so nothing one sample
        # leaves there (say, a file of answers) is seen by the next.
        for shared in (WORK_BASE, "/dev/shm"):
            try:
                for name in os.listdir(shared):
                    rmtree(os.path.join(shared, name))
            except OSError:
                pass
    lines = []
    prefix = nonce + b" "
    for line in verdict.split(b"\n"):
        if line.startswith(prefix):
            lines.append(line[len(prefix):].decode("utf-8", "replace"))
    return {
        "wstatus": wstatus,
        "timed_out": timed_out,
        "stdout": stdout,
        "stdout_truncated": truncated,
        "stderr": stderr,
        "lines": lines,
        "elapsed": elapsed,
    }


def death_status(run):
    """The status of a test the harness never reported on, from how the sample ended."""
    if run["timed_out"]:
        return "timeout"
    w = run["wstatus"]
    if w is not None and os.WIFSIGNALED(w) and os.WTERMSIG(w) in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout"  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one
    return "runtime_error"


def text(b):
    return b.decode("utf-8", "replace")


def parse_lines(lines, n):
    """Harness lines -> (compile_error, per-test (status, value) or None)."""
    compile_error = None
    tests = [None] * n
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "compile_error":
            compile_error = rest
        elif kind == "test":
            idx, _, rest = rest.partition(" ")
            status, _, value = rest.partition(" ")
            i = int(idx) if idx.isdigit() else -1
            if 0 <= i < n and tests[i] is None:
                tests[i] = (status, value)
    return compile_error, tests


def serve(req, counter):
    began = time.monotonic()
    resp = serve_kind(req, counter)
    resp["elapsed"] = time.monotonic() - began
    return resp


def serve_kind(req, counter):
    kind = req["kind"]
    limits = Limits(req)
    timeout_s = float(req["timeout_s"])
    total_deadline = time.monotonic() + float(req["total_timeout_s"])
    workdir = os.path.join(WORK_BASE, f"s{counter}")
    resp = {"compile_error": None, "tests": [], "stdout": "", "stderr": "", "total_timed_out": False}
    if kind == "stdio":
        # One fresh process per test: each run reads its own stdin from a clean start.
        excerpt_from_failure = False
        for i, data in enumerate(req["inputs"]):
            left = total_deadline - time.monotonic()
            if left <= 0:
                resp["total_timed_out"] = True
                resp["tests"].append({"status": "timeout"})
                continue
            nonce = os.urandom(16).hex().encode()
            run = run_child(run_stdio, req["program"], limits, min(timeout_s, left), workdir, data, nonce)
            compile_error, _ = parse_lines(run["lines"], 0)
            w = run["wstatus"]
            code = os.WEXITSTATUS(w) if w is not None and os.WIFEXITED(w) else None
            # Excerpts: the first test's, replaced once by the first run that failed.
            if i == 0 or (code != 0 and not excerpt_from_failure):
                resp["stdout"] = text(run["stdout"][:4096])
                resp["stderr"] = text(run["stderr"][:4096])
                excerpt_from_failure = code != 0
            if compile_error is not None:
                resp["compile_error"] = compile_error
                resp["tests"] = [{"status": "compile_error"}] * len(req["inputs"])
                return resp
            if run["timed_out"] and time.monotonic() >= total_deadline:
                resp["total_timed_out"] = True
            if code == 0 and not run["timed_out"]:
                resp["tests"].append(
                    {"status": "exited", "value": text(run["stdout"]), "truncated": run["stdout_truncated"]}
                )
            elif code == 102:
                resp["tests"].append({"status": "memory_exceeded"})
            else:
                resp["tests"].append({"status": death_status(run)})
        return resp
    if kind == "humaneval":
        n = 1
        job = (req["program"], req["tests"], req["entry_point"])
        harness = run_humaneval
        wall = min(timeout_s, float(req["total_timeout_s"]))
    else:
        n = len(req["args"])
        job = (req["program"], req["args"], req["entry_point"], timeout_s)
        harness = run_call
        wall = float(req["total_timeout_s"])
    nonce = os.urandom(16).hex().encode()
    run = run_child(harness, job, limits, wall, workdir, None, nonce)
    compile_error, tests = parse_lines(run["lines"], n)
    resp["stdout"] = text(run["stdout"][:4096])
    resp["stderr"] = text(run["stderr"][:4096])
    resp["total_timed_out"] = run["timed_out"] and kind == "call"
    if compile_error is not None:
        resp["compile_error"] = compile_error
        resp["tests"] = [{"status": "compile_error"}] * n
        return resp
    fallback = death_status(run)
    resp["tests"] = [
        {"status": fallback} if t is None else {"status": t[0], "value": t[1]} for t in tests
    ]
    return resp


WARM_UP = """
from typing import List, Optional


def solve(numbers: List[int], k: Optional[int] = None) -> List[int]:
    \"\"\"A docstring, as in every HumanEval prompt.\"\"\"
    seen = {n: i for i, n in enumerate(numbers)}
    out = [n * 2 for n in numbers if n in seen]
    return sorted(out, key=lambda v: (-v, str(v)))[: k or len(out)] + list(map(abs, (1, -2)))


def check(candidate):
    assert candidate([3, 1, 2]) == [6, 4, 2, 1, 2], f"got {candidate([3, 1, 2])!r}"
    try:
        assert candidate([]) == [1]
    except AssertionError:
        pass
"""


def warm_up():
    # The first compile() in a process builds the parser's and compiler's lazily made state;
    # doing it here once means no sample pays for it (it was most of a sample's CPU time).
    g = {"__name__": "__warm__"}
    exec(compile(WARM_UP, "<warm-up>", "exec", dont_inherit=True), g)
    g["check"](g["solve"])
    json.loads(json.dumps({"a": [1, 2.5, None, "x"]}))
    io.TextIOWrapper(io.BytesIO(), encoding="utf-8").write("x")
    try:
        raise ValueError("warm")
    except ValueError:
        traceback.format_exc()


def main():
    global WORK_BASE
    WORK_BASE = sys.argv[1]
    # The envelope execs us with no environment; the interpreter's locale coercion (PEP 538)
    # adds LC_CTYPE, which samples need not see either.
    os.environ.clear()
    global DEV_NULL, TOP_FD
    DEV_NULL = os.open("/dev/null", os.O_RDONLY)
    # A sample can reach this process with signals only outside a pid namespace; default
    # dispositions make pid 1 immune to them, and SIGINT must not raise KeyboardInterrupt here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: samples (same uid) cannot ptrace or read our memory
    if not IS_INIT:
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of a sample come back to us
    warm_up()
    import gc

    gc.freeze()  # keep the collector in a sample off the inherited objects (fewer page copies)
    # Every descriptor this worker holds between samples; a sample closes all above 3 up to
    # the highest of these and of its own files (no need to sweep the whole fd table).
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        TOP_FD = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    except (OSError, ValueError):  # /proc hidden: fall back to the descriptor limit
        TOP_FD = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1
    write_frame(1, {"ready": True, "init": IS_INIT, "uid": os.getuid(), "pid": os.getpid()})
    counter = 0
    while True:
        frame = read_frame(0)
        if frame is None:  # brorl closed the pool or exited
            if not IS_INIT:
                rmtree(WORK_BASE)  # our host-side directory (with namespaces it is our tmpfs)
            os._exit(0)
        counter += 1
        try:
            resp = serve(json.loads(frame), counter)
        except Exception as e:  # a bug here, not in the sample: report it, keep serving
            resp = {"internal_error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        write_frame(1, resp)
