"""``brorl sweep``: N at an equal number of generated samples per step, several seeds, one report.

    brorl sweep --config configs/n_sweep_cpu.yaml                  # every unfinished run, then the report
    brorl sweep --config configs/n_sweep_cpu.yaml --only 16,0      # one run (N=16, seed 0) now
    brorl sweep --config configs/n_sweep_cpu.yaml --report-only    # rebuild the report
    brorl sweep --config x.yaml sweep.steps=4 train.optim.lr=5e-5  # overrides (sweep.* / train.*)

Finished runs are skipped, so the grid can be run in chunks. See docs/n_sweep.md.
"""

from __future__ import annotations

import argparse


def _pair(text: str) -> tuple[int, int]:
    try:
        n, seed = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--only {text!r}: expected N,SEED (e.g. 16,0)") from None
    return n, seed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__
    p.add_argument("--config", help="sweep YAML with 'sweep' and 'train' sections (default: built-in defaults)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="sweep.x=... or train.a.b=... (values as YAML)")
    p.add_argument("--only", type=_pair, action="append", default=[], metavar="N,SEED",
                   help="run only this (N, seed) now (repeatable); the report covers every finished run")
    p.add_argument("--report-only", action="store_true", help="train nothing; rebuild the report from finished runs")


def run(args: argparse.Namespace) -> int:
    import sys

    from brorl.errors import ConfigError
    from brorl.sweep.runner import sweep

    try:
        out = sweep(args.config, args.overrides, only=args.only, report_only=args.report_only)
    except ConfigError as e:
        print(f"brorl sweep: config error: {e}", file=sys.stderr)
        return 2
    print(f"[sweep] report: {out.resolve()}")
    for name in ("summary.md", "table1.md"):
        if (out / name).is_file():
            print((out / name).read_text())
    return 0
