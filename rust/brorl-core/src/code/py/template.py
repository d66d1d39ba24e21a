# brorl code worker: the *template* process. brorl-core starts one per worker inside the
# sandbox envelope (its own pid, mount, network and IPC namespaces where the kernel allows, a
# minimal read-only root, an empty environment) and keeps it warm. The template never sees a
# sample's program, inputs or outputs: brorl sends it only "fork these processes" commands
# with descriptors (memory files and socket ends that brorl created and reads itself), so
# every sample starts from a process that never held another sample's data.
#
# Protocol on fd 0 (a SOCK_SEQPACKET socket): one message per command, a JSON header plus
# the descriptors (SCM_RIGHTS); one JSON reply per command (wait statuses, timed out, time).
import os
import sys
import json
import select
import signal
import _signal  # the C functions behind `signal`, without its enum conversions (cheaper in a fork)
import resource
import socket
import time
import ctypes
import fcntl

# Modules samples commonly import, loaded once here so each fork inherits them. Not
# `threading` or `random`: their at-fork hooks would run on every fork.
import bisect, collections, copy, functools, heapq, io, itertools, math  # noqa: E401,F401
import operator, re, string, traceback, typing  # noqa: E401,F401

IS_INIT = os.getpid() == 1  # pid 1 of our own pid namespace: kill(-1) reaches only samples
LIBC = ctypes.CDLL(None, use_errno=True)
CFG = {}
SECCOMP = None
NATIVE = None  # brorl_sample_setup from brorl's own library (native.rs), when it was found
SERVE = None  # brorl_serve from the same library: the command loop, when we are pid 1 of our namespaces


class _Setup(ctypes.Structure):
    """Mirror of native.rs's SampleSetup (8-byte fields only)."""
    _fields_ = [("nfds", ctypes.c_int64), ("fds", ctypes.c_int64 * 8), ("top_fd", ctypes.c_int64),
                ("uid", ctypes.c_int64), ("userns", ctypes.c_int64), ("nondumpable", ctypes.c_int64),
                ("umask", ctypes.c_int64), ("rlimits", (ctypes.c_int64 * 3) * 6), ("cwd", ctypes.c_char_p),
                ("oom", ctypes.c_char_p), ("filter", ctypes.c_void_p)]


_STEPS = ["", "chdir", "dup", "dup2", "close", "setrlimit", "uid", "capabilities", "seccomp"]


class _Serve(ctypes.Structure):
    """Mirror of native.rs's ServeConfig (8-byte fields only)."""
    _fields_ = [("sock", ctypes.c_int64), ("uid_check", ctypes.c_int64), ("uid_cand", ctypes.c_int64),
                ("userns", ctypes.c_int64), ("top_fd", ctypes.c_int64), ("filter", ctypes.c_void_p),
                ("last_pid_fd", ctypes.c_int64)]


_ROLES = ["check", "cand", "call", "stdio"]  # native.rs ROLES


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _ok(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _prctl(option, a=0, b=0):
    return LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(a), ctypes.c_ulong(b), ctypes.c_ulong(0),
                      ctypes.c_ulong(0))


CLONE_NEWIPC = 0x08000000
MS_NOSUID, MS_NODEV = 2, 4


def fresh_tmp(tmpfs_mb):
    """Fresh tmpfs /tmp and /dev/shm for one run, mounted by the template before it forks."""
    opts = f"size={tmpfs_mb}m,nr_inodes=16384,mode=1777".encode()
    _ok(LIBC.mount(b"tmpfs", b"/tmp", b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV), opts), "mount /tmp")
    _ok(LIBC.mount(b"tmpfs", b"/dev/shm", b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV),
                   b"size=16m,nr_inodes=4096,mode=1777"), "mount /dev/shm")


