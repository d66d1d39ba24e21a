"""Per-prompt pass-rate distributions of the starting model on candidate tasks, measured
before the sweep to choose its task (the paper's regime: many prompts with pass rate < 1/16,
where N = 16 rarely draws a correct answer, while the model still solves some)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["BINS", "distribution", "measure_candidates", "distribution_markdown"]

# (label, low inclusive, high exclusive) of a pass rate; 1.0 gets its own bin
BINS: tuple[tuple[str, float, float], ...] = (
    ("0", 0.0, 1e-12),
    ("(0, 1/16)", 1e-12, 1 / 16),
    ("[1/16, 1/4)", 1 / 16, 1 / 4),
    ("[1/4, 1/2)", 1 / 4, 1 / 2),
    ("[1/2, 1)", 1 / 2, 1.0),
    ("1", 1.0, 2.0),
)


def distribution(rates: Sequence[float]) -> dict[str, Any]:
    """Shares of prompts per pass-rate bin, plus the summary numbers the choice rests on."""
    r = np.asarray(rates, dtype=np.float64)
    if r.size == 0:
        from brorl.errors import InvalidArgumentError

        raise InvalidArgumentError("invalid value for `rates`: empty")
    bins = {label: float(((r >= lo) & (r < hi)).mean()) for label, lo, hi in BINS}
    return {
        "prompts": int(r.size),
        "mean_pass_rate": float(r.mean()),
        "share_below_1_16": float((r < 1 / 16).mean()),
        "share_zero": float((r == 0).mean()),
        "share_solved_sometimes": float((r > 0).mean()),
        "bins": bins,
    }


def measure_candidates(train: dict, candidates: dict[str, dict], prompts: int, samples: int, seed: int = 0,
                       log: Callable[[str], None] = print) -> dict[str, dict]:
    """For each candidate (name -> Reasoning Gym source dict replacing the recipe's sources),
    the starting model's pass rate on its first ``prompts`` training prompts, ``samples``
    samples each, through the vLLM engine and the reward router the trainer uses."""
    from transformers import AutoTokenizer

    from brorl.sweep.config import base_train_dict
    from brorl.sweep.runner import per_prompt_correct, resolve_start_model
    from brorl.train.config import from_dict
    from brorl.train.data import load_sources
    from brorl.train.engines import make_generator
    from brorl.train.interfaces import SamplingSpec
    from brorl.train.rewards import RewardRouter

    model = resolve_start_model(train, log)
    base = base_train_dict(train)
    tok = AutoTokenizer.from_pretrained(model)
    prompt_sets = {}
    for name, src in candidates.items():
        d = copy.deepcopy(base)
        d["data"]["sources"] = [src]
        cfg = from_dict(d)
        srcs = load_sources(cfg.data, tok, cfg.model.chat_template, log)
        prompt_sets[name] = srcs[0].train[:prompts]
    cfg = from_dict(base)
    g = cfg.generation
    spec = SamplingSpec(temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens, stop=tuple(g.stop))
    longest = max(len(p.token_ids) for ps in prompt_sets.values() for p in ps)
    gen = make_generator(model, g, cfg.model.dtype, longest + g.max_tokens + 8, seed)
    out = {}
    try:
        reward = RewardRouter()
        for name, ps in prompt_sets.items():
            c = per_prompt_correct(gen, reward, ps, samples, spec, seed)
            rates = (c / samples).tolist()
            out[name] = {"source": candidates[name], "samples": samples, "pass_rates": rates, **distribution(rates)}
            log(f"[task] {name}: mean {out[name]['mean_pass_rate']:.3f}, <1/16 {out[name]['share_below_1_16']:.2f}, "
                f"solved sometimes {out[name]['share_solved_sometimes']:.2f}")
    finally:
        gen.close()
    return out


def distribution_markdown(results: dict[str, dict]) -> str:
    """A table: one row per candidate, the share of prompts per pass-rate bin."""
    labels = [b[0] for b in BINS]
    head = "| task | prompts x samples | mean pass rate | share < 1/16 | " + " | ".join(f"p = {lab}" if lab in ("0", "1") else f"p in {lab}" for lab in labels) + " |"
    lines = [head, "|" + "---|" * (4 + len(labels))]
    for name, r in results.items():
        cells = " | ".join(f"{r['bins'][lab]:.2f}" for lab in labels)
        lines.append(f"| {name} | {r['prompts']} x {r['samples']} | {r['mean_pass_rate']:.3f} | "
                     f"{r['share_below_1_16']:.2f} | {cells} |")
    return "\n".join(lines) + "\n"
