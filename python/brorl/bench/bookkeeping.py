"""Per-step rollout bookkeeping, brorl versus plain NumPy, on the same inputs in one run.

The path is what a trainer does once per step with the rollouts of a BroRL step (128 prompts
x 512 rollouts of ~1,000 tokens): ingest the engine's flat arrays, per-group statistics,
dynamic-sampling filter, reinforce++-baseline advantages, broadcast to tokens, and packing
into micro-batches under a token budget for R data-parallel ranks.
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StepInputs:
    prompt_index: np.ndarray  # int64 [n]
    token_ids: np.ndarray  # int32 [T]
    offsets: np.ndarray  # int64 [n + 1]
    logprobs: np.ndarray  # float32 [T]
    rewards: np.ndarray  # float32 [n]


def make_inputs(n_prompts: int, n_per_prompt: int, mean_len: int, seed: int = 0) -> StepInputs:
    """Synthetic engine output: response lengths ~ uniform around `mean_len`, 0/1 rewards with
    a per-prompt difficulty so that some groups are all-correct or all-wrong (filtered)."""
    rng = np.random.default_rng(seed)
    n = n_prompts * n_per_prompt
    lengths = rng.integers(mean_len // 2, mean_len * 3 // 2 + 1, size=n, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    difficulty = rng.choice([0.0, 1.0, 0.3, 0.5, 0.8], size=n_prompts)
    rewards = (rng.random(n) < np.repeat(difficulty, n_per_prompt)).astype(np.float32)
    return StepInputs(
        prompt_index=np.repeat(np.arange(n_prompts, dtype=np.int64), n_per_prompt),
        token_ids=rng.integers(0, 32_000, size=total, dtype=np.int32),
        offsets=offsets,
        logprobs=-rng.random(total, dtype=np.float32),
        rewards=rewards,
    )


def numpy_step(x: StepInputs, max_tokens: int, n_ranks: int, eps: float = 1e-6) -> dict:
    """The same bookkeeping written with plain NumPy (and a Python loop where packing needs one)."""
    offsets = x.offsets
    lengths = np.diff(offsets)
    if np.any(lengths < 0) or offsets[0] != 0 or offsets[-1] != len(x.token_ids):
        raise ValueError("bad offsets")
    if not np.all(np.isfinite(x.rewards)):
        raise ValueError("non-finite rewards")
    # group layout from runs of prompt_index
    starts = np.flatnonzero(np.r_[True, x.prompt_index[1:] != x.prompt_index[:-1]])
    sizes = np.diff(np.r_[starts, len(x.prompt_index)])
    r = x.rewards.astype(np.float64)
    mean = np.add.reduceat(r, starts) / sizes
    dev = r - np.repeat(mean, sizes)
    std = np.sqrt(np.add.reduceat(dev * dev, starts) / np.maximum(sizes - 1, 1))
    n_correct = np.add.reduceat((x.rewards >= 1.0).astype(np.int64), starts)
    # dynamic sampling
    keep_group = (np.maximum.reduceat(r, starts) != np.minimum.reduceat(r, starts))
    keep_rollout = np.repeat(keep_group, sizes)
    keep_token = np.repeat(keep_rollout, lengths)
    token_ids = x.token_ids[keep_token]
    logprobs = x.logprobs[keep_token]
    kept_lengths = lengths[keep_rollout]
    kept_sizes = sizes[keep_group]
    new_offsets = np.zeros(len(kept_lengths) + 1, dtype=np.int64)
    np.cumsum(kept_lengths, out=new_offsets[1:])
    # reinforce++-baseline advantages
    kr = r[keep_rollout]
    kstarts = np.r_[0, np.cumsum(kept_sizes)[:-1]]
    a = kr - np.repeat(np.add.reduceat(kr, kstarts) / kept_sizes, kept_sizes)
    adv = ((a - a.mean()) / (a.std(ddof=1) + eps)).astype(np.float32)
    token_adv = np.repeat(adv, kept_lengths)
    # packing: longest-first to the least-loaded rank, then first fit into micro-batches
    order = np.argsort(-kept_lengths, kind="stable")
    heap = [(0, rank) for rank in range(n_ranks)]
    bins: list[list[list[int]]] = [[] for _ in range(n_ranks)]
    room: list[list[int]] = [[] for _ in range(n_ranks)]
    for i, length in zip(order.tolist(), kept_lengths[order].tolist()):
        load, rank = heapq.heappop(heap)
        heapq.heappush(heap, (load + length, rank))
        for b, free in enumerate(room[rank]):
            if free >= length:
                bins[rank][b].append(i)
                room[rank][b] = free - length
                break
        else:
            bins[rank].append([i])
            room[rank].append(max_tokens - length)
    return {
        "std": std,
        "n_correct": n_correct,
        "token_ids": token_ids,
        "logprobs": logprobs,
        "offsets": new_offsets,
        "token_adv": token_adv,
        "n_microbatches": sum(len(b) for b in bins),
    }


def brorl_step(x: StepInputs, max_tokens: int, n_ranks: int) -> dict:
    from brorl import RolloutBatch

    batch = RolloutBatch(x.prompt_index, x.token_ids, x.offsets, x.logprobs, x.rewards)
    stats = batch.group_stats()
    kept = batch.filter_groups()
    adv = kept.advantages("reinforce_pp_baseline")
    token_adv = kept.broadcast_to_tokens(adv)
    packs = kept.pack(max_tokens, n_ranks)
    return {
        "std": stats["std"],
        "n_correct": stats["n_correct"],
        "token_ids": kept.token_ids,
        "logprobs": kept.logprobs,
        "offsets": kept.offsets,
        "token_adv": token_adv,
        "n_microbatches": sum(len(r) for r in packs),
    }


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def compare(n_prompts=128, n_per_prompt=512, mean_len=1000, max_tokens=16384, n_ranks=8, repeats=5, seed=0) -> dict:
    x = make_inputs(n_prompts, n_per_prompt, mean_len, seed)
    ours, ref = brorl_step(x, max_tokens, n_ranks), numpy_step(x, max_tokens, n_ranks)
    # Both paths must produce the same data before their speed means anything.
    for key in ("n_correct", "token_ids", "logprobs", "offsets"):
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
    np.testing.assert_allclose(ours["std"], ref["std"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["token_adv"], ref["token_adv"], rtol=1e-4, atol=1e-5)
    t_brorl = _best_of(lambda: brorl_step(x, max_tokens, n_ranks), repeats)
    t_numpy = _best_of(lambda: numpy_step(x, max_tokens, n_ranks), repeats)
    return {
        "benchmark": "per-step bookkeeping",
        "rollouts": n_prompts * n_per_prompt,
        "tokens": int(x.offsets[-1]),
        "brorl_s": t_brorl,
        "numpy_s": t_numpy,
        "speedup": t_numpy / t_brorl,
        "microbatches_brorl": ours["n_microbatches"],
        "microbatches_numpy": ref["n_microbatches"],
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", type=int, default=128, help="prompts per step (paper: 128)")
    p.add_argument("--n", type=int, default=512, help="rollouts per prompt (paper: 512)")
    p.add_argument("--mean-len", type=int, default=1000, help="mean response length in tokens")
    p.add_argument("--max-tokens", type=int, default=16384, help="token budget per micro-batch")
    p.add_argument("--ranks", type=int, default=8, help="data-parallel ranks to balance over")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (best is kept)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    res = compare(args.prompts, args.n, args.mean_len, args.max_tokens, args.ranks, args.repeats)
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"per-step bookkeeping, {res['rollouts']:,} rollouts / {res['tokens']:,} tokens "
            f"({res['machine']}):\n"
            f"  brorl {res['brorl_s'] * 1e3:8.1f} ms\n"
            f"  numpy {res['numpy_s'] * 1e3:8.1f} ms\n"
            f"  speed-up {res['speedup']:.1f}x"
        )
    return 0
