"""The sweep's report directory, rebuilt from the finished runs (``runs/*/sweep_run.json`` and
each run's ``metrics.jsonl``) after every run and by ``brorl sweep --report-only``.

Files: ``report.json`` (everything below), ``runs.csv`` (one row per run), ``summary.csv`` and
``summary.md`` (per N: mean and spread over seeds), ``table1.md`` (large N x fewer prompts vs
small N x more prompts at equal wall time), ``evals.csv`` (every measurement), ``probe.csv``
(per-prompt pass rates of the probe set), ``task_distribution.md`` and the plots
(``heldout_pass1.png``, ``heldout_passk.png``, ``samples.png``, ``shrinkage.png``,
``probe_pass_rates.png``, ``task_distribution.png``); with the wide measurement also
``wide_passk.csv``, ``wide_passk.md`` and ``wide_passk.png`` (pass@k for k up to
``wide_samples`` on the first ``wide_prompts`` held-out prompts: the starting model and every
N at the end).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from brorl.sweep.config import SweepConfig
from brorl.sweep.runner import DONE_FILE, WIDE_START_FILE, step_samples
from brorl.sweep.taskchoice import BINS, distribution

__all__ = ["write_report", "run_summary", "summarize", "table1", "wide_table", "RUN_FIELDS", "SUMMARY_FIELDS"]

# one row of runs.csv; SUMMARY_FIELDS get a mean and a spread per N
RUN_FIELDS = (
    "n", "seed", "prompts_per_step", "lr", "steps", "samples_generated", "train_seconds", "wall_seconds",
    "pass1_start", "pass1_end", "pass1_end_se", "pass1_gain", "passk_start", "passk_end", "passk_gain", "k_max", "probe_pass_start",
    "probe_pass_end", "rollouts_trained", "discarded_share", "zero_signal_share", "refill_rounds_mean", "shrink_revisit_fell", "shrink_revisit_lost",
    "revisits", "probe_fell_share", "probe_lost_share", "unsampled_m2_mean", "wide_k_max", "wide_pass1_end",
    "wide_passk_end",
)
SUMMARY_FIELDS = (
    "pass1_end", "pass1_gain", "passk_end", "passk_gain", "probe_pass_end", "samples_generated", "rollouts_trained",
    "train_seconds", "wall_seconds", "discarded_share", "zero_signal_share", "shrink_revisit_fell", "shrink_revisit_lost", "probe_fell_share",
    "probe_lost_share", "unsampled_m2_mean", "wide_pass1_end", "wide_passk_end",
)



def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def run_summary(rec: dict, metrics: list[dict]) -> dict[str, float]:
    """One run's numbers from its ``sweep_run.json`` record and its ``metrics.jsonl`` rows.

    discarded_share: generated samples not trained on (dynamic sampling's zero-variance groups
    and surplus groups) / generated samples. zero_signal_share: generated groups whose rewards
    were all equal. shrink_revisit_*: the loop's knowledge-shrinkage counters pooled over the
    run (prompts drawn again in a later step; their pass rates come from N samples, so they
    are noisier at small N). probe_*: the probe set at the end vs before training, every
    prompt measured with the same number of samples for every N: share whose pass rate fell,
    share of those solved before (pass rate > 0) that are solved by no sample at the end."""
    ev = rec["evals"]
    first, last = ev[0], ev[-1]
    ps = rec["probe_samples"]
    p0 = np.asarray(first["probe_correct"], dtype=np.float64) / ps
    p1 = np.asarray(last["probe_correct"], dtype=np.float64) / ps
    solved0 = p0 > 0
    gen = sum(step_samples(m, rec["n"]) for m in metrics)
    trained = sum(_num(m.get("rollouts_trained")) for m in metrics if math.isfinite(_num(m.get("rollouts_trained"))))
    groups = sum(_num(m.get("groups_generated")) for m in metrics)
    kept_ok = sum(_num(m.get("kept_group_share")) * _num(m.get("groups_generated")) for m in metrics)
    rev = sum(_num(m.get("shrink/revisited")) for m in metrics)
    fell = sum(_num(m.get("shrink/fell_share")) * _num(m.get("shrink/revisited")) for m in metrics)
    prev_solved = sum(_num(m.get("shrink/prev_solved", 0.0)) for m in metrics)
    lost = sum(_num(m.get("shrink/lost_share")) * _num(m.get("shrink/prev_solved", 0.0)) for m in metrics)
    m2 = [_num(m.get("theory/unsampled_m2")) for m in metrics]
    m2 = [v for v in m2 if math.isfinite(v)]
    kmax = str(rec["eval_samples"])
    wide = rec.get("wide_end") or {}
    wk = str(wide.get("samples", ""))
    return {
        "n": rec["n"], "seed": rec["seed"], "prompts_per_step": rec["prompts_per_step"], "lr": rec["lr"],
        "steps": rec["steps"], "samples_generated": float(rec["samples_generated"]),
        "train_seconds": rec["train_seconds"], "wall_seconds": rec["wall_seconds"],
        "pass1_start": first["heldout_pass_at_k"]["1"], "pass1_end": last["heldout_pass_at_k"]["1"],
        # sampling error of one measurement: sd of per-prompt pass rates / sqrt(prompts)
        "pass1_end_se": float(np.std(np.asarray(last["heldout_correct"]) / rec["eval_samples"], ddof=1)
                              / math.sqrt(len(last["heldout_correct"]))) if len(last["heldout_correct"]) > 1 else float("nan"),
        "pass1_gain": last["heldout_pass_at_k"]["1"] - first["heldout_pass_at_k"]["1"],
        "passk_start": first["heldout_pass_at_k"][kmax], "passk_end": last["heldout_pass_at_k"][kmax],
        "passk_gain": last["heldout_pass_at_k"][kmax] - first["heldout_pass_at_k"][kmax], "k_max": int(kmax),
        "rollouts_trained": trained,
        "probe_pass_start": float(p0.mean()), "probe_pass_end": float(p1.mean()),
        "discarded_share": 1.0 - trained / gen if gen else float("nan"),
        "zero_signal_share": 1.0 - kept_ok / groups if groups else float("nan"),
        "refill_rounds_mean": float(np.mean([_num(m.get("gen_rounds")) for m in metrics])) if metrics else float("nan"),
        "shrink_revisit_fell": fell / rev if rev else float("nan"),
        "shrink_revisit_lost": lost / prev_solved if prev_solved else float("nan"),
        "revisits": rev,
        "probe_fell_share": float((p1 < p0).mean()),
        "probe_lost_share": float((p1[solved0] == 0).mean()) if solved0.any() else float("nan"),
        "unsampled_m2_mean": float(np.mean(m2)) if m2 else float("nan"),
        # the wide measurement at the end (nan without one)
        "wide_k_max": int(wk) if wk else 0,
        "wide_pass1_end": float(wide["pass_at_k"]["1"]) if wide else float("nan"),
        "wide_passk_end": float(wide["pass_at_k"][wk]) if wide else float("nan"),
    }


def _mean_sd(vals: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in vals if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def summarize(rows: list[dict]) -> list[dict]:
    """Per N (ascending): seeds finished, and mean / sample standard deviation over seeds of
    every SUMMARY_FIELDS column."""
    out = []
    for n in sorted({r["n"] for r in rows}):
        rs = [r for r in rows if r["n"] == n]
        s: dict[str, Any] = {"n": n, "seeds": len(rs), "prompts_per_step": rs[0]["prompts_per_step"], "lr": rs[0]["lr"]}
        for f in SUMMARY_FIELDS:
            s[f + "_mean"], s[f + "_sd"] = _mean_sd([r[f] for r in rs])
        out.append(s)
    return out


def _at_time(ev: list[dict], t: float, key: str = "1") -> float:
    """Held-out pass@k at training wall time ``t``, linear between measurements."""
    xs = [e["train_seconds"] for e in ev]
    ys = [e["heldout_pass_at_k"][key] for e in ev]
    return float(np.interp(t, xs, ys))


def table1(records: list[dict], small_n: int, large_n: int) -> dict[str, Any]:
    """The paper's Table-1 shape, scaled down: large N x fewer prompts vs small N x more
    prompts, compared at equal training wall time. Per seed with both runs finished, T is the
    shorter of the two runs' training time and each arm's held-out pass@1 is read at T."""
    by = {(r["n"], r["seed"]): r for r in records}
    rows = []
    for seed in sorted({r["seed"] for r in records}):
        a, b = by.get((small_n, seed)), by.get((large_n, seed))
        if a is None or b is None:
            continue
        t = min(a["train_seconds"], b["train_seconds"])
        sa = float(np.interp(t, [e["train_seconds"] for e in a["evals"]], [e["samples_generated"] for e in a["evals"]]))
        sb = float(np.interp(t, [e["train_seconds"] for e in b["evals"]], [e["samples_generated"] for e in b["evals"]]))
        rows.append({"seed": seed, "wall_seconds": t, "small_pass1": _at_time(a["evals"], t),
                     "large_pass1": _at_time(b["evals"], t), "small_samples": sa, "large_samples": sb,
                     "start_pass1": a["evals"][0]["heldout_pass_at_k"]["1"]})
    d = [r["large_pass1"] - r["small_pass1"] for r in rows]
    mean, sd = _mean_sd(d)
    return {"small_n": small_n, "large_n": large_n, "rows": rows, "diff_mean": mean, "diff_sd": sd}


def wide_table(records: list[dict], start: dict | None) -> dict[str, Any]:
    """Pass@k on the wide set for k = 1, 2, 4, ... up to its samples per prompt: the starting
    model (one measurement) and, per N, mean and sample sd over seeds at the end. Only runs
    whose wide measurement used the same prompts and samples as the start's are pooled."""
    ends = [r for r in records if r.get("wide_end")]
    ref = start or (ends[0]["wide_end"] if ends else None)
    if ref is None:
        return {}
    ks = list(ref["pass_at_k"])
    same = [r for r in ends if r["wide_end"]["samples"] == ref["samples"] and r["wide_end"]["uids"] == ref["uids"]]
    per_n = {}
    for n in sorted({r["n"] for r in same}):
        rs = [r["wide_end"]["pass_at_k"] for r in same if r["n"] == n]
        per_n[n] = {"seeds": len(rs), **{k: _mean_sd([float(x[k]) for x in rs]) for k in ks}}
    return {"ks": [int(k) for k in ks], "samples": ref["samples"], "prompts": len(ref["uids"]),
            "start": {k: float(v) for k, v in start["pass_at_k"].items()} if start else None, "end": per_n}


