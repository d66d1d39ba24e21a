"""Adaptive vs uniform N at the same samples per step, with `brorl sweep`'s harness.

Each arm is a `brorl sweep` over the given N values and seeds with the training recipe of the
sweep config, differing only in ``train.algorithm.allocation``. The harness measures held-out
pass@k through the run's own engine; this script then reads every run's ``sweep_run.json`` and
``metrics.jsonl`` and writes ``<out>/comparison.md`` and ``comparison.json``: per arm and N,
held-out pass@1 at the start and the end (mean and spread over seeds), samples generated, train
wall time, the share of samples spent on zero-advantage groups, and how N spread over prompts.

    python scripts/adaptive_vs_uniform.py --config configs/n_sweep_cpu.yaml --ns 16 --seeds 0 1 2 \
        --out runs/adaptive_vs_uniform            # every run not yet finished, then the table
    python scripts/adaptive_vs_uniform.py ... --arm adaptive --seed 1   # one run (chunks)
    python scripts/adaptive_vs_uniform.py ... --table-only

With ``--uniform-from DIR`` (a finished ``brorl sweep`` output directory) the uniform arm is
not trained: its runs are the sweep's own ``DIR/runs/n<N>_seed<s>`` (the sweep's runs are
exactly the uniform arm: same config, N, seed; ``uniform`` is the default allocation). The
script checks that each pair of runs differs in nothing but the allocation and the run's
directory, and only the adaptive runs are new:

    python scripts/adaptive_vs_uniform.py --config configs/n_sweep_cpu.yaml --ns 16 64 --seeds 0 1 2 \
        --uniform-from runs/n_sweep_v2 --out runs/adaptive_v2 sweep.wide_samples=0
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

ARMS = ("uniform", "adaptive")


def arm_overrides(arm: str, out: Path, ns: list[int], seeds: list[int], extra: list[str]) -> list[str]:
    large = max(ns)
    return [f"sweep.output_dir={out / arm}", f"sweep.ns={ns}", f"sweep.seeds={seeds}",
            f"sweep.table1_small_n={min(ns)}", f"sweep.table1_large_n={large}",
            f"train.algorithm.allocation={arm}", *extra]


def arm_dirs(out: Path, uniform_from: Path | None) -> dict[str, Path]:
    """Where each arm's run directories live (``<dir>/runs/n<N>_seed<s>``)."""
    return {"uniform": uniform_from if uniform_from is not None else out / "uniform", "adaptive": out / "adaptive"}


# what may differ between the two arms' runs of one (N, seed)
_ALLOWED_DIFF = {("algorithm", "allocation"), ("run", "output_dir")}


def config_differences(a: dict, b: dict, prefix: tuple = ()) -> list[str]:
    """Keys (dotted) whose values differ between two run configs, except the allocation and
    the run's directory."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        path = (*prefix, k)
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, path)
        elif va != vb and path not in _ALLOWED_DIFF:
            out.append(".".join(map(str, path)))
    return out


def check_pairs(dirs: dict[str, Path], ns: list[int], seeds: list[int]) -> list[str]:
    """Differences (other than allocation and directory) between the arms' configs per run."""
    import yaml

    problems = []
    for n in ns:
        for s in seeds:
            ca, cb = (dirs[arm] / "runs" / f"n{n}_seed{s}" / "config.yaml" for arm in ARMS)
            if ca.is_file() and cb.is_file():
                d = config_differences(yaml.safe_load(ca.read_text()), yaml.safe_load(cb.read_text()))
                problems += [f"n{n}_seed{s}: {k}" for k in d]
    return problems


def run_summary(run_dir: Path) -> dict:
    rec = json.loads((run_dir / "sweep_run.json").read_text())
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    samples = sum(r["alloc/samples"] for r in rows)
    wasted = sum(r["alloc/samples"] * r["alloc/wasted_share"] for r in rows)
    ev = rec["evals"]
    return {
        "n": rec["n"], "seed": rec["seed"],
        "pass1_start": ev[0]["heldout_pass_at_k"]["1"], "pass1_end": ev[-1]["heldout_pass_at_k"]["1"],
        "samples": samples, "train_seconds": rec["train_seconds"], "wasted_share": wasted / samples,
        "kept_groups": sum(r["groups_kept"] for r in rows),
        "n_min": min(r["alloc/n_min"] for r in rows), "n_median": float(np.median([r["alloc/n_median"] for r in rows])),
        "n_p25": float(np.median([r["alloc/n_p25"] for r in rows])),
        "n_p75": float(np.median([r["alloc/n_p75"] for r in rows])),
        "n_max": max(r["alloc/n_max"] for r in rows),
        "calib_mae": float(np.nanmean([r.get("alloc/calib_mae", math.nan) for r in rows])) if any(
            math.isfinite(r.get("alloc/calib_mae", math.nan)) for r in rows) else math.nan,
        "skipped": sum(r.get("alloc/skipped", 0.0) for r in rows),
    }


