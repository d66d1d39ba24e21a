"""LoRA through PEFT for the learner (``model.lora.rank > 0``).

- Only the adapters train: the base weights are frozen, so the optimizer state (and, under
  ZeRO, its shards) covers the adapters alone.
- The reference policy is the base model with the adapters disabled: no second copy of the
  model (the full-fine-tuning learner keeps a frozen copy). Hence ``algorithm.ref_reset_every``
  must be 0 with LoRA: the reference cannot move without changing the base weights.
- The engine receives merged weights (``W + scale * B @ A``) under the base model's names at
  every sync, so vLLM runs a plain model and needs no LoRA support.
- Checkpoints hold the adapters (DeepSpeed state without the frozen base weights, plus a PEFT
  ``adapter/`` directory that ``PeftModel.from_pretrained`` loads).

Everything LoRA-specific the learner needs is here, so the learner only calls these helpers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "enabled", "wrap", "unwrap", "adapters_disabled", "merged_named_weights", "save_adapter",
    "trainable_counts", "ADAPTER_DIR",
]

ADAPTER_DIR = "adapter"


def enabled(lora_cfg: Any) -> bool:
    return lora_cfg is not None and int(lora_cfg.rank) > 0


def wrap(model: Any, lora_cfg: Any) -> Any:
    """``model`` with LoRA adapters on ``lora_cfg.target_modules``; only they require grad."""
    try:
        import peft
    except ImportError:
        from brorl.errors import ConfigError

        raise ConfigError("model.lora: LoRA needs the 'peft' package: pip install 'brorl[train]'") from None
    config = peft.LoraConfig(
        r=int(lora_cfg.rank),
        lora_alpha=float(lora_cfg.alpha),
        lora_dropout=float(lora_cfg.dropout),
        target_modules=list(lora_cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    if getattr(model, "is_gradient_checkpointing", False):
        # frozen embeddings give checkpointed blocks inputs without grad; the adapters inside
        # them would then get none
        model.enable_input_require_grads()
    try:
        return peft.get_peft_model(model, config)
    except ValueError as e:  # e.g. no module matches target_modules
        from brorl.errors import ConfigError

        raise ConfigError(f"model.lora.target_modules = {list(lora_cfg.target_modules)!r}: {e}") from None


def unwrap(model: Any) -> Any:
    """The transformers model inside a PEFT model (the model itself otherwise)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


@contextlib.contextmanager
def adapters_disabled(model: Any) -> Iterator[None]:
    """Run ``model`` (a PEFT model) as its base model: the reference policy."""
    with model.disable_adapter():
        yield


def _lora_layers(base: Any) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}


def merged_named_weights(model: Any, gather: bool = False) -> list[tuple[str, Any]]:
    """The policy's full weights under the base model's parameter names, with each adapter
    merged in (``W + delta``), as detached CPU copies; the module itself is not modified.
    ``gather``: under ZeRO-3 the partitioned parameters are gathered first (a collective)."""
    import torch

    base = unwrap(model)
    layers = _lora_layers(base)
    params = list(base.named_parameters())
    ctx: Any = contextlib.nullcontext()
    if gather:
        import deepspeed

        ctx = deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None)
    out = []
    with ctx, torch.no_grad():
        for name, p in params:
            if ".lora_" in name:
                continue
            hf_name = name.replace(".base_layer.", ".")
            w = p.detach()
            owner = name[: -len(".base_layer.weight")] if name.endswith(".base_layer.weight") else None
            if owner is not None and owner in layers:
                layer = layers[owner]
                for adapter in layer.active_adapters:
                    if adapter in layer.lora_A:
                        w = w + layer.get_delta_weight(adapter).to(w.dtype)
            out.append((hf_name, w.clone().cpu()))
    return out


def save_adapter(model: Any, path: Path) -> None:
    """The adapters in PEFT format under ``path/adapter`` (rank 0 calls this)."""
    model.save_pretrained(str(Path(path) / ADAPTER_DIR))


def trainable_counts(model: Any) -> tuple[int, int]:
    """(trainable parameters, all parameters) of ``model``."""
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return train, total
