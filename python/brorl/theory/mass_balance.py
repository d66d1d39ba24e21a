"""The mass balance equation of BroRL (arXiv 2510.01180, Sec. 3) as small pure functions.

Setting. A softmax policy p = softmax(z) over a vocabulary of V tokens, a set P of correct
tokens (reward R_c >= 0) and the rest incorrect (reward R_w <= 0). One step draws N tokens;
S is the *set* of distinct sampled tokens. The linear surrogate of the step is

    L(z) = (1/N) * sum_{i in S} R_i * p_i(z)

and one gradient-ascent step z <- z + eta * dL/dz changes the correct mass Q_pos = sum_{i in P} p_i
to first order in eta by

    dQ_pos = (eta/N) * [ (R_c - S_R) Q_neg A_2                    # sampled correct,   >= 0
                       + (S_R - R_w) Q_pos B_2                    # sampled incorrect, >= 0
                       + S_R (Q_pos U_neg,2 - Q_neg U_pos,2) ]    # unsampled coupling, any sign

with P_pos / P_neg the probability of the sampled correct / incorrect tokens,
S_R = R_c P_pos + R_w P_neg, A_2 / B_2 the sums of p_i^2 over sampled correct / incorrect tokens and
U_pos,2 / U_neg,2 the same over *unsampled* correct / incorrect tokens. Because P_pos + P_neg <= 1
and R_c >= 0 >= R_w, we have R_w <= S_R <= R_c, so the first two terms are never negative.

The expected size of the unsampled moments after N i.i.d. draws (the expectation behind the
paper's Lemma 2) follows from P(token i never drawn) = (1 - p_i)^N:

    E[U_pos,2] = sum_{i in P} p_i^2 (1 - p_i)^N,    E[U_neg,2] = sum_{i not in P} p_i^2 (1 - p_i)^N

and both fall monotonically to 0 as N grows, which is why large N makes correct mass grow reliably.

The functions work on NumPy arrays and on torch tensors alike (only ``*``, ``~`` and ``.sum(-1)``
are used); torch is never imported at module import.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from brorl.errors import BrorlTypeError, InvalidArgumentError, NonFiniteError

__all__ = [
    "MassBalance",
    "expected_unsampled_moments",
    "mass_balance_from_masks",
    "mass_balance_terms",
    "predicted_delta_q_pos",
    "softmax",
    "unsampled_second_moment",
]


def _is_torch(x: Any) -> bool:
    # Checking the class's module avoids importing torch just to ask isinstance().
    return type(x).__module__.split(".")[0] == "torch"


def check_n(n: Any, name: str = "n", minimum: int = 0) -> int:
    """Validate a sample count: an integer >= `minimum` (bool is rejected)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise BrorlTypeError(f"{name} must be an integer, got {n!r} ({type(n).__name__})")
    if n < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def softmax(logits: np.ndarray) -> np.ndarray:
    """p = softmax(z) over the last axis, in float64. Shapes: [..., V] -> [..., V]."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class MassBalance:
    """The quantities of the mass balance equation for one step (scalars, or arrays over the
    leading dims of the inputs). ``sampled_correct``, ``sampled_incorrect`` and ``unsampled`` are
    the three bracketed terms, without the eta/N factor."""

    q_pos: Any
    q_neg: Any
    p_pos: Any
    p_neg: Any
    a2: Any
    b2: Any
    u_pos2: Any
    u_neg2: Any
    s_r: Any
    sampled_correct: Any  # (R_c - S_R) Q_neg A_2
    sampled_incorrect: Any  # (S_R - R_w) Q_pos B_2
    unsampled: Any  # S_R (Q_pos U_neg,2 - Q_neg U_pos,2)

    @property
    def total(self) -> Any:
        """Sum of the three terms: dQ_pos * N / eta to first order."""
        return self.sampled_correct + self.sampled_incorrect + self.unsampled


def _check_rewards(r_c: Any, r_w: Any) -> None:
    lo_c = float(r_c.min()) if hasattr(r_c, "min") else float(r_c)
    hi_w = float(r_w.max()) if hasattr(r_w, "max") else float(r_w)
    if not (math.isfinite(lo_c) and math.isfinite(hi_w)):
        raise NonFiniteError(f"rewards must be finite, got r_c={r_c!r}, r_w={r_w!r}")
    if lo_c < 0:
        raise InvalidArgumentError(f"r_c must be >= 0 (reward of a correct token), got {r_c!r}")
    if hi_w > 0:
        raise InvalidArgumentError(f"r_w must be <= 0 (reward of an incorrect token), got {r_w!r}")


def mass_balance_from_masks(probs: Any, correct: Any, sampled: Any, r_c: Any, r_w: Any) -> MassBalance:
    """The three mass-balance terms from a distribution and two boolean masks.

    Shapes: probs [..., V] (rows sum to 1), correct [..., V] or [V] bool, sampled [..., V] bool
    (True where the token was drawn at least once this step), r_c and r_w scalars or [...].
    Requires r_c >= 0 >= r_w. Works on NumPy arrays or torch tensors (not mixed).
    """
    _check_rewards(r_c, r_w)
    pos, neg = correct, ~correct
    unsampled = ~sampled
    p2 = probs * probs
    q_pos = (probs * pos).sum(-1)
    q_neg = (probs * neg).sum(-1)
    p_pos = (probs * (pos & sampled)).sum(-1)
    p_neg = (probs * (neg & sampled)).sum(-1)
    a2 = (p2 * (pos & sampled)).sum(-1)
    b2 = (p2 * (neg & sampled)).sum(-1)
    u_pos2 = (p2 * (pos & unsampled)).sum(-1)
    u_neg2 = (p2 * (neg & unsampled)).sum(-1)
    s_r = r_c * p_pos + r_w * p_neg
    return MassBalance(
        q_pos=q_pos,
        q_neg=q_neg,
        p_pos=p_pos,
        p_neg=p_neg,
        a2=a2,
        b2=b2,
        u_pos2=u_pos2,
        u_neg2=u_neg2,
        s_r=s_r,
        sampled_correct=(r_c - s_r) * q_neg * a2,
        sampled_incorrect=(s_r - r_w) * q_pos * b2,
        unsampled=s_r * (q_pos * u_neg2 - q_neg * u_pos2),
    )


def mass_balance_terms(logits: Any, correct: Any, sampled_ids: Any, r_c: float, r_w: float) -> MassBalance:
    """The mass balance equation for one softmax step, from logits (NumPy, float64).

    Shapes: logits [V]; correct [V] bool (the set P); sampled_ids [N] ints in [0, V) (the N
    draws of the step; repeats count once, as the sampled *set* enters the equation);
    r_c >= 0 >= r_w. Returns a `MassBalance` of Python-float-like NumPy scalars.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise InvalidArgumentError(f"logits must be a non-empty 1-D array, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise NonFiniteError("logits must be finite")
    mask = np.asarray(correct)
    if mask.dtype != np.bool_ or mask.shape != z.shape:
        raise InvalidArgumentError(
            f"correct must be a bool array of shape {z.shape}, got {mask.dtype} {mask.shape}"
        )
    ids = np.asarray(sampled_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise InvalidArgumentError(f"sampled_ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= z.size):
        raise InvalidArgumentError(f"sampled_ids must lie in [0, {z.size}), got range [{ids.min()}, {ids.max()}]")
    sampled = np.zeros(z.shape, dtype=bool)
    sampled[ids] = True
    return mass_balance_from_masks(softmax(z), mask, sampled, float(r_c), float(r_w))


def predicted_delta_q_pos(mb: MassBalance, lr: float, n: int) -> Any:
    """First-order prediction of the change of correct mass after one gradient step of the
    linear surrogate with learning rate `lr` and N = `n` draws: dQ_pos = (lr/N) * mb.total."""
    n = check_n(n, "n", minimum=1)
    if not math.isfinite(lr) or lr <= 0:
        raise InvalidArgumentError(f"lr must be a finite number > 0, got {lr!r}")
    return (lr / n) * mb.total


def _weights_unsampled(p: Any, n: int) -> Any:
    """(1 - p)^n, computed as exp(n * log1p(-p)) so it stays accurate for tiny p and large n."""
    if n == 0:
        return p * 0 + 1
    if _is_torch(p):
        import torch

        return torch.exp(n * torch.log1p(-p))
    with np.errstate(divide="ignore"):  # p == 1 gives log1p(-1) = -inf and weight 0, as it should
        return np.exp(n * np.log1p(-p))


def _as_probs(probs: Any, name: str = "probs") -> Any:
    """Validated float view of a probability array (NumPy float64, or torch float32/float64)."""
    if _is_torch(probs):
        import torch

        p = probs.detach()
        if p.dtype not in (torch.float32, torch.float64):
            p = p.float()  # bf16/fp16 logits-softmax from a trainer: square in fp32, not bf16
        if p.numel():
            lo, hi = torch.aminmax(p)  # one pass; NaN propagates and fails the test below
            ok = bool((lo >= 0) & (hi <= 1))
        else:
            ok = True
    else:
        p = np.asarray(probs, dtype=np.float64)
        ok = bool(p.size == 0 or (p.min() >= 0 and p.max() <= 1))  # NaN propagates and fails
    if p.ndim < 1 or p.shape[-1] == 0:
        raise InvalidArgumentError(f"{name} must have shape [..., V] with V >= 1, got {tuple(p.shape)}")
    if not ok:
        raise InvalidArgumentError(f"{name} must hold probabilities in [0, 1] (no NaN)")
    return p


def unsampled_second_moment(probs: Any, n: int) -> float:
    """Expected unsampled second moment after N i.i.d. draws, averaged over leading dims.

    Shapes: probs [..., V], full next-token distributions (NumPy or torch, any device);
    n: the number of draws N >= 0. Returns mean over [...] of sum_v p_v^2 (1 - p_v)^N
    = E[U_pos,2 + U_neg,2], the expected size of the terms the unsampled coupling acts through.
    """
    n = check_n(n, "n")
    p = _as_probs(probs)
    if _is_torch(p) and n > 0:
        import torch

        # In place: a [128, 152k] fp32 batch needs one temporary instead of four.
        w = torch.log1p(-p)
        w.mul_(n).exp_().mul_(p).mul_(p)
        return float(w.sum(-1).mean())
    per_row = (p * p * _weights_unsampled(p, n)).sum(-1)
    return float(per_row.mean())


def expected_unsampled_moments(probs: Any, correct: Any, n: int) -> tuple[Any, Any]:
    """E[U_pos,2] and E[U_neg,2] after N i.i.d. draws (the expectation of the paper's Lemma 2).

    Shapes: probs [..., V], correct [..., V] or [V] bool, n >= 0. Returns two arrays of shape [...]
    (scalars for 1-D input): sum over correct / incorrect v of p_v^2 (1 - p_v)^N.
    """
    n = check_n(n, "n")
    p = _as_probs(probs)
    w = p * p * _weights_unsampled(p, n)
    return (w * correct).sum(-1), (w * ~correct).sum(-1)
