"""Hugging Face checkpoints of a run: ``run.save_hf`` during training and ``brorl export``.

    brorl export runs/my-run --out my-model             # the newest checkpoint
    brorl export runs/my-run --step 40 --out my-model   # checkpoints/step_000040

The result is a plain Hugging Face model directory (safetensors, sharded when large, with the
base model's config and tokenizer) that transformers, vLLM and ``brorl eval`` load. A LoRA run's
adapters are merged into the base weights; its adapters alone are in the checkpoint's
``adapter/`` directory (PEFT format).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from brorl.errors import InvalidArgumentError

__all__ = ["save_hf_model", "export_run", "hf_dir", "add_arguments", "run"]

# files of a model directory that are weights (replaced), everything else is copied
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def hf_dir(run_dir: Path, step: int) -> Path:
    """Where ``run.save_hf`` puts the model of ``step``."""
    return Path(run_dir) / "hf" / f"step_{step:06d}"


def save_hf_model(weights: Iterable[tuple[str, Any]], base_dir: Path, out: Path, dtype: str | None = None) -> Path:
    """Write ``weights`` (HF parameter names -> tensors) as a Hugging Face model directory at
    ``out`` with the non-weight files (config, tokenizer, generation config) of ``base_dir``.
    Written to a temporary sibling first, so ``out`` is either complete or absent."""
    import torch
    from huggingface_hub import save_torch_state_dict

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in Path(base_dir).iterdir():
        if f.is_file() and not f.name.endswith(_WEIGHT_SUFFIXES) and f.name not in _WEIGHT_INDEXES:
            shutil.copy2(f, tmp / f.name)
    state = {n: t.detach().to("cpu").contiguous() for n, t in weights}
    if dtype is not None:
        state = {n: t.to(getattr(torch, dtype)) if t.is_floating_point() else t for n, t in state.items()}
    save_torch_state_dict(state, tmp)
    if dtype is not None:
        import json

        cfg_path = tmp / "config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            cfg["torch_dtype"] = dtype
            cfg_path.write_text(json.dumps(cfg, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _step_dir(run_dir: Path, step: int | None) -> Path:
    from brorl.eval.checkpoint import DEEPSPEED_TAG, locate

    found = locate(run_dir) if (run_dir / "config.yaml").is_file() else None
    if found is None:
        raise InvalidArgumentError(f"invalid value for `RUN`: {str(run_dir)!r} is not a `brorl train` run directory "
                                   "(config.yaml and checkpoints/)")
    if step is None:
        return found[1]
    path = run_dir / "checkpoints" / f"step_{step:06d}"
    if not (path / DEEPSPEED_TAG).is_dir():
        have = sorted(int(p.name[5:]) for p in (run_dir / "checkpoints").glob("step_*") if (p / DEEPSPEED_TAG).is_dir())
        raise InvalidArgumentError(f"invalid value for `--step`: {step} has no checkpoint in {str(run_dir)!r}; "
                                   f"checkpoints: {have} (run.save_every / run.keep_checkpoints decide which are kept)")
    return path


def export_run(run_dir: str | Path, out: str | Path, step: int | None = None, log: Any = print) -> Path:
    """Export checkpoint ``step`` (default the newest) of ``run_dir`` to ``out``."""
    from brorl.eval.checkpoint import export

    run_dir = Path(run_dir)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InvalidArgumentError(f"invalid value for `--out`: {str(out)!r} exists and is not empty")
    step_dir = _step_dir(run_dir, step)
    return export(run_dir, step_dir, log=log, out=out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("run_dir", metavar="RUN", help="a `brorl train` run directory")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
    p.add_argument("--out", required=True, help="output directory (new or empty)")


def run(args: argparse.Namespace) -> int:
    try:
        out = export_run(args.run_dir, args.out, args.step)
    except InvalidArgumentError as e:
        print(f"brorl export: {e}", file=sys.stderr)
        return 2
    print(f"[brorl] exported Hugging Face model: {out.resolve()}")
    return 0