def discard_tmp():
    """Detaches the run's tmpfs mounts once its processes are gone: whatever a sample left there
    (deep trees, long names, files of answers) goes with them, with nothing to walk or delete."""
    for path in (b"/dev/shm", b"/tmp"):
        _ok(LIBC.umount2(path, ctypes.c_int(2)), "umount")  # MNT_DETACH


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(role):
    uid = CFG["uids"].get(role)
    if uid is not None:  # started by root: a uid of this worker and role, no groups
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # clears every capability
    elif CFG["userns"]:
        # Root only inside our own user namespace, with one uid mapped: drop every capability
        # and lock root's special treatment out, so not even an exec brings them back.
        _ok(_prctl(28, 0x2f), "securebits")  # PR_SET_SECUREBITS: NOROOT, NO_SETUID_FIXUP, locked
        for cap in range(64):
            if _prctl(24, cap) != 0:  # PR_CAPBSET_DROP until the kernel knows no more
                break
        data = (_CapData * 2)()
        _ok(LIBC.syscall(ctypes.c_long(CFG["sys_capset"]), ctypes.byref(_CapHeader(0x20080522, 0)), data),
            "capset")


def place_fds(fds):
    # fds[i] becomes descriptor i; everything else is closed.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 64 + len(fds)) for fd in fds]
    for i, fd in enumerate(high):
        os.dup2(fd, i)
    # Whatever else the template held (e.g. the other process's descriptors of a two-process
    # run, received just before) is gone before any untrusted code.
    os.closerange(len(fds), max(high + list(fds) + [TOP_FD, RECEIVED_TOP[0]]) + 1)


