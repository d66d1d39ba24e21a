"""Hostile programs for the code sandbox, shared by tests/test_code_verify.py (run as root)
and by the same suite run as an unprivileged user (`python tests/code_attacks.py`).

Each case is a solution of `double(x) = 2 * x` with an attack built in, and the status a
contained run must get. Every attack that could only "succeed" outside the sandbox makes the
function return a wrong value when it does, so a hole shows up as a wrong status too.
"""

from __future__ import annotations

import json
import os
import socket
import sys

TESTS = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(5) == 10\n"
GOOD = "def double(x):\n    return 2 * x\n"


def cases(port: int, outside: str, secret: str) -> dict[str, tuple[str, str]]:
    """name -> (program, expected status). `port` listens on 127.0.0.1 in the caller,
    `outside` is a host path the sample must not create, `secret` is in the caller's env."""
    return {
        "fork_bomb": (
            "import os\ndef double(x):\n    while True:\n        try:\n            os.fork()\n"
            "        except OSError:\n            pass\n",
            "timeout",
        ),
        "memory_bomb": (
            "def double(x):\n    hog = []\n    while True:\n        hog.append(bytearray(1 << 24))\n",
            "memory_exceeded",
        ),
        "infinite_loop": ("def double(x):\n    while True:\n        pass\n", "timeout"),
        "busy_threads": (
            "import threading\ndef spin():\n    while True:\n        pass\n"
            "def double(x):\n    for _ in range(8):\n        threading.Thread(target=spin, daemon=True).start()\n"
            "    spin()\n",
            "timeout",
        ),
        "socket_to_host_port": (
            "import socket\ndef double(x):\n"
            f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n"
            "    s.sendall(b'escaped')\n    return 2 * x\n",
            "runtime_error",
        ),
        "write_outside_workdir": (
            "import os\ndef double(x):\n    wrote = 0\n"
            f"    for path in ({outside!r}, {os.path.join(os.getcwd(), 'brorl-escape')!r}, '/brorl-escape'):\n"
            "        try:\n            with open(path, 'w') as f:\n                f.write('escaped')\n"
            "            wrote += 1\n        except OSError:\n            pass\n"
            "    return 2 * x + wrote\n",
            "passed",
        ),
        "read_parent_environment": (
            "import os\ndef double(x):\n    seen = repr(dict(os.environ))\n"
            "    for pid in ['self', str(os.getppid())] + os.listdir('/proc'):\n"
            "        try:\n            seen += open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1')\n"
            "        except (OSError, ValueError):\n            pass\n"
            f"    return 2 * x + ({secret!r} in seen)\n",
            "passed",
        ),
        "kill_parent": (
            "import os, time\ndef double(x):\n    for pid in (os.getppid(), 1):\n        try:\n"
            "            os.kill(pid, 9)\n        except OSError:\n            pass\n"
            "    time.sleep(0.2)\n    return 2 * x\n",
            "passed",
        ),
        "os_system_and_subprocess": (
            "import os, subprocess\ndef double(x):\n"
            f"    os.system('echo escaped > {outside}.sh; sleep 30 &')\n"
            "    subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
            f"    return 2 * x + os.path.exists({(outside + '.sh')!r})\n",
            "passed",
        ),
        "ctypes_segfault": ("import ctypes\ndef double(x):\n    return ctypes.string_at(0)\n", "runtime_error"),
        # Output counts against the file-size limit (16 MiB): past it, writes fail.
        "output_100mb": (
            "import sys\ndef double(x):\n    for _ in range(100):\n        sys.stdout.write('x' * (1 << 20))\n"
            "    return 2 * x\n",
            "runtime_error",
        ),
        "child_outlives_parent": (
            "import os, time\ndef double(x):\n    if os.fork() == 0:\n        os.setsid()\n"
            "        if os.fork() == 0:\n            time.sleep(60)\n        os._exit(0)\n"
            "    return 2 * x\n",
            "passed",
        ),
        # Kernel surface a sandbox escape would go through: denied by the seccomp filter.
        "new_namespaces_and_ptrace": (
            "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\ndef double(x):\n"
            "    opened = sum(libc.unshare(flag) == 0 for flag in (0x10000000, 0x40000000, 0x20000))\n"
            "    traced = libc.ptrace(16, os.getppid(), 0, 0) == 0  # PTRACE_ATTACH to the worker\n"
            "    return 2 * x + opened + traced\n",
            "passed",
        ),
        "sys_exit_before_asserts": ("import sys\nsys.exit(0)\ndef double(x):\n    return 0\n", "runtime_error"),
        "os_exit_before_asserts": ("import os\nos._exit(0)\n", "runtime_error"),
        "print_the_marker": (
            "import os\nfor line in ('passed', 'PASSED', 'test 0 passed', 'ok'):\n    print(line)\n"
            "    try:\n        os.write(3, (line + '\\n').encode())\n    except OSError:\n        pass\n"
            "def double(x):\n    return 0\n",
            "wrong_answer",
        ),
        "patch_builtins": (
            "import builtins\nclass Fake(Exception):\n    pass\n"
            "builtins.AssertionError = Fake\nbuiltins.BaseException = Fake\nbuiltins.Exception = Fake\n"
            "builtins.SystemExit = Fake\ndef double(x):\n    return 0\n",
            "wrong_answer",
        ),
        "system_exit_inside_check": ("def double(x):\n    raise SystemExit(0)\n", "runtime_error"),
    }


