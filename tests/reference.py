"""Short, obviously-correct NumPy references for the Rust kernels (one loop per formula)."""

from __future__ import annotations

import numpy as np


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def groups(rewards: np.ndarray, sizes) -> list[np.ndarray]:
    bounds = np.cumsum([0, *sizes])
    return [rewards[bounds[i] : bounds[i + 1]].astype(np.float64) for i in range(len(sizes))]


def advantages(rewards, sizes, estimator: str, eps: float = 1e-6) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    gs = groups(r, sizes)
    if estimator == "reinforce_pp_baseline":
        a = np.concatenate([g - g.mean() for g in gs])
        return (a - a.mean()) / (_std(a) + eps)
    if estimator == "grpo":
        return np.concatenate([(g - g.mean()) / (_std(g) + eps) for g in gs])
    if estimator == "dr_grpo":
        return np.concatenate([g - g.mean() for g in gs])
    if estimator == "rloo":
        return np.concatenate(
            [g - (g.sum() - g) / (len(g) - 1) if len(g) > 1 else np.zeros(1) for g in gs]
        )
    if estimator == "reinforce_pp":
        return (r - r.mean()) / (_std(r) + eps)
    raise ValueError(estimator)


def gae(token_rewards, values, offsets, gamma, lam):
    adv = np.zeros(len(values))
    for s, e in zip(offsets[:-1], offsets[1:]):
        last = 0.0
        for t in reversed(range(s, e)):
            next_v = values[t + 1] if t + 1 < e else 0.0
            delta = token_rewards[t] + gamma * next_v - values[t]
            last = delta + gamma * lam * last
            adv[t] = last
    return adv, adv + np.asarray(values, dtype=np.float64)


def pass_at_k(n: int, c: int, k: int) -> float:
    from math import comb

    return 1.0 - comb(n - c, k) / comb(n, k)