def wide_markdown(w: dict) -> str:
    ks = [str(k) for k in w["ks"]]
    lines = [f"pass@k on {w['prompts']} held-out prompts x {w['samples']} samples each (unbiased estimator); "
             "end: mean ± sd over seeds\n",
             "| model | seeds | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|" + "---|" * (len(ks) + 2)]
    if w.get("start"):
        lines.append("| start (common) | - | " + " | ".join(f"{w['start'][k]:.3f}" for k in ks) + " |")
    for n, row in w["end"].items():
        lines.append(f"| N={n} end | {row['seeds']} | " + " | ".join(_fmt(*row[k]) for k in ks) + " |")
    return "\n".join(lines) + "\n"


def _fmt(m: float, s: float, digits: int = 3) -> str:
    if not math.isfinite(m):
        return "n/a"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if math.isfinite(s) else "")


def summary_markdown(summ: list[dict], kmax: int, wide_k: int = 0) -> str:
    wide = wide_k > 0 and any(math.isfinite(s["wide_passk_end_mean"]) for s in summ)
    lines = [
        f"| N | prompts/step | seeds | held-out pass@1 end | gain vs start | pass@{kmax} end | gain vs start | "
        "samples generated | rollouts trained | train wall s | discarded share | zero-signal groups | probe fell | probe solved->lost | revisit fell | "
        "revisit lost | unsampled m2 |" + (f" wide pass@1 end | wide pass@{wide_k} end |" if wide else ""),
        "|" + "---|" * (19 if wide else 17),
    ]
    for s in summ:
        lines.append(
            f"| {s['n']} | {s['prompts_per_step']} | {s['seeds']} | {_fmt(s['pass1_end_mean'], s['pass1_end_sd'])} | "
            f"{_fmt(s['pass1_gain_mean'], s['pass1_gain_sd'])} | {_fmt(s['passk_end_mean'], s['passk_end_sd'])} | "
            f"{_fmt(s['passk_gain_mean'], s['passk_gain_sd'])} | "
            f"{s['samples_generated_mean']:.0f} | {s['rollouts_trained_mean']:.0f} | "
            f"{_fmt(s['train_seconds_mean'], s['train_seconds_sd'], 0)} | "
            f"{_fmt(s['discarded_share_mean'], s['discarded_share_sd'], 2)} | "
            f"{_fmt(s['zero_signal_share_mean'], s['zero_signal_share_sd'], 2)} | "
            f"{_fmt(s['probe_fell_share_mean'], s['probe_fell_share_sd'], 2)} | "
            f"{_fmt(s['probe_lost_share_mean'], s['probe_lost_share_sd'], 2)} | "
            f"{_fmt(s['shrink_revisit_fell_mean'], s['shrink_revisit_fell_sd'], 2)} | "
            f"{_fmt(s['shrink_revisit_lost_mean'], s['shrink_revisit_lost_sd'], 2)} | "
            f"{s['unsampled_m2_mean_mean']:.2e} |"
            + (f" {_fmt(s['wide_pass1_end_mean'], s['wide_pass1_end_sd'])} | "
               f"{_fmt(s['wide_passk_end_mean'], s['wide_passk_end_sd'])} |" if wide else ""))
    return "\n".join(lines) + "\n"