def rlimits(lim, wall_s):
    cpu = int(wall_s) + 1
    items = [
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_FSIZE, (lim["fsize"], lim["fsize"])),
        (resource.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"])),
        (resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"])),
    ]
    if lim.get("as"):  # no memory cgroup: the per-process fallback
        items.append((resource.RLIMIT_AS, (lim["as"], lim["as"])))
    return items


def sample_cwd(role, req):
    if role == "check":
        return "/"
    return "/tmp" if CFG["ns"] else req["workdir"]


def prepare(role, fds, req):
    """What a sample process of `role` sets up, filled here in the template before the fork, so
    the fork itself runs one native call (each Python step in a fork costs page copies)."""
    s = _Setup()
    s.nfds = len(fds)
    for i, fd in enumerate(fds):
        s.fds[i] = fd
    s.top_fd = max([TOP_FD, RECEIVED_TOP[0]] + list(fds))
    uid = CFG["uids"].get(role)
    s.uid = -1 if uid is None else uid
    s.userns = 1 if uid is None and CFG["userns"] else 0
    s.nondumpable = 1 if role == "check" else 0  # no /proc/<pid>/mem, fd, environ for anyone else
    s.umask = 0o077
    items = rlimits(req["limits"], req["wall"])
    for i, row in enumerate(s.rlimits):
        if i < len(items):
            row[0], (row[1], row[2]) = items[i]
        else:
            row[0] = -1  # end of the list
    s.cwd = sample_cwd(role, req).encode()
    s.oom = b"500" if role == "check" else b"1000"  # the OOM killer takes samples first
    s.filter = None if SECCOMP is None else ctypes.addressof(SECCOMP)
    return s


def setup_in_python(role, fds, req):
    """The same steps as native.rs's brorl_sample_setup, for when brorl's library is not
    available (Rust's own tests)."""
    try:  # the OOM killer takes samples first, never the template
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        os.write(fd, b"1000" if role != "check" else b"500")
        os.close(fd)
    except OSError:
        pass
    os.chdir(sample_cwd(role, req))
    place_fds(fds)
    for res, val in rlimits(req["limits"], req["wall"]):
        resource.setrlimit(res, val)
    drop_privileges(role)
    if role == "check":
        _prctl(4, 0)  # PR_SET_DUMPABLE 0: no /proc/<pid>/mem, fd, environ for anyone else
    os.umask(0o077)
    if SECCOMP is not None:
        _ok(_prctl(22, 2, ctypes.addressof(SECCOMP)), "seccomp")


def become_sample(role, fds, req, setup, native_done=False):
    """Runs in the fresh fork: its own working directory, descriptors, limits, uid, capabilities
    and seccomp filter (already set by brorl_serve when `native_done`), then the harness of
    `role`. Never returns."""
    status = 121
    try:
        if native_done:
            pass  # set up inside brorl_serve before it returned in this fork
        elif setup is not None:
            rc = NATIVE(ctypes.addressof(setup))
            if rc:
                raise OSError(rc & 0xFFFF, f"sample set-up: {_STEPS[rc >> 16]}")
        else:
            setup_in_python(role, fds, req)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        status = HARNESSES[role]()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except:  # noqa: E722
                pass
        os._exit(status)


def kill_all(pids):
    """Kills every process a sample started and reaps them; returns the wait statuses of
    `pids`. As pid 1 of the worker's namespace, kill(-1) reaches every process in it whatever
    its process group or session; without one, descendants come back to us (child
    subreaper) and are killed by process group and pid."""
    statuses = {}
    while True:
        if IS_INIT:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            for k in children_of(os.getpid()):
                for kill in (os.killpg, os.kill):
                    try:
                        kill(k, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            return [statuses.get(p) for p in pids]
        statuses[pid] = st


def children_of(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rfind(b")") + 2:].split()[1]) == pid:
            out.append(int(name))
    return out


def rmtree(path):
    """Iterative removal (no recursion limit, fixing modes on the way) for the basic mode's
    host directory; with namespaces the sample's tmpfs is simply discarded."""
    stack = [path]
    while stack:
        p = stack[-1]
        try:
            os.chmod(p, 0o700)
            names = os.listdir(p)
        except FileNotFoundError:
            stack.pop()
            continue
        dirs = []
        for name in names:
            q = os.path.join(p, name)
            if os.path.isdir(q) and not os.path.islink(q):
                dirs.append(q)
            else:
                os.unlink(q)
        if dirs:
            stack.extend(dirs)
        else:
            os.rmdir(p)
            stack.pop()


RECEIVED_TOP = [0]
LAST_PID_FD = -1  # /proc/sys/kernel/ns_last_pid when the sandbox opened it (sandbox.rs LAST_PID_FD)


def run(req, fds):
    RECEIVED_TOP[0] = max(fds, default=0)
    procs = req["procs"]
    pids, counter = [], req.get("n", 0)
    if not CFG["ns"]:
        req["workdir"] = os.path.join(CFG["workdir"], f"s{counter}")
        os.mkdir(req["workdir"], 0o700)
        uid = CFG["uids"].get("cand")
        if uid is not None:
            os.chown(req["workdir"], uid, uid)
    tmp = CFG["ns"] and any(p["role"] != "check" for p in procs)
    if CFG["ns"]:
        # A new IPC namespace for this run's processes (the template moves into it, so the
        # previous run's, and every SysV object in it, is freed with that run's processes).
        _ok(LIBC.unshare(CLONE_NEWIPC), "unshare")
    if tmp:
        fresh_tmp(req["tmpfs_mb"])
    if LAST_PID_FD >= 0:
        # Every run's processes get the same pids (native.rs `run`): the pid counter of our
        # namespace would otherwise carry how many processes the previous sample made.
        try:
            os.pwrite(LAST_PID_FD, b"1", 0)
        except OSError:
            pass
    # Everything the processes need is made before the first fork: after it, each page the
    # template writes is copied while that process lives.
    plan, pos = [], 0
    for p in procs:
        mine = fds[pos:pos + p["nfds"]]
        pos += p["nfds"]
        plan.append((p["role"], mine, prepare(p["role"], mine, req) if NATIVE is not None else None))
    start = time.monotonic()
    try:
        for role, mine, setup in plan:
            pid = os.fork()
            if pid == 0:
                become_sample(role, mine, req, setup)
            pids.append(pid)
    finally:
        for fd in fds:  # our copies: the socket between the two processes must see EOF
            os.close(fd)
    pidfd = os.pidfd_open(pids[req.get("main", 0)])
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    timed_out = not poller.poll(max(1, int(req["wall"] * 1000) + 1))
    elapsed = time.monotonic() - start
    os.close(pidfd)
    statuses = kill_all(pids)
    if tmp:
        discard_tmp()
    if not CFG["ns"]:
        rmtree(req["workdir"])
    return {"wstatus": statuses, "timed_out": timed_out, "elapsed": elapsed}


def main():
    global CFG, SECCOMP, TOP_FD, NATIVE, SERVE, LAST_PID_FD
    CFG = json.loads(sys.argv[1])
    fd = CFG.get("last_pid_fd", -1)
    try:
        if fd >= 0:
            os.fstat(fd)
            LAST_PID_FD = fd
    except OSError:
        pass
    os.environ.clear()  # LD_BIND_NOW from brorl, LC_CTYPE from PEP 538's locale coercion: samples see none
    sys.path.extend(CFG["site"])  # the environment's packages (numpy ...), read-only
    import site  # run with -S: only the builtins site would add (exit, quit, help ...)

    site.setquit()
    site.setcopyright()
    site.sethelper()
    sys.set_int_max_str_digits(0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if CFG["filter"]:
        buf = ctypes.create_string_buffer(bytes.fromhex(CFG["filter"]))
        SECCOMP = _SockFprog(len(buf.raw) // 8, ctypes.addressof(buf))
        SECCOMP._buf = buf
    if CFG.get("native"):
        NATIVE = ctypes.CDLL(CFG["native"]).brorl_sample_setup
        NATIVE.argtypes = [ctypes.c_void_p]
        NATIVE.restype = ctypes.c_int
        # PyDLL: the interpreter lock stays held across the call, so a forked process resumes
        # the interpreter as its only thread, holding the lock.
        SERVE = ctypes.PyDLL(CFG["native"]).brorl_serve
        SERVE.argtypes = [ctypes.c_void_p]
        SERVE.restype = ctypes.c_int
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-1000")  # the OOM killer of a sample's cgroup never takes the template
    except OSError:
        pass
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: samples cannot ptrace us or read our memory
    if not IS_INIT:
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of a sample come back to us
    warm_up()
    import gc

    gc.freeze()  # keep a sample's collector off the inherited objects (fewer page copies)
    sock = socket.socket(fileno=0)
    try:
        TOP_FD = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    except (OSError, ValueError):
        TOP_FD = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1
    sock.send(json.dumps({"ready": True, "init": IS_INIT, "uid": os.getuid(), "pid": os.getpid()}).encode())
    if SERVE is not None and IS_INIT and CFG["ns"]:
        serve_native()
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 64)
        except OSError:
            os._exit(0)
        if not msg:  # brorl closed the pool or exited
            if not CFG["ns"]:
                try:
                    rmtree(CFG["workdir"])
                except OSError:
                    pass
            os._exit(0)
        try:
            reply = run(json.loads(msg), fds)
        except BaseException as e:  # noqa: B036  a bug or a broken environment: brorl replaces us
            reply = {"internal_error": f"{type(e).__name__}: {e}"}
        sock.send(json.dumps(reply).encode())


def serve_native():
    """The command loop in native.rs's brorl_serve, which runs each command's steps (those of
    `run`) without executing any Python in the template: after a fork every page the template
    writes is copied while a sample lives, and faults once more after it (write-protected),
    and the Python loop wrote about 220 pages per run. Returns only in a forked process,
    already set up, which then runs its harness."""
    cfg = _Serve()
    cfg.sock = 0
    uids = CFG["uids"]
    cfg.uid_check = uids.get("check", -1)
    cfg.uid_cand = uids.get("cand", -1)
    cfg.userns = 1 if CFG["userns"] else 0
    cfg.top_fd = TOP_FD
    cfg.filter = None if SECCOMP is None else ctypes.addressof(SECCOMP)
    cfg.last_pid_fd = LAST_PID_FD
    role = SERVE(ctypes.addressof(cfg))
    if role < 0:  # brorl closed the pool or exited
        os._exit(0)
    become_sample(_ROLES[role], None, None, None, native_done=True)


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
    # The first compile() in a process builds the parser's lazily made state; doing it here
    # once means no sample pays for it.
    g = {"__name__": "__warm__"}
    exec(compile(WARM_UP, "<warm-up>", "exec", dont_inherit=True), g)
    g["check"](g["solve"])
    decode(encode([1, 2.5, None, "x", (b"y",), {"k": {3}}]))
    json.loads(json.dumps({"a": [1, 2.5, None, "x"]}))
    io.TextIOWrapper(io.BytesIO(), encoding="utf-8").write("x")
    try:
        raise ValueError("warm")
    except ValueError:
        traceback.format_exc()
