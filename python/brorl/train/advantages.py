"""Rollout advantages for the update: the Rust core's estimators, plus the token-level
whitening verl and OpenRLHF apply.

REINFORCE++-baseline (ProRLv2/BroRL) subtracts each group's mean reward and then normalises
over the batch. The paper's equation normalises over *rollouts* (each counts once); verl and
OpenRLHF broadcast the advantage to the response tokens first and normalise over *tokens*, so a
rollout weighs by its length. The two differ by more than a scale: the token mean is pulled
toward the advantages of long responses, and subtracting it can flip signs (the README's
algorithm section has a worked example).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["token_whiten", "step_advantages"]


def token_whiten(values: np.ndarray, lengths: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-rollout advantages whitened over tokens: ``values [R]`` (one per rollout) broadcast
    to ``lengths [R]`` tokens each, then (x - mean_tok) / (std_tok + eps) with the token
    mean and the unbiased token std. Returns ``[R]`` float32 (every token of a rollout shares its
    value, so the per-token result is still one number per rollout). Rollouts with no tokens
    do not enter the statistics."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(lengths, dtype=np.float64)
    if v.shape != w.shape:
        raise ValueError(f"token_whiten: values {v.shape} and lengths {w.shape} differ in shape")
    if (w < 0).any():
        raise ValueError("token_whiten: lengths must be >= 0")
    n = w.sum()
    if n == 0:
        return np.zeros_like(v, dtype=np.float32)
    mean = float((w * v).sum() / n)
    var = float((w * (v - mean) ** 2).sum() / (n - 1)) if n > 1 else 0.0
    return ((v - mean) / (np.sqrt(var) + eps)).astype(np.float32)


def step_advantages(batch: Any, estimator: str, whiten: str = "rollout") -> np.ndarray:
    """Advantages ``[R]`` of a scored ``RolloutBatch`` for ``algorithm.estimator`` and
    ``algorithm.advantage_whiten``: 'rollout' is the Rust estimator as is; 'token' replaces
    the estimator's batch whitening (reinforce_pp_baseline, reinforce_pp) by
    :func:`token_whiten` of the same un-whitened values."""
    if whiten == "rollout":
        return batch.advantages(estimator)
    if whiten != "token":
        raise ValueError(f"algorithm.advantage_whiten = {whiten!r}: use 'rollout' or 'token'")
    if estimator == "reinforce_pp_baseline":
        raw = batch.advantages("dr_grpo")  # r - mean_group(r): the baseline, not yet whitened
    elif estimator == "reinforce_pp":
        raw = np.asarray(batch.rewards, dtype=np.float32)
    else:
        raise ValueError(
            f"algorithm.advantage_whiten = 'token' applies to reinforce_pp_baseline and reinforce_pp, "
            f"not {estimator!r}"
        )
    return token_whiten(raw, batch.response_lengths)
