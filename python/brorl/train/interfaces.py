"""The small interfaces the training loop talks to.

The loop (``brorl.train.loop``) only sees a :class:`Generator`, a :class:`RewardFn` and a
:class:`Learner`. Running them in this process, in Ray actors or on other nodes is a matter of
placement: a Ray version wraps each implementation in an actor and keeps these signatures.

Data crossing the interfaces is plain: token-id lists, NumPy arrays, ``brorl.RolloutBatch``
(whose columns are NumPy arrays) and ``(name, tensor)`` pairs for weights. Nothing here imports
torch, vLLM or DeepSpeed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from brorl._core import RolloutBatch

__all__ = [
    "Prompt",
    "SamplingSpec",
    "Rollouts",
    "TrainBatch",
    "Generator",
    "RewardFn",
    "Learner",
]


@dataclass(frozen=True)
class Prompt:
    """One training or evaluation prompt, already rendered and tokenized.

    ``meta`` carries what the reward function needs (``answer`` for math, ``tests`` for code,
    the Reasoning Gym entry for its scorer); ``uid`` is stable across epochs so per-prompt
    statistics (knowledge shrinkage) can follow a prompt.
    """

    uid: int
    domain: str
    text: str
    token_ids: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplingSpec:
    """How to sample responses; mirrors ``GenerationConfig`` in the config tree."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()


@dataclass
class Rollouts:
    """What a generator returns for ``len(prompts)`` prompts with ``n`` samples each.

    ``batch.prompt_index[i]`` is the position of rollout ``i``'s prompt in the ``prompts``
    argument; ``batch.logprobs`` holds the engine's log-probability of each sampled token
    (used for truncated importance sampling) and ``batch.truncated`` marks responses cut at
    ``max_tokens``. ``texts[i]`` is rollout ``i`` decoded. ``seconds`` is the wall time of the
    generate call.
    """

    batch: RolloutBatch
    texts: list[str]
    seconds: float = 0.0


@dataclass
class TrainBatch:
    """Everything the learner needs for one optimizer step.

    ``rollouts.prompt_index[i]`` indexes ``prompt_token_ids``; ``advantages`` has one float32
    per rollout (shape ``[n_rollouts]``), broadcast to tokens by the learner;
    ``rollouts.logprobs`` are the engine's sampled-token log-probs.
    """

    rollouts: RolloutBatch
    prompt_token_ids: list[Sequence[int]]
    advantages: np.ndarray


@runtime_checkable
class Generator(Protocol):
    """An inference engine that samples ``n`` responses per prompt and follows the trainer's
    weights."""

    def generate(
        self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingSpec, seed: int
    ) -> Rollouts:
        """Sample ``n`` responses for each token-id prompt, reproducibly for a given ``seed``."""
        ...

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Load new weights (HF parameter names, full unsharded tensors) into the running
        engine and drop any state that depends on the old weights (prefix cache)."""
        ...

    def reset(self) -> None:
        """Drop cached state (prefix cache) without changing weights."""
        ...

    def close(self) -> None:
        """Free the engine's memory; the generator is unusable afterwards."""
        ...


@runtime_checkable
class RewardFn(Protocol):
    """Scores rollouts against their prompts' metadata."""

    def __call__(self, rollouts: Rollouts, prompts: Sequence[Prompt]) -> np.ndarray:
        """Return one float32 reward per rollout (shape ``[n_rollouts]``);
        ``prompts[rollouts.batch.prompt_index[i]]`` is rollout ``i``'s prompt."""
        ...


@runtime_checkable
class Learner(Protocol):
    """The policy being trained (one rank's view; ranks run the same calls in lockstep)."""

    def train_step(self, batch: TrainBatch) -> dict[str, float]:
        """One optimizer step (with the configured number of mini-batches) on ``batch``;
        returns metrics such as ``loss``, ``kl``, ``clip_frac``, ``entropy``, ``grad_norm``,
        ``lr``."""
        ...

    def named_weights(self) -> Iterable[tuple[str, Any]]:
        """The current full (gathered) weights as ``(hf_name, tensor)`` pairs for a generator."""
        ...

    def reset_reference(self, reset_optimizer: bool = False) -> None:
        """Make the reference policy equal to the current policy; with ``reset_optimizer``
        also reinitialise the optimizer state (ProRL's hard reset), otherwise keep it."""
        ...

    def save_checkpoint(self, path: Path) -> None:
        """Write model, optimizer, scheduler and learner RNG state under ``path``."""
        ...

    def load_checkpoint(self, path: Path) -> None:
        """Restore what :meth:`save_checkpoint` wrote."""
        ...

    def close(self) -> None:
        """Release process groups and memory."""
        ...
