"""brorl's math verifier against Hugging Face Math-Verify, on the same labelled pairs, in one run.

Reports the accuracy of both against the labels in tests/data/math_pairs.jsonl, every pair where
the two disagree (grouped by category, with which one matches the label), single-threaded
throughput of both (parse + verify, pairs/s) and their ratio, and brorl's batch API scaling with
threads.

    .venv/bin/python benches/bench_math_verify.py [--json] [--pairs FILE] [--min-seconds S]

Math-Verify is called the way its README shows: `parse` on the gold (wrapped in `\\boxed{}`) and
on the response (bare answers also wrapped in `\\boxed{}`), then `verify(gold, answer)`, with its
default (signal-based) timeouts, on the main thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import brorl

# Categories whose responses are whole model responses; the others hold bare answers.
WHOLE_RESPONSES = {"extraction"}
DEFAULT_PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "math_pairs.jsonl"


def load_pairs(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def math_verify_fn():
    """Math-Verify's verdict function, or None when it is not installed."""
    try:
        from math_verify import parse, verify  # type: ignore[import-untyped]
    except ImportError:
        return None
    # Its parser logs every failure at WARNING; that is noise for a benchmark.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    def mv(gold: str, response: str, bare: bool) -> bool:
        g = parse(gold if "\\boxed" in gold else "\\boxed{" + gold + "}")
        # A bare answer is handed over boxed, the form Math-Verify's extraction looks for first.
        a = parse("\\boxed{" + response + "}" if bare else response)
        return bool(verify(g, a))

    return mv


def timed(fn, *args) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


# Rates come in two clocks: wall time, and CPU time of the process (`time.process_time`). On a
# shared machine the wall clock also counts time the scheduler gave to other processes; CPU time
# does not, so single-threaded comparisons are reported in both.


def brorl_rates(
    golds: list[str], responses: list[str], threads: int, min_seconds: float
) -> tuple[float, float]:
    """(wall, CPU) pairs/s of `verify_math_batch` with `threads` threads, repeating the set for
    stable timing."""
    reps = 1
    while True:
        g, r = golds * reps, responses * reps
        c0 = time.process_time()
        _, dt = timed(lambda: brorl.verify_math_batch(g, r, threads=threads))
        cpu = time.process_time() - c0
        if dt >= min_seconds or reps >= 4096:
            return len(g) / dt, len(g) / max(cpu, 1e-9)
        reps *= 2


def brorl_rate(golds: list[str], responses: list[str], threads: int, min_seconds: float) -> float:
    """Wall-clock pairs/s of `verify_math_batch` with `threads` threads."""
    return brorl_rates(golds, responses, threads, min_seconds)[0]


def brorl_loop_rates(golds: list[str], responses: list[str], min_seconds: float) -> tuple[float, float]:
    """(wall, CPU) pairs/s of one `verify_math` call per pair from Python (a simple reward loop)."""
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        for g, r in zip(golds, responses):
            brorl.verify_math(g, r)
        n += len(golds)
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n / dt, n / max(time.process_time() - c0, 1e-9)


def run(pairs: list[dict], min_seconds: float) -> dict:
    golds = [p["gold"] for p in pairs]
    responses = [p["response"] for p in pairs]
    labels = np.array([bool(p["label"]) for p in pairs])

    ours, _ = timed(brorl.verify_math_batch, golds, responses)
    ours = np.asarray(ours)
    statuses = brorl.verify_math_batch_status(golds, responses)
    # Single-threaded: one Python call per pair (what a simple reward loop does), and the batch
    # API on one thread (no per-call overhead).
    loop_rate, loop_cpu = brorl_loop_rates(golds, responses, min_seconds)
    batch_rate_1, batch_cpu = brorl_rates(golds, responses, 1, min_seconds)
    scaling = {t: brorl_rate(golds, responses, t, min_seconds) for t in (1, 2, 4)}

    report: dict = {
        "pairs": len(pairs),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {sys.version.split()[0]}",
        "brorl_accuracy": float((ours == labels).mean()),
        "brorl_pairs_per_s_single_thread_loop": loop_rate,
        "brorl_pairs_per_s_single_thread_batch": batch_rate_1,
        "brorl_batch_pairs_per_s_by_threads": scaling,
        "brorl_pairs_per_cpu_s_single_thread_loop": loop_cpu,
        "brorl_pairs_per_cpu_s_single_thread_batch": batch_cpu,
        "brorl_status_counts": {
            name: int((statuses == code).sum()) for code, name in enumerate(brorl.MATH_STATUSES)
        },
        "brorl_errors": [
            {**p, "brorl": bool(o), "status": brorl.MATH_STATUSES[s]}
            for p, o, s in zip(pairs, ours, statuses)
            if bool(o) != bool(p["label"])
        ],
    }
    mv = math_verify_fn()
    if mv is None:
        report["math_verify"] = "not installed"
        return report
    theirs_list, mv_times, mv_cpu = [], [], []
    for p in pairs:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            theirs_list.append(mv(p["gold"], p["response"], p["category"] not in WHOLE_RESPONSES))
        except Exception:  # Math-Verify raising is a "no" verdict, as in its own wrapper
            theirs_list.append(False)
        mv_times.append(time.perf_counter() - t0)
        mv_cpu.append(time.process_time() - c0)
    theirs = np.array(theirs_list)
    times = np.array(mv_times)
    mv_rate = len(pairs) / times.sum()
    # Pairs where Math-Verify ran into its own 5 s timeouts dominate its total; the rate without
    # them is the fairer (higher) baseline for the ratio.
    quick = times < 1.0
    mv_rate_quick = int(quick.sum()) / float(times[quick].sum())
    cpu = np.array(mv_cpu)
    mv_cpu_quick = int(quick.sum()) / max(float(cpu[quick].sum()), 1e-9)
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for p, o, t in zip(pairs, ours, theirs):
        if bool(o) != bool(t):
            by_cat[p["category"]].append(
                {
                    "gold": p["gold"],
                    "response": p["response"][:200],
                    "label": bool(p["label"]),
                    "brorl": bool(o),
                    "math_verify": bool(t),
                }
            )
    report.update(
        {
            "math_verify_accuracy": float((theirs == labels).mean()),
            "math_verify_pairs_per_s": mv_rate,
            "math_verify_pairs_per_s_without_timeouts": mv_rate_quick,
            "math_verify_pairs_over_1s": int((~quick).sum()),
            "math_verify_median_ms": float(np.median(times) * 1e3),
            "ratio_single_thread_loop": loop_rate / mv_rate_quick,
            "ratio_single_thread_batch": batch_rate_1 / mv_rate_quick,
            "math_verify_pairs_per_cpu_s_without_timeouts": mv_cpu_quick,
            "ratio_cpu_single_thread_loop": loop_cpu / mv_cpu_quick,
            "ratio_cpu_single_thread_batch": batch_cpu / mv_cpu_quick,
            "disagreements": dict(by_cat),
        }
    )
    return report