def _ms(xs: list[float], digits: int = 3) -> str:
    a = np.asarray(xs, dtype=np.float64)
    if a.size < 2:
        return f"{a.mean():.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def write_table(out: Path, ns: list[int], seeds: list[int], dirs: dict[str, Path] | None = None) -> str:
    dirs = dirs or arm_dirs(out, None)
    runs = []
    for arm in ARMS:
        for n in ns:
            for s in seeds:
                d = dirs[arm] / "runs" / f"n{n}_seed{s}"
                if (d / "sweep_run.json").is_file():
                    runs.append({"arm": arm, "dir": str(d), **run_summary(d)})
    (out / "comparison.json").write_text(json.dumps(runs, indent=1))
    lines = ["| arm | N | seeds | held-out pass@1 start | end | gain | samples | train s | zero-adv. share | "
             "groups kept | N min / p25 / median / p75 / max | calib. MAE | skipped |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in ns:
        for arm in ARMS:
            rs = [r for r in runs if r["arm"] == arm and r["n"] == n]
            if not rs:
                continue
            f = lambda k: [r[k] for r in rs]  # noqa: E731
            gain = [r["pass1_end"] - r["pass1_start"] for r in rs]
            cal = [x for x in f("calib_mae") if math.isfinite(x)]
            lines.append(
                f"| {arm} | {n} | {len(rs)} | {_ms(f('pass1_start'))} | {_ms(f('pass1_end'))} | {_ms(gain)} | "
                f"{np.mean(f('samples')):.0f} | {_ms(f('train_seconds'), 0)} | {_ms(f('wasted_share'))} | "
                f"{np.mean(f('kept_groups')):.1f} | {min(f('n_min')):.0f} / {np.median(f('n_p25')):.0f} / "
                f"{np.median(f('n_median')):.0f} / {np.median(f('n_p75')):.0f} / {max(f('n_max')):.0f} | {(f'{np.mean(cal):.3f}' if cal else '-')} | {np.mean(f('skipped')):.1f} |")
    text = "\n".join(lines) + "\n"
    (out / "comparison.md").write_text(text)
    return text


def write_plot(out: Path, ns: list[int], dirs: dict[str, Path] | None = None) -> Path | None:
    """Held-out pass@1 against samples generated (each seed a thin line, the arm's mean a thick
    one) and the share of samples spent on zero-advantage groups per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dirs = dirs or arm_dirs(out, None)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    drew = False
    for n in ns:
        for arm, color in zip(ARMS, ("tab:blue", "tab:orange")):
            found = [d for d in sorted((dirs[arm] / "runs").glob(f"n{n}_seed*")) if (d / "sweep_run.json").is_file()]
            curves = []
            for d in found:
                ev = json.loads((d / "sweep_run.json").read_text())["evals"]
                x = [e["samples_generated"] for e in ev]
                y = [e["heldout_pass_at_k"]["1"] for e in ev]
                ax1.plot(x, y, color=color, alpha=0.3, lw=1)
                curves.append((x, y))
                rows = [json.loads(r) for r in (d / "metrics.jsonl").read_text().splitlines() if r.strip()]
                ax2.plot([r["step"] for r in rows], [r["alloc/wasted_share"] for r in rows], color=color, alpha=0.5,
                         marker=".", label=f"{arm} N={n}" if d == found[0] else None)
            if curves:
                m = min(len(c[0]) for c in curves)
                ax1.plot(np.mean([c[0][:m] for c in curves], axis=0), np.mean([c[1][:m] for c in curves], axis=0),
                         color=color, lw=2.5, label=f"{arm} N={n} (mean of {len(curves)})")
                drew = True
    if not drew:
        plt.close(fig)
        return None
    ax1.set_xlabel("samples generated")
    ax1.set_ylabel("held-out pass@1")
    ax2.set_xlabel("step")
    ax2.set_ylabel("share of samples in zero-advantage groups")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "comparison.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/n_sweep_cpu.yaml")
    ap.add_argument("--ns", type=int, nargs="+", default=[16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("runs/adaptive_vs_uniform"))
    ap.add_argument("--arm", choices=ARMS, help="run only this arm")
    ap.add_argument("--seed", type=int, help="run only this seed")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--uniform-from", type=Path, help="a finished `brorl sweep` directory whose runs are the uniform arm "
                    "(then only the adaptive arm is trained)")
    ap.add_argument("overrides", nargs="*", help="extra sweep./train. overrides for both arms")
    args = ap.parse_args()
    dirs = arm_dirs(args.out, args.uniform_from)
    if not args.table_only:
        from brorl.sweep import sweep

        arms = [args.arm] if args.arm else list(ARMS)
        if args.uniform_from is not None:
            if "uniform" in arms and args.arm == "uniform":
                ap.error("--arm uniform with --uniform-from: the uniform runs are the sweep's, nothing to train")
            arms = [a for a in arms if a != "uniform"]
        for arm in arms:
            only = [(n, s) for n in args.ns for s in args.seeds if args.seed is None or s == args.seed]
            sweep(args.config, arm_overrides(arm, args.out, args.ns, args.seeds, args.overrides), only=only)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.uniform_from is not None:
        (args.out / "uniform_runs_from.txt").write_text(f"{args.uniform_from}\n")
    problems = check_pairs(dirs, args.ns, args.seeds)
    if problems:
        raise SystemExit("the arms' runs differ in more than the allocation:\n  " + "\n  ".join(problems))
    print(write_table(args.out, args.ns, args.seeds, dirs))
    write_plot(args.out, args.ns, dirs)


if __name__ == "__main__":
    main()
