"""``brorl plot <run> [<run> ...]``: training curves of several runs side by side in one PNG.

Each run directory holds the ``metrics.jsonl`` that ``brorl train`` appends to (one JSON object
per step). The default panels are the reward, the pass rate and the two mass-balance
diagnostics: the expected unsampled second moment sum_v p_v^2 (1 - p_v)^N at the first response
position (``theory/unsampled_m2``), and knowledge shrinkage, i.e. among revisited prompts the
share whose pass rate fell (``shrink/fell_share``) and the share of solved prompts now at 0
(``shrink/lost_share``). A key that no run logged is skipped with a note; runs of different
lengths are fine. Curves are labelled by the run directory's name plus the preset (or N) its
saved config names.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brorl.errors import InvalidArgumentError

__all__ = ["DEFAULT_KEYS", "RunMetrics", "load_run", "plot_runs", "add_arguments", "run"]

# key -> (panel title, log y axis?)
DEFAULT_KEYS: dict[str, tuple[str, bool]] = {
    "reward_mean": ("mean reward", False),
    "pass_rate": ("pass rate", False),
    "theory/unsampled_m2": ("expected unsampled 2nd moment  $\\Sigma_v p_v^2 (1-p_v)^N$", True),
    "shrink/fell_share": ("shrinkage: revisited prompts whose pass rate fell", False),
    "shrink/lost_share": ("shrinkage: solved prompts now at pass rate 0", False),
}

# Shrinkage shares are 0 by convention when no prompt was revisited; such points mean "no data".
_DENOMINATOR = {"shrink/fell_share": "shrink/revisited", "shrink/lost_share": "shrink/prev_solved"}

CONFIG_NAMES = ("config.yaml", "config.yml", "config.json")


@dataclass
class RunMetrics:
    """The numeric series of one run: ``series[key] = (steps, values)`` as Python lists."""

    path: Path
    label: str
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    skipped_lines: int = 0


def _read_config(run_dir: Path) -> dict | None:
    for name in CONFIG_NAMES:
        p = run_dir / name
        if not p.is_file():
            continue
        try:
            if name.endswith(".json"):
                data = json.loads(p.read_text())
            else:
                import yaml  # only needed when a run saved YAML

                data = yaml.safe_load(p.read_text())
        except Exception:  # an unreadable config only costs the label its preset
            return None
        return data if isinstance(data, dict) else None
    return None


def run_label(run_dir: Path) -> str:
    """The directory name, plus ``preset X`` (top-level or under ``run``) or else ``N=...``
    (``algorithm.n``) when the run's saved config says so."""
    label = run_dir.resolve().name
    cfg = _read_config(run_dir)
    if not cfg:
        return label
    run_section = cfg.get("run")
    run_section = run_section if isinstance(run_section, dict) else {}
    preset = cfg.get("preset") or run_section.get("preset")
    if preset:
        return f"{label} (preset {preset})"
    algo = cfg.get("algorithm")
    if isinstance(algo, dict) and algo.get("n") is not None:
        return f"{label} (N={algo['n']})"
    return label


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def load_run(path: str | Path) -> RunMetrics:
    """Read a run directory's ``metrics.jsonl`` (or that file itself). Lines that are blank or not
    a JSON object (e.g. a half-written last line after a crash) are skipped and counted; the x
    value is ``step`` when present, else the line's position."""
    p = Path(path)
    if not p.exists():
        raise InvalidArgumentError(f"run {str(path)!r} does not exist")
    if p.is_dir():
        run_dir, metrics = p, p / "metrics.jsonl"
    else:
        run_dir, metrics = p.parent, p
    if not metrics.is_file():
        raise InvalidArgumentError(f"run {str(path)!r}: no metrics.jsonl found (looked for {str(metrics)!r})")
    out = RunMetrics(path=run_dir, label=run_label(run_dir))
    raw: dict[str, tuple[list[float], list[float]]] = {}
    denominators: dict[str, dict[float, float]] = {}
    with open(metrics, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                out.skipped_lines += 1
                continue
            if not isinstance(rec, dict):
                out.skipped_lines += 1
                continue
            x = _as_float(rec.get("step"))
            x = float(i) if x is None else x
            for key, value in rec.items():
                v = _as_float(value)
                if v is None or key == "step":
                    continue
                xs, ys = raw.setdefault(key, ([], []))
                xs.append(x)
                ys.append(v)
                if key in _DENOMINATOR.values():
                    denominators.setdefault(key, {})[x] = v
    for key, (xs, ys) in raw.items():
        den = denominators.get(_DENOMINATOR.get(key, ""), {})
        if den:
            keep = [j for j, x in enumerate(xs) if den.get(x, 1.0) > 0]
            xs, ys = [xs[j] for j in keep], [ys[j] for j in keep]
        out.series[key] = (xs, ys)
    return out


def _smooth(ys: list[float], window: int) -> list[float]:
    """Trailing moving average over `window` points, skipping NaN."""
    if window <= 1:
        return ys
    out, buf = [], []
    for y in ys:
        buf.append(y)
        if len(buf) > window:
            buf.pop(0)
        ok = [b for b in buf if math.isfinite(b)]
        out.append(sum(ok) / len(ok) if ok else math.nan)
    return out


def plot_runs(
    runs: list[RunMetrics], out: str | Path, keys: list[str] | None = None, smooth: int = 1
) -> tuple[list[str], list[str]]:
    """Draw one panel per key that at least one run logged, one curve per run, into `out` (PNG).
    Returns (keys drawn, keys skipped because no run logged them)."""
    if not runs:
        raise InvalidArgumentError("runs must name at least one run directory")
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise InvalidArgumentError(f"smooth must be an integer >= 1, got {smooth!r}")
    keys = list(DEFAULT_KEYS) if keys is None else list(keys)
    if not keys:
        raise InvalidArgumentError("keys must name at least one metric")
    drawn = [k for k in keys if any(r.series.get(k, ([], []))[0] for r in runs)]
    skipped = [k for k in keys if k not in drawn]

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n_panels = max(1, len(drawn))
    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(5.2 * cols, 3.8 * rows + (0.4 if skipped else 0)), dpi=90)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    colors = matplotlib.colormaps["tab10"]
    for ax, key in zip(axes, drawn):
        title, log = DEFAULT_KEYS.get(key, (key, False))
        for i, r in enumerate(runs):
            xs, ys = r.series.get(key, ([], []))
            if not xs:
                continue
            ax.plot(xs, _smooth(ys, smooth), label=r.label, color=colors(i % 10), lw=1.4,
                    marker="o" if len(xs) < 30 else None, ms=3)
        missing = [r.label for r in runs if not r.series.get(key, ([], []))[0]]
        if missing:
            ax.text(0.01, 0.01, "not logged by: " + ", ".join(missing), transform=ax.transAxes, fontsize=7,
                    color="dimgray", va="bottom")
        ax.set_title(f"{title}\n[{key}]", fontsize=10)
        ax.set_xlabel("step")
        if log and all(y > 0 for r in runs for y in r.series.get(key, ([], [1.0]))[1] if math.isfinite(y)):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    rest = axes[len(drawn):]
    if not drawn:
        rest[0].text(0.5, 0.5, "none of the requested metrics was logged", ha="center", va="center")
    for ax in rest:
        ax.axis("off")
    first = fig.axes[0]
    if drawn:
        first.legend(fontsize=8, loc="best")
    if skipped:
        fig.text(0.01, 0.005, "not logged by any run, skipped: " + ", ".join(skipped), fontsize=8, color="dimgray")
    suffix = f" (moving average of {smooth} steps)" if smooth > 1 else ""
    fig.suptitle("brorl runs: " + ", ".join(r.label for r in runs) + suffix, fontsize=11)
    fig.tight_layout(rect=(0, 0.02 if skipped else 0, 1, 1))
    fig.savefig(out)
    return drawn, skipped


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="run directories (each with a metrics.jsonl)")
    p.add_argument("-o", "--output", type=Path, default=Path("brorl_plot.png"), help="PNG to write")
    p.add_argument("--keys", nargs="+", default=None,
                   help=f"metrics to plot, one panel each (default: {' '.join(DEFAULT_KEYS)})")
    p.add_argument("--smooth", type=int, default=1, help="moving-average window in steps (1: raw)")


def run(args: argparse.Namespace) -> int:
    from brorl.extras import require

    require("plot", "matplotlib")
    try:
        runs = [load_run(r) for r in args.runs]
        drawn, skipped = plot_runs(runs, args.output, keys=args.keys, smooth=args.smooth)
    except InvalidArgumentError as e:
        print(f"brorl plot: error: {e}", file=sys.stderr)
        return 2
    for r in runs:
        if r.skipped_lines:
            print(f"note: {r.path}/metrics.jsonl: skipped {r.skipped_lines} unreadable line(s)", file=sys.stderr)
    for k in skipped:
        print(f"note: no run logged {k!r}; its panel is left out", file=sys.stderr)
    print(f"wrote {args.output} ({len(drawn)} panel(s), {len(runs)} run(s))")
    return 0