def table1_markdown(t: dict) -> str:
    lines = [f"| seed | equal wall time (s) | pass@1 before | N={t['small_n']} pass@1 | N={t['large_n']} pass@1 | "
             f"N={t['small_n']} samples | N={t['large_n']} samples |", "|---|---|---|---|---|---|---|"]
    for r in t["rows"]:
        lines.append(f"| {r['seed']} | {r['wall_seconds']:.0f} | {r['start_pass1']:.3f} | {r['small_pass1']:.3f} | "
                     f"{r['large_pass1']:.3f} | {r['small_samples']:.0f} | {r['large_samples']:.0f} |")
    k = len(t["rows"])
    spread = f"mean ± sd over {k} seeds" if k > 1 else "one seed, no spread"
    lines.append(f"\nN={t['large_n']} minus N={t['small_n']} at equal wall time: {_fmt(t['diff_mean'], t['diff_sd'])} "
                 f"({spread})\n")
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict], fields: list[str] | tuple[str, ...]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def _start_distribution(records: list[dict]) -> dict[str, Any]:
    """The starting model's probe pass rates (measured before the first step; identical for
    every N of a seed, so one run per seed), pooled over seeds."""
    rates: list[float] = []
    seen = set()
    for r in records:
        if r["seed"] in seen:
            continue
        seen.add(r["seed"])
        rates += [c / r["probe_samples"] for c in r["evals"][0]["probe_correct"]]
    held: list[float] = []
    seen = set()
    for r in records:
        if r["seed"] in seen:
            continue
        seen.add(r["seed"])
        held += [c / r["eval_samples"] for c in r["evals"][0]["heldout_correct"]]
    return {"probe": distribution(rates), "heldout": distribution(held)}


def _plots(out: Path, records: list[dict], summ: list[dict], dist: dict, wide: dict | None = None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r["n"] for r in records})
    colors = {n: plt.cm.viridis(i / max(len(ns) - 1, 1)) for i, n in enumerate(ns)}
    files = []

    def curves(key: str, xkey: str, k: str) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        res = {}
        for n in ns:
            rs = [r for r in records if r["n"] == n]
            m = min(len(r["evals"]) for r in rs)
            xs = np.array([[r["evals"][i][xkey] for i in range(m)] for r in rs])
            ys = np.array([[r["evals"][i][key][k] for i in range(m)] for r in rs])
            sd = ys.std(axis=0, ddof=1) if len(rs) > 1 else np.zeros(m)
            res[n] = (xs.mean(axis=0), ys.mean(axis=0), sd)
        return res

    kmax = str(records[0]["eval_samples"])
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for row, k in enumerate(("1", kmax)):
        for col, (xkey, xlabel) in enumerate((("samples_generated", "samples generated"),
                                              ("train_seconds", "training wall time (s)"))):
            ax = axes[row, col]
            for n, (x, y, sd) in curves("heldout_pass_at_k", xkey, k).items():
                ax.errorbar(x, y, yerr=sd, marker="o", capsize=3, color=colors[n], label=f"N={n}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"held-out pass@{k}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("held-out pass@k (mean ± sd over seeds) at equal samples per step")
    fig.tight_layout()
    fig.savefig(out / "heldout_pass1.png", dpi=80)
    plt.close(fig)
    files.append("heldout_pass1.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ks = [int(k) for k in records[0]["evals"][0]["heldout_pass_at_k"]]
    start = np.mean([[r["evals"][0]["heldout_pass_at_k"][str(k)] for k in ks] for r in records], axis=0)
    ax.plot(ks, start, "k--", marker=".", label="before training")
    for n in ns:
        rs = [r for r in records if r["n"] == n]
        y = np.array([[r["evals"][-1]["heldout_pass_at_k"][str(k)] for k in ks] for r in rs])
        ax.errorbar(ks, y.mean(axis=0), yerr=y.std(axis=0, ddof=1) if len(rs) > 1 else None, marker="o", capsize=3,
                    color=colors[n], label=f"N={n} end")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("held-out pass@k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "heldout_passk.png", dpi=80)
    plt.close(fig)
    files.append("heldout_passk.png")

    def bars(ax: Any, field: str, title: str) -> None:
        m = [s[field + "_mean"] for s in summ]
        e = [0.0 if not math.isfinite(s[field + "_sd"]) else s[field + "_sd"] for s in summ]
        ax.bar([str(s["n"]) for s in summ], m, yerr=e, capsize=4, color=[colors[s["n"]] for s in summ])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("N")
        ax.grid(alpha=0.3, axis="y")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    bars(axes[0], "discarded_share", "generated samples not trained on")
    bars(axes[1], "zero_signal_share", "groups with all-equal rewards")
    for n in ns:
        rs = [r for r in records if r["n"] == n]
        m2 = np.array([[_num(m.get("theory/unsampled_m2")) for m in r["_metrics"]] for r in rs])
        axes[2].plot(np.arange(1, m2.shape[1] + 1), np.nanmean(m2, axis=0), marker=".", color=colors[n], label=f"N={n}")
    axes[2].set_title("theory/unsampled_m2 per step (mean over seeds)", fontsize=9)
    axes[2].set_xlabel("step")
    axes[2].set_yscale("symlog", linthresh=1e-6)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=80)
    plt.close(fig)
    files.append("samples.png")

    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    bars(axes[0], "probe_fell_share", "probe prompts whose pass rate fell")
    bars(axes[1], "probe_lost_share", "probe prompts solved before, lost at end")
    bars(axes[2], "shrink_revisit_fell", "revisited prompts whose pass rate fell (loop)")
    bars(axes[3], "shrink_revisit_lost", "revisited solved prompts lost (loop)")
    fig.suptitle("knowledge shrinkage (mean ± sd over seeds)")
    fig.tight_layout()
    fig.savefig(out / "shrinkage.png", dpi=80)
    plt.close(fig)
    files.append("shrinkage.png")

    fig, axes = plt.subplots(1, len(ns), figsize=(3.6 * len(ns), 3.6), squeeze=False)
    for ax, n in zip(axes[0], ns):
        rs = [r for r in records if r["n"] == n]
        x = np.concatenate([np.asarray(r["evals"][0]["probe_correct"]) / r["probe_samples"] for r in rs])
        y = np.concatenate([np.asarray(r["evals"][-1]["probe_correct"]) / r["probe_samples"] for r in rs])
        jitter = np.random.default_rng(0).uniform(-0.01, 0.01, size=x.shape)
        ax.scatter(x + jitter, y, s=10, alpha=0.6, color=colors[n])
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_title(f"N={n}: probe prompts", fontsize=9)
        ax.set_xlabel("pass rate before")
        ax.set_ylabel("pass rate at end")
    fig.tight_layout()
    fig.savefig(out / "probe_pass_rates.png", dpi=80)
    plt.close(fig)
    files.append("probe_pass_rates.png")

    if wide:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        ks = wide["ks"]
        if wide.get("start"):
            st = np.array([wide["start"][str(k)] for k in ks])
            ax.plot(ks, st, "k--", marker=".", label="start (common model)")
        for n, row in wide["end"].items():
            m = np.array([row[str(k)][0] for k in ks])
            sd = np.array([row[str(k)][1] for k in ks])
            sd = np.where(np.isfinite(sd), sd, 0.0)
            ax.errorbar(ks, m, yerr=sd, marker="o", capsize=3, color=colors.get(n, "gray"), label=f"N={n} end")
            if wide.get("start"):
                ax2.errorbar(ks, m - st, yerr=sd, marker="o", capsize=3, color=colors.get(n, "gray"), label=f"N={n}")
        ax2.axhline(0.0, color="k", lw=1, ls=":")
        for a, yl in ((ax, "pass@k"), (ax2, "pass@k at end minus start")):
            a.set_xscale("log", base=2)
            a.set_xlabel("k")
            a.set_ylabel(yl)
            a.grid(alpha=0.3)
            a.legend(fontsize=8)
        fig.suptitle(f"pass@k up to k={wide['samples']}: {wide['prompts']} held-out prompts x {wide['samples']} "
                     "samples (mean ± sd over seeds)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "wide_passk.png", dpi=80)
        plt.close(fig)
        files.append("wide_passk.png")

    fig, ax = plt.subplots(figsize=(7, 3.8))
    labels = [b[0] for b in BINS]
    w = 0.4
    xs = np.arange(len(labels))
    ax.bar(xs - w / 2, [dist["probe"]["bins"][lab] for lab in labels], w, label="probe (training prompts)")
    ax.bar(xs + w / 2, [dist["heldout"]["bins"][lab] for lab in labels], w, label="held-out prompts")
    ax.set_xticks(xs, labels)
    ax.set_xlabel("per-prompt pass rate of the starting model")
    ax.set_ylabel("share of prompts")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "task_distribution.png", dpi=80)
    plt.close(fig)
    files.append("task_distribution.png")
    return files


def write_report(out: Path, sw: SweepConfig, train: dict) -> dict[str, Any]:
    """Rebuild the report in ``out`` from every finished run; returns report.json's content."""
    out = Path(out)
    records = []
    for p in sorted((out / "runs").glob(f"*/{DONE_FILE}")):
        rec = json.loads(p.read_text())
        rec["_metrics"] = _read_jsonl(p.parent / "metrics.jsonl")
        records.append(rec)
    grid = [(n, s) for s in sw.seeds for n in sw.ns]
    done = {(r["n"], r["seed"]) for r in records}
    report: dict[str, Any] = {
        "settings": {k: getattr(sw, k) for k in sw.__dataclass_fields__}, "train": train,
        "lr_rule": "lr = lr0 * sqrt(B / B0), B = N * prompts_per_step = samples_per_step for every N",
        "runs_finished": len(records), "runs_planned": len(grid),
        "missing": [f"n{n}_seed{s}" for n, s in grid if (n, s) not in done],
    }
    if not records:
        (out / "report.json").write_text(json.dumps(report, indent=1))
        return report
    records.sort(key=lambda r: (r["n"], r["seed"]))
    rows = [run_summary(r, r["_metrics"]) for r in records]
    summ = summarize(rows)
    t1 = table1(records, sw.table1_small_n, sw.table1_large_n if sw.table1_large_n is not None else max(sw.ns))
    dist = _start_distribution(records)
    kmax = sw.eval_samples
    report.update({"runs": rows, "summary": summ, "table1": t1, "start_distribution": dist,
                   "total_wall_seconds": float(sum(r["wall_seconds"] for r in records))})
    _write_csv(out / "runs.csv", rows, RUN_FIELDS)
    sfields = ["n", "prompts_per_step", "lr", "seeds"] + [f + s for f in SUMMARY_FIELDS for s in ("_mean", "_sd")]
    _write_csv(out / "summary.csv", summ, sfields)
    (out / "summary.md").write_text(summary_markdown(summ, kmax, max((r["wide_k_max"] for r in rows), default=0)))
    (out / "table1.md").write_text(table1_markdown(t1))
    ev_rows, probe_rows = [], []
    for r in records:
        for e in r["evals"]:
            for k, v in e["heldout_pass_at_k"].items():
                ev_rows.append({"n": r["n"], "seed": r["seed"], "step": e["step"], "samples_generated": e["samples_generated"],
                                "train_seconds": e["train_seconds"], "k": int(k), "pass_at_k": v})
            for uid, c in zip(e["probe_uids"], e["probe_correct"]):
                probe_rows.append({"n": r["n"], "seed": r["seed"], "step": e["step"], "uid": uid,
                                   "pass_rate": c / r["probe_samples"]})
    _write_csv(out / "evals.csv", ev_rows, ["n", "seed", "step", "samples_generated", "train_seconds", "k", "pass_at_k"])
    _write_csv(out / "probe.csv", probe_rows, ["n", "seed", "step", "uid", "pass_rate"])
    from brorl.sweep.taskchoice import distribution_markdown

    (out / "task_distribution.md").write_text(distribution_markdown({
        "probe (training prompts), before training": {**dist["probe"], "samples": sw.probe_samples},
        "held-out prompts, before training": {**dist["heldout"], "samples": sw.eval_samples},
    }))
    start_file = out / WIDE_START_FILE
    wide_start = json.loads(start_file.read_text()) if start_file.is_file() else next(
        (r["wide_start"] for r in records if r.get("wide_start")), None)
    wide = wide_table(records, wide_start)
    report["wide_passk"] = wide
    if wide:
        (out / "wide_passk.md").write_text(wide_markdown(wide))
        wrows = []
        if wide.get("start"):
            wrows += [{"model": "start", "n": "", "seed": "", "k": k, "pass_at_k": wide["start"][str(k)]} for k in wide["ks"]]
        for r in records:
            if r.get("wide_end") and r["wide_end"]["samples"] == wide["samples"]:
                wrows += [{"model": "end", "n": r["n"], "seed": r["seed"], "k": int(k), "pass_at_k": v}
                          for k, v in r["wide_end"]["pass_at_k"].items()]
        _write_csv(out / "wide_passk.csv", wrows, ["model", "n", "seed", "k", "pass_at_k"])
    report["plots"] = _plots(out, records, summ, dist, wide)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    return report
