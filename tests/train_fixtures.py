"""Shared pieces of the training tests: one tiny model (+ its cached warm-up) per session."""

from __future__ import annotations

from pathlib import Path

# A small, easy variant of the default job used by the end-to-end tests.
EASY_TASK = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def easy_config(out_dir: Path, name: str, **over) -> dict:
    """A nested config dict (merged over the built-in default) for a short, cheap run."""
    cfg = {
        "data": {"sources": [{"kind": "reasoning_gym", "task": "chain_sum", "size": 400, "seed": 3,
                              "task_kwargs": EASY_TASK}], "eval_size": 64},
        "generation": {"kv_cache_gib": 1.0, "max_num_seqs": 512},
        "algorithm": {"n": 32, "prompts_per_step": 4, "oversample": 1.5, "max_gen_rounds": 2,
                      "ref_reset_every": 2},
        "optim": {"lr": 1e-3},
        "deepspeed": {"micro_batch_tokens": 2048},
        "run": {"steps": 4, "save_every": 2, "keep_checkpoints": 3, "output_dir": str(out_dir), "name": name,
                "progress": False},
    }
    for dotted, value in over.items():
        node = cfg
        parts = dotted.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg
