"""Cutting a step's rollout batch into whole-group pieces for remote workers and gluing the
pieces back together (the driver's side of fanning out generation and scoring)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brorl._core import RolloutBatch

__all__ = ["merge_batches", "slice_rollouts", "split_groups"]


def split_groups(batch: RolloutBatch, groups_per_chunk: int) -> list[tuple[int, int]]:
    """Rollout ranges ``[start, end)`` covering whole prompt groups, ``groups_per_chunk`` each."""
    sizes = batch.group_sizes
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for g in range(0, len(sizes), groups_per_chunk):
        out.append((int(bounds[g]), int(bounds[min(g + groups_per_chunk, len(sizes))])))
    return out


def slice_rollouts(batch: RolloutBatch, start: int, end: int) -> tuple[RolloutBatch, list[int]]:
    """Rollouts ``start:end`` as a batch whose prompt indices are renumbered 0.. in order of
    appearance, and the original prompt index of each new one."""
    pidx = batch.prompt_index[start:end]
    order, first = np.unique(pidx, return_index=True)
    originals = [int(p) for p in order[np.argsort(first)]]
    remap = {p: i for i, p in enumerate(originals)}
    new_pidx = np.array([remap[int(p)] for p in pidx], dtype=np.int64)
    off = batch.offsets
    t0, t1 = int(off[start]), int(off[end])
    lp = batch.logprobs
    rw = batch.rewards
    sub = RolloutBatch(
        new_pidx,
        batch.token_ids[t0:t1],
        off[start : end + 1] - t0,
        None if lp is None else lp[t0:t1],
        None if rw is None else rw[start:end],
        batch.truncated[start:end],
    )
    return sub, originals


def merge_batches(parts: Sequence[RolloutBatch], prompt_offsets: Sequence[int]) -> RolloutBatch:
    """Concatenate per-engine batches, shifting each one's prompt indices by its shard start."""
    pidx = np.concatenate([p.prompt_index + o for p, o in zip(parts, prompt_offsets)])
    tokens = np.concatenate([p.token_ids for p in parts])
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    has_lp = all(p.logprobs is not None for p in parts)
    has_rw = all(p.rewards is not None for p in parts)
    return RolloutBatch(
        pidx.astype(np.int64),
        tokens,
        offsets,
        np.concatenate([p.logprobs for p in parts]) if has_lp else None,
        np.concatenate([p.rewards for p in parts]) if has_rw else None,
        np.concatenate([p.truncated for p in parts]),
    )
