"""Pickling of ``brorl.RolloutBatch`` so rollouts can cross Ray process boundaries.

The Rust class has no pickle support of its own; registering a reducer with ``copyreg`` (which
both pickle and Ray's cloudpickle consult) sends its NumPy columns, which Ray then ships without
copying. The receiving side only needs to import :func:`_rebuild`, so registration is needed
only where batches are sent; ``brorl.distributed`` registers on import.
"""

from __future__ import annotations

import copyreg
from typing import Any

from brorl._core import RolloutBatch

__all__ = ["register"]


def _rebuild(prompt_index: Any, token_ids: Any, offsets: Any, logprobs: Any, rewards: Any, truncated: Any) -> RolloutBatch:
    return RolloutBatch(prompt_index, token_ids, offsets, logprobs, rewards, truncated)


def _reduce(batch: RolloutBatch) -> tuple[Any, tuple[Any, ...]]:
    return _rebuild, (
        batch.prompt_index,
        batch.token_ids,
        batch.offsets,
        batch.logprobs,
        batch.rewards,
        batch.truncated,
    )


def register() -> None:
    copyreg.pickle(RolloutBatch, _reduce)