def print_report(r: dict) -> None:
    print(f"labelled pairs: {r['pairs']}  ({r['machine']})")
    print(f"accuracy   brorl {r['brorl_accuracy']:.4f}", end="")
    if "math_verify_accuracy" in r:
        print(f"   Math-Verify {r['math_verify_accuracy']:.4f}")
    else:
        print("   Math-Verify: not installed")
    print("brorl statuses:", r["brorl_status_counts"])
    if "math_verify_pairs_per_s" in r:
        n = sum(len(v) for v in r["disagreements"].values())
        print(f"\ndisagreements brorl vs Math-Verify: {n}")
        for cat, rows in sorted(r["disagreements"].items()):
            print(f"  [{cat}]")
            for d in rows:
                right = "brorl" if d["brorl"] == d["label"] else "Math-Verify"
                print(
                    f"    gold={d['gold']!r} response={d['response']!r} label={d['label']} "
                    f"brorl={d['brorl']} mv={d['math_verify']} -> {right} matches the label"
                )
    if r["brorl_errors"]:
        print(f"\nbrorl differs from the label on {len(r['brorl_errors'])} pairs:")
        for e in r["brorl_errors"]:
            print(
                f"  [{e['category']}] gold={e['gold']!r} response={e['response'][:80]!r} "
                f"label={e['label']} status={e['status']}"
            )
    print("\nthroughput, single thread (parse + verify):")
    print(f"  brorl, one verify_math call per pair: {r['brorl_pairs_per_s_single_thread_loop']:12,.0f} pairs/s")
    print(f"  brorl, verify_math_batch threads=1:   {r['brorl_pairs_per_s_single_thread_batch']:12,.0f} pairs/s")
    if "math_verify_pairs_per_s" in r:
        print(f"  Math-Verify parse + verify, all pairs: {r['math_verify_pairs_per_s']:11,.1f} pairs/s")
        print(
            f"  Math-Verify without the {r['math_verify_pairs_over_1s']} pairs over 1 s: "
            f"{r['math_verify_pairs_per_s_without_timeouts']:,.1f} pairs/s "
            f"(median {r['math_verify_median_ms']:.1f} ms/pair)"
        )
        print(
            f"  ratio brorl / Math-Verify (its rate without timeouts): "
            f"{r['ratio_single_thread_loop']:,.0f}x (per-call loop), "
            f"{r['ratio_single_thread_batch']:,.0f}x (batch, 1 thread)"
        )
    print("the same in CPU time (robust to other processes on a shared machine):")
    print(f"  brorl, one verify_math call per pair: {r['brorl_pairs_per_cpu_s_single_thread_loop']:12,.0f} pairs per CPU-s")
    print(f"  brorl, verify_math_batch threads=1:   {r['brorl_pairs_per_cpu_s_single_thread_batch']:12,.0f} pairs per CPU-s")
    if "math_verify_pairs_per_s" in r:
        print(
            f"  Math-Verify without its timeouts:     "
            f"{r['math_verify_pairs_per_cpu_s_without_timeouts']:12,.1f} pairs per CPU-s"
        )
        print(
            f"  ratio brorl / Math-Verify: {r['ratio_cpu_single_thread_loop']:,.0f}x (per-call loop), "
            f"{r['ratio_cpu_single_thread_batch']:,.0f}x (batch, 1 thread)"
        )
    print("batch scaling (verify_math_batch, wall clock):")
    for t, rate in r["brorl_batch_pairs_per_s_by_threads"].items():
        print(f"  threads={t}: {rate:12,.0f} pairs/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS, help="labelled JSONL pairs")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument(
        "--min-seconds", type=float, default=0.5, help="minimum timed span per brorl rate"
    )
    args = ap.parse_args(argv)
    report = run(load_pairs(args.pairs), args.min_seconds)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