# Cases whose containment needs namespaces (a private /proc and /tmp, the worker as pid 1):
# with isolation="basic" the sample shares the host's filesystem view and can signal its
# worker, so these are not claimed there.
NEEDS_NAMESPACES = {"write_outside_workdir", "read_parent_environment", "kill_parent", "os_system_and_subprocess"}


def _process_table() -> dict[int, tuple[int, bool]]:
    """pid -> (ppid, runs the code worker script) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                worker = b"brorl code worker" in f.read()
        except OSError:
            continue
        table[int(name)] = (int(stat[stat.rfind(b")") + 2 :].split()[1]), worker)
    return table


def leftovers() -> list[int]:
    """Processes that must not exist between calls: anything below one of this process's
    idle workers. (A sample's orphans are re-parented to its worker, pid 1 of the namespace
    or a child subreaper, so they would show up here. Orphaned workers of *other* processes
    are not counted: they exit on their own once their parent is gone.)"""
    me = os.getpid()
    table = _process_table()
    workers = {pid for pid, (ppid, w) in table.items() if w and ppid == me}
    bad = []
    for pid, (ppid, _) in table.items():
        if pid in workers:
            continue
        seen = 0
        while ppid > 1 and seen < 64:
            if ppid in workers:
                bad.append(pid)
                break
            ppid = table.get(ppid, (0, False))[0]
            seen += 1
    return bad


def run_suite(isolation: str, tmpdir: str, timeout_s: float = 1.0) -> dict:
    """Runs every case in one batch; returns statuses and the outside observations."""
    import brorl

    secret = "brorl-secret-" + os.urandom(8).hex()
    os.environ["BRORL_TEST_SECRET"] = secret
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    outside = os.path.join(tmpdir, "escaped")
    suite = cases(server.getsockname()[1], outside, secret)
    if isolation == "basic":
        suite = {k: v for k, v in suite.items() if k not in NEEDS_NAMESPACES}
    # Cases meant to hit the clock get `timeout_s`; the others get room to finish on a loaded
    # machine (they end in well under a second, so this costs nothing when all is well).
    items = [
        dict(program=p, tests=TESTS, kind="humaneval", entry_point="double",
             timeout_s=timeout_s if want == "timeout" else 5.0)
        for p, want in suite.values()
    ]
    # Filling 1 GiB takes a while on a loaded machine: a smaller cap, so the bomb meets the
    # memory limit well before the clock.
    items[list(suite).index("memory_bomb")].update(memory_mb=256)
    # The fork bomb runs on its own: without a user namespace RLIMIT_NPROC is shared by every
    # process of the uid, so a bomb beside them could make other samples' forks fail.
    bomb = list(suite).index("fork_bomb")
    rest = [item for i, item in enumerate(items) if i != bomb]
    results = brorl.verify_code_batch(rest, workers=2, isolation=isolation)
    results.insert(bomb, brorl.verify_code_batch([items[bomb]], isolation=isolation)[0])
    try:
        conn, _ = server.accept()
        connected = True
        conn.close()
    except OSError:
        connected = False
    server.close()
    after = brorl.verify_code(GOOD, TESTS, kind="humaneval", entry_point="double", isolation=isolation)
    return {
        "statuses": {k: r.statuses[0] for k, r in zip(suite, results)},
        "expected": {k: v[1] for k, v in suite.items()},
        "rewards": {k: r.reward for k, r in zip(suite, results)},
        "stdout_len": {k: len(r.stdout) for k, r in zip(suite, results)},
        "secret_in_output": any(secret in r.stdout + r.stderr for r in results),
        "connected": connected,
        "outside_files": sorted(os.listdir(tmpdir)),
        "leftovers": leftovers(),
        "still_serving": after.statuses,
    }


if __name__ == "__main__":
    # python tests/code_attacks.py ISOLATION TMPDIR  (used to run the suite as `nobody`)
    print(json.dumps(run_suite(sys.argv[1], sys.argv[2])))
