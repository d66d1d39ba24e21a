"""Measure the starting model's per-prompt pass-rate distribution on candidate tasks for the N
sweep (docs/n_sweep.md, "Choosing the task"). Run before the sweep, under the heavy lock:

    python scripts/n_sweep_task_choice.py --config configs/n_sweep_cpu.yaml --out docs/n_sweep_task_choice

Writes <out>.json (every prompt's pass rate) and <out>.md (the table). The candidates are
chain_sum variants with more terms or digits than the warm-up taught (2-3 terms, 1 digit).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def chain_sum(terms: int, digits: int) -> dict:
    return {"kind": "reasoning_gym", "task": "chain_sum", "size": 1000, "seed": 1,
            "task_kwargs": {"min_terms": terms, "max_terms": terms, "min_digits": digits, "max_digits": digits}}


CANDIDATES = {
    "chain_sum 3 terms, 1 digit (the default task)": chain_sum(3, 1),
    "chain_sum 4 terms, 1 digit": chain_sum(4, 1),
    "chain_sum 5 terms, 1 digit": chain_sum(5, 1),
    "chain_sum 3 terms, 2 digits": chain_sum(3, 2),
    "chain_sum 2 terms, 2 digits": chain_sum(2, 2),
}


def main() -> None:
    from brorl.sweep.config import load_sweep_config
    from brorl.sweep.taskchoice import distribution_markdown, measure_candidates

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/n_sweep_cpu.yaml", help="sweep config (its train recipe is used)")
    ap.add_argument("--prompts", type=int, default=64, help="training prompts per candidate")
    ap.add_argument("--samples", type=int, default=64, help="samples per prompt")
    ap.add_argument("--out", default="docs/n_sweep_task_choice", help="output path without extension")
    args = ap.parse_args()
    _, train = load_sweep_config(args.config)
    res = measure_candidates(train, CANDIDATES, args.prompts, args.samples)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text(distribution_markdown(res))
    print(distribution_markdown(res))


if __name__ == "__main__":
    main()
