"""Evaluate a ``brorl train`` checkpoint: turn its DeepSpeed state into a Hugging Face model
directory that vLLM and transformers load.

A run directory looks like ``<run>/config.yaml`` + ``<run>/checkpoints/step_000016/learner/...``
(DeepSpeed, tag ``learner``) with ``<run>/checkpoints/latest`` naming the newest step. The
exported model (the base model's config and tokenizer with the checkpoint's fp32 weights) is
written once to ``<step>/hf`` and reused by later evaluations.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from brorl.errors import InvalidArgumentError

DEEPSPEED_TAG = "learner"


def locate(path: Path) -> tuple[Path, Path] | None:
    """(run directory, checkpoint step directory) when ``path`` is a run or one of its
    checkpoints; None otherwise."""
    if (path / "config.yaml").is_file() and (path / "checkpoints").is_dir():
        ck = path / "checkpoints"
        marker = ck / "latest"
        steps = sorted(p for p in ck.glob("step_*") if (p / DEEPSPEED_TAG).is_dir())
        if marker.is_file() and (ck / marker.read_text().strip() / DEEPSPEED_TAG).is_dir():
            return path, ck / marker.read_text().strip()
        if not steps:
            raise InvalidArgumentError(f"invalid value for `--model`: run directory {str(path)!r} has no checkpoint yet")
        return path, steps[-1]
    if (path / DEEPSPEED_TAG).is_dir() and path.parent.name == "checkpoints" and (path.parent.parent / "config.yaml").is_file():
        return path.parent.parent, path
    return None


def export(run_dir: Path, step_dir: Path, log=print, out: Path | None = None) -> Path:
    """The Hugging Face directory of one checkpoint (``<step>/hf`` unless ``out`` is given),
    exported on first use."""
    out = step_dir / "hf" if out is None else Path(out)
    if (out / "config.json").is_file():
        return out
    import torch
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brorl.train.loop import resolve_model

    cfg = _run_config(run_dir / "config.yaml")
    # The base model gives the architecture and tokenizer (for the built-in model: its cached
    # warm-up, rebuilt the same way if the cache is gone).
    base = resolve_model(cfg, None, log)
    log(f"[brorl eval] exporting {step_dir} (base {base}) to {out}")
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if (step_dir / "adapter" / "adapter_config.json").is_file():
        # a LoRA run: its checkpoint holds the adapters; merge them into the base weights
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(step_dir / "adapter")).merge_and_unload()
        missing, unexpected = [], []
    else:
        state = get_fp32_state_dict_from_zero_checkpoint(str(step_dir), tag=DEEPSPEED_TAG)
        missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight") and model.config.tie_word_embeddings}
    if set(missing) - tied or unexpected:
        raise InvalidArgumentError(
            f"invalid value for `--model`: checkpoint {str(step_dir)!r} does not match its base model {str(base)!r} "
            f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(tmp)
    if out.is_dir():
        out.rmdir()  # an empty directory given as --out
    tmp.rename(out)
    return out


def _run_config(path: Path):
    """The run's config, enough of it to find its base model. A run written by another brorl
    version may have fields this one does not know; only ``model``, ``data``, ``warmup`` and
    the run seed decide the base model, so fall back to those."""
    import yaml

    from brorl.errors import ConfigError
    from brorl.train.config import from_dict, load_config

    try:
        return load_config(path)
    except ConfigError as full_error:
        data = yaml.safe_load(path.read_text()) or {}
        part = {k: data[k] for k in ("model", "data", "warmup") if k in data}
        if isinstance(data.get("run"), dict) and "seed" in data["run"]:
            part["run"] = {"seed": data["run"]["seed"]}
        try:
            return from_dict(part)
        except ConfigError as e:
            raise InvalidArgumentError(
                f"invalid value for `--model`: cannot read the run config {str(path)!r} to find the base model: {full_error}; {e}"
            ) from e
