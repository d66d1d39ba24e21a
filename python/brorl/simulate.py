"""``brorl simulate``: the toy experiment of BroRL's Figure 3 (arXiv 2510.01180, Sec. 3.3).

One softmax "policy" over a vocabulary of 128,000 tokens, 10,000 of them correct (reward +1,
the rest -1). Logits start at 0, except the correct tokens at 3 and one incorrect "anchor"
token at 5 (so Q_pos starts at about 0.63). Each step draws N i.i.d. tokens at temperature 1,
subtracts the mean sampled reward as baseline and minimises the linear surrogate

    loss = -(1/N) * sum_j (R_j - b) * p_{y_j}        (repeated draws count each time)

with AdamW (lr 1e-3) on the logits, for 1,000 steps and N in {4, 8, 16, 512, 51200}. The claim
to check: with large N the correct mass Q_pos grows faster and steadily, and no correct token
loses probability; with small N some correct tokens shrink.

Every N (and seed) is an independent run; the seeds of one N share a [S, V] logits tensor, which
is exact because AdamW is element-wise. Besides the paper's three curves we record, per step,
the three terms of the mass balance equation for the step's sampled set with the baseline-shifted
rewards R_c = 1 - b and R_w = -1 - b (`brorl.theory.mass_balance_from_masks`). Note that the
equation describes a plain gradient step; the toy uses AdamW as the paper does, so the terms
show which forces act at each step, not the exact size of the AdamW step.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brorl.errors import ConfigError

__all__ = ["ToyConfig", "simulate", "summarize", "plot_toy", "add_arguments", "run"]

PAPER_NS = (4, 8, 16, 512, 51200)

CSV_COLUMNS = [
    "n", "seed", "step", "q_pos", "improved_pct", "min_change", "reward_mean",
    "sampled_correct", "sampled_incorrect", "unsampled", "unsampled_share", "expected_unsampled_m2",
]  # fmt: skip


@dataclass(frozen=True)
class ToyConfig:
    """The toy experiment's setup; the defaults are the paper's."""

    ns: tuple[int, ...] = PAPER_NS  # rollouts per step; one independent run per value
    steps: int = 1000  # optimizer steps per run
    seeds: tuple[int, ...] = (0,)  # one run per seed and N, sampling seeded by (seed, N)
    vocab: int = 128_000  # vocabulary size V
    n_correct: int = 10_000  # correct tokens (ids 0 .. n_correct-1), reward `reward_correct`
    correct_logit: float = 3.0  # initial logit of every correct token
    anchor_logit: float = 5.0  # initial logit of the one incorrect anchor token (id n_correct)
    reward_correct: float = 1.0
    reward_wrong: float = -1.0
    temperature: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 0.01  # torch's AdamW default; the paper states only "AdamW, lr 1e-3"
    eps: float = 1e-8  # AdamW eps (torch default)
    dtype: str = "float32"  # logits dtype: float32 or float64
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes saved with the run

    def __post_init__(self) -> None:
        def bad(name: str, value: Any, what: str) -> ConfigError:
            return ConfigError(f"{name} must be {what}, got {value!r}")

        if not self.ns:
            raise bad("ns", self.ns, "a non-empty list of rollout counts")
        for n in self.ns:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise bad("ns", n, "integers >= 1")
        if len(set(self.ns)) != len(self.ns):
            raise bad("ns", self.ns, "distinct")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise bad("steps", self.steps, "an integer >= 1")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise bad("seeds", self.seeds, "a non-empty list of integers >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            raise bad("seeds", self.seeds, "distinct")
        if isinstance(self.vocab, bool) or not isinstance(self.vocab, int) or self.vocab < 3:
            raise bad("vocab", self.vocab, "an integer >= 3")
        if not isinstance(self.n_correct, int) or not 1 <= self.n_correct <= self.vocab - 2:
            raise bad("n_correct", self.n_correct, f"an integer in [1, vocab - 2 = {self.vocab - 2}]")
        for name in ("correct_logit", "anchor_logit", "reward_correct", "reward_wrong", "weight_decay"):
            if not math.isfinite(getattr(self, name)):
                raise bad(name, getattr(self, name), "finite")
        if not self.reward_correct > self.reward_wrong:
            raise bad("reward_correct", self.reward_correct, f"> reward_wrong ({self.reward_wrong})")
        for name in ("temperature", "lr", "eps"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise bad(name, v, "a finite number > 0")
        if self.weight_decay < 0:
            raise bad("weight_decay", self.weight_decay, ">= 0")
        if self.dtype not in ("float32", "float64"):
            raise bad("dtype", self.dtype, "'float32' or 'float64'")


def initial_logits(cfg: ToyConfig) -> Any:
    """[V] float64 torch tensor: 0, correct tokens at `correct_logit`, anchor at `anchor_logit`."""
    import torch

    z = torch.zeros(cfg.vocab, dtype=torch.float64)
    z[: cfg.n_correct] = cfg.correct_logit
    z[cfg.n_correct] = cfg.anchor_logit  # the anchor is the first incorrect token
    return z


def _run_one_n(cfg: ToyConfig, n: int, progress: bool) -> dict[str, Any]:
    """All seeds of one N. Returns per-step metric arrays of shape [steps + 1, S] (NumPy)."""
    import numpy as np
    import torch

    from brorl.theory import mass_balance_from_masks

    dtype = torch.float32 if cfg.dtype == "float32" else torch.float64
    n_seeds = len(cfg.seeds)
    z = initial_logits(cfg).to(dtype).repeat(n_seeds, 1).requires_grad_(True)  # [S, V]
    opt = torch.optim.AdamW([z], lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.eps)
    correct = torch.zeros(cfg.vocab, dtype=torch.bool)
    correct[: cfg.n_correct] = True
    rewards = torch.where(correct, cfg.reward_correct, cfg.reward_wrong).to(dtype)  # [V]
    # Seeding by (seed, N) keeps each run's samples independent of which other N or seeds run.
    gens = [torch.Generator().manual_seed(s * 1_000_003 + n) for s in cfg.seeds]

    rows = cfg.steps + 1
    out = {k: np.full((rows, n_seeds), np.nan) for k in CSV_COLUMNS[3:]}
    with torch.no_grad():
        p0 = torch.softmax(z / cfg.temperature, -1)[:, : cfg.n_correct].clone()

    def record_state(t: int, p: Any) -> None:
        pc = p[:, : cfg.n_correct]
        out["q_pos"][t] = pc.sum(-1).double().numpy()
        out["improved_pct"][t] = (100.0 * (pc > p0).double().mean(-1)).numpy()
        out["min_change"][t] = (pc - p0).min(-1).values.double().numpy()

    t0 = time.perf_counter()
    for t in range(cfg.steps):
        p = torch.softmax(z / cfg.temperature, -1)  # [S, V], with grad
        pd = p.detach()
        if t == 0:
            record_state(0, pd)
        ids = torch.stack([torch.multinomial(pd[i], n, replacement=True, generator=g) for i, g in enumerate(gens)])
        r = rewards[ids]  # [S, N]
        b = r.mean(-1, keepdim=True)  # baseline: mean sampled reward
        loss = -((r - b) * p.gather(-1, ids)).sum(-1).div(n).sum()  # seeds are independent rows
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            sampled = torch.zeros_like(pd, dtype=torch.bool).scatter_(1, ids, True)
            bb = b.squeeze(-1).double()
            mb = mass_balance_from_masks(
                pd.double(), correct, sampled, cfg.reward_correct - bb, cfg.reward_wrong - bb
            )
            t1, t2, t3 = mb.sampled_correct, mb.sampled_incorrect, mb.unsampled
            row = t + 1  # terms of the sample that produced the state of this row
            out["reward_mean"][row] = bb.numpy()
            out["sampled_correct"][row] = t1.numpy()
            out["sampled_incorrect"][row] = t2.numpy()
            out["unsampled"][row] = t3.numpy()
            denom = t1.abs() + t2.abs() + t3.abs()
            # No force at all (every draw had the same reward, so R - b = 0): no share to report.
            out["unsampled_share"][row] = torch.where(denom > 0, t3.abs() / denom, torch.nan).numpy()
            w = torch.exp(n * torch.log1p(-pd.double()))  # E[U_2] = sum p^2 (1-p)^N, per seed
            out["expected_unsampled_m2"][row] = (pd.double() ** 2 * w).sum(-1).numpy()
        opt.step()
        with torch.no_grad():
            record_state(t + 1, torch.softmax(z / cfg.temperature, -1))
        if progress and (t + 1) % max(1, cfg.steps // 4) == 0:
            print(f"  N={n}: step {t + 1}/{cfg.steps} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return out


def simulate(cfg: ToyConfig, progress: bool = False, threads: int | None = 1) -> dict[int, dict[str, Any]]:
    """Run the toy for every N of `cfg`. Returns {N: {metric: array [steps + 1, S]}}; row t is the
    state after t updates (q_pos, improved_pct, min_change) and the terms of update t's sample
    (reward_mean, the three mass-balance terms, unsampled_share, expected_unsampled_m2; NaN at t=0).

    `threads`: torch CPU threads for the run (restored afterwards; None keeps torch's setting).
    One thread is the default because each op touches only [S, V] = [1, 128k] numbers, too few
    to split, and on a busy machine idle OpenMP threads spinning made a run ~20x slower.
    """
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an integer >= 1 or None, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        return {n: _run_one_n(cfg, n, progress) for n in cfg.ns}
    finally:
        torch.set_num_threads(before)


def summarize(results: dict[int, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per N, averaged over seeds: final Q_pos, final % of correct tokens improved, final worst
    change among correct tokens, the worst change over the whole run, the share of steps where
    Q_pos fell, and the mean share of the unsampled term."""
    import numpy as np

    summary = {}
    for n, m in results.items():
        q = m["q_pos"]
        summary[str(n)] = {
            "q_pos_start": float(q[0].mean()),
            "q_pos_final": float(q[-1].mean()),
            "improved_pct_final": float(m["improved_pct"][-1].mean()),
            "min_change_final": float(m["min_change"][-1].mean()),
            "min_change_worst": float(np.nanmin(m["min_change"])),
            "q_pos_fell_steps_pct": float(100.0 * (np.diff(q, axis=0) < 0).mean()),
            "unsampled_share_mean": float(np.nanmean(m["unsampled_share"])),
        }
    return summary


def write_csv(path: Path, cfg: ToyConfig, results: dict[int, dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for n, m in results.items():
            for si, seed in enumerate(cfg.seeds):
                for t in range(cfg.steps + 1):
                    w.writerow([n, seed, t] + [f"{m[k][t, si]:.9g}" for k in CSV_COLUMNS[3:]])


def _smooth(y: Any, window: int) -> Any:
    """Trailing moving average that ignores NaN (for the noisy per-step terms)."""
    import numpy as np

    ok = np.isfinite(y)
    c = np.cumsum(np.where(ok, y, 0.0))
    k = np.cumsum(ok)
    c = np.r_[0.0, c]
    k = np.r_[0, k]
    i = np.arange(1, len(y) + 1)
    lo = np.maximum(i - window, 0)
    cnt = k[i] - k[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (c[i] - c[lo]) / cnt, np.nan)


def plot_toy(path: Path, cfg: ToyConfig, results: dict[int, dict[str, Any]]) -> None:
    """One PNG, four panels: Q_pos, % correct tokens improved, worst change among correct tokens
    (the paper's three), and the share of the unsampled coupling term in the mass balance."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; set before pyplot is imported anywhere
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8.5), dpi=90)
    axes = fig.subplots(2, 2)
    steps = np.arange(cfg.steps + 1)
    cmap = matplotlib.colormaps["viridis"]
    window = max(1, cfg.steps // 40)
    for k, (n, m) in enumerate(results.items()):
        color = cmap(k / max(1, len(results) - 1) * 0.9)
        label = f"N={n}"
        for ax, key, scale in [
            (axes[0, 0], "q_pos", 1.0),
            (axes[0, 1], "improved_pct", 1.0),
            (axes[1, 0], "min_change", 1.0),
        ]:
            y = m[key] * scale
            ax.plot(steps, y.mean(-1), color=color, label=label, lw=1.3)
            if y.shape[1] > 1:
                ax.fill_between(steps, y.min(-1), y.max(-1), color=color, alpha=0.15, lw=0)
        share = _smooth(m["unsampled_share"].mean(-1), window)
        axes[1, 1].plot(steps, share, color=color, label=label, lw=1.3)
    axes[0, 0].set(title="correct mass $Q_{pos}$", xlabel="step", ylabel="$Q_{pos}$")
    axes[0, 1].set(title="correct tokens whose probability rose vs step 0", xlabel="step", ylabel="%")
    axes[1, 0].set(
        title="worst change among correct tokens", xlabel="step", ylabel="$\\min_{i \\in P}\\, p_i(t) - p_i(0)$"
    )
    axes[1, 0].axhline(0.0, color="grey", lw=0.8, ls="--")
    axes[1, 1].set(
        title=f"unsampled coupling share $|T_3| / (T_1 + T_2 + |T_3|)$ (mean of {window} steps)",
        xlabel="step",
        ylabel="share",
        yscale="log",
    )
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="best", fontsize=9)
    seeds = ", ".join(map(str, cfg.seeds))
    fig.suptitle(
        f"BroRL toy (Fig. 3): V={cfg.vocab:,}, {cfg.n_correct:,} correct, AdamW lr {cfg.lr:g}, seeds {seeds}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = ToyConfig()
    p.add_argument("--ns", type=int, nargs="+", default=list(d.ns), help="rollouts per step, one run each")
    p.add_argument("--steps", type=int, default=d.steps, help="AdamW steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds), help="seeds (curves show mean and range)")
    p.add_argument("--vocab", type=int, default=d.vocab, help="vocabulary size")
    p.add_argument("--n-correct", type=int, default=d.n_correct, help="number of correct tokens")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--eps", type=float, default=d.eps, help="AdamW eps")
    p.add_argument("--temperature", type=float, default=d.temperature, help="sampling temperature")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype, help="logits dtype")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for V=128k)")
    p.add_argument("--out", type=Path, default=Path("runs/simulate"), help="output directory")
    p.add_argument("--png", type=Path, default=None, help="PNG path (default: OUT/toy.png)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ConfigError as e:
        print(f"brorl simulate: error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    cfg = ToyConfig(
        ns=tuple(args.ns),
        steps=args.steps,
        seeds=tuple(args.seeds),
        vocab=args.vocab,
        n_correct=args.n_correct,
        lr=args.lr,
        weight_decay=args.weight_decay,
        eps=args.eps,
        temperature=args.temperature,
        dtype=args.dtype,
    )
    from brorl.extras import require

    # before the output directory exists: a missing package must not leave an empty one
    require("simulate", "torch", "matplotlib")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = simulate(cfg, progress=not args.quiet, threads=args.threads)
    wall = time.perf_counter() - t0
    summary = summarize(results)
    png = args.png or out / "toy.png"
    write_csv(out / "toy.csv", cfg, results)
    (out / "summary.json").write_text(
        json.dumps({"config": asdict(cfg), "wall_s": wall, "threads": args.threads, "per_n": summary}, indent=2)
        + "\n"
    )
    png.parent.mkdir(parents=True, exist_ok=True)
    plot_toy(png, cfg, results)
    print(f"{'N':>7} {'Q_pos final':>11} {'% improved':>10} {'worst change (final)':>20} {'worst over run':>14}")
    for n, s in summary.items():
        print(
            f"{n:>7} {s['q_pos_final']:>11.4f} {s['improved_pct_final']:>10.2f} "
            f"{s['min_change_final']:>20.3e} {s['min_change_worst']:>14.3e}"
        )
    print(f"simulated {len(cfg.ns)} N x {len(cfg.seeds)} seed(s) x {cfg.steps} steps in {wall:.1f} s; wrote {out}/toy.csv, {png}")
    return 0
