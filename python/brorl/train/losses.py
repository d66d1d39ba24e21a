"""The update's math as small pure functions (torch tensors in, tensors out).

Shapes: ``B`` sequences in a micro-batch, ``T`` response positions (padded), ``V`` vocabulary.
``mask`` is 1.0 on real response tokens and 0.0 on padding. Nothing here knows about models,
engines or DeepSpeed, so each function is checked against hand-computed values in
tests/test_train_losses.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from brorl.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ppo_clip_loss",
    "kl_penalty",
    "tis_weights",
    "duplicate_tis_weights",
    "aggregate",
    "entropy_from_logits",
    "token_logprobs",
    "sqrt_lr",
    "policy_loss",
]


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    *,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped PPO surrogate with clip-higher (DAPO): per-token loss and clipped indicator.

    ``logp``, ``old_logp``, ``advantages``: ``[B, T]``. ratio r = exp(logp - old_logp);
    loss = -min(r·A, clip(r, 1-ε_low, 1+ε_high)·A). ε_high > ε_low lets low-probability
    tokens with positive advantage grow further (keeps exploration).

    ``log_ratio_clamp``: logp - old_logp is clamped to ±this before ``exp`` (verl clamps at
    ±20) so a token whose probability collapsed cannot overflow the ratio to inf (inf·0 = NaN
    in the masked sum). Inside ±20 nothing changes; beyond it the token has no gradient.

    ``dual_clip`` c > 1 (dual-clip PPO, Ye et al. 2020): for A < 0 the loss is also capped at
    -c·A, so a token whose ratio ran far above 1 cannot push an unbounded negative update.
    None disables it (ProRL/BroRL do not use it).

    Returns ``(loss [B, T], clipped [B, T] float)`` where ``clipped`` marks tokens whose
    gradient a clip removed.
    """
    import torch

    log_ratio = logp - old_logp
    if log_ratio_clamp is not None:
        log_ratio = torch.clamp(log_ratio, -log_ratio_clamp, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped_ratio = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    clipped = clipped_ratio * advantages
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = clipped < unclipped
    if dual_clip is not None:
        cap = -dual_clip * advantages
        capped = (advantages < 0) & (loss > cap)
        loss = torch.where(capped, cap, loss)
        was_clipped = was_clipped | capped
    return loss, was_clipped.to(logp.dtype)


def kl_penalty(
    logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k2", clamp: float = 10.0
) -> torch.Tensor:
    """Per-token estimate of KL(π || π_ref) from sampled tokens, ``[B, T]`` -> ``[B, T]``.

    With x = clamp(logp - ref_logp, -clamp, clamp) (clamped so one wild token cannot blow
    up the penalty): k1 = x; k2 = x²/2 (ProRLv2's choice: its gradient is the
    log-ratio itself); k3 = exp(-x) - 1 + x (Schulman's unbiased, non-negative estimator).
    """
    import torch

    x = torch.clamp(logp - ref_logp, -clamp, clamp)
    if estimator == "k1":
        return x
    if estimator == "k2":
        return 0.5 * x * x
    if estimator == "k3":
        return torch.exp(-x) - 1.0 + x
    raise ConfigError(f"algorithm.kl_estimator = {estimator!r}: use 'k1', 'k2' or 'k3'")


def tis_weights(
    trainer_old_logp: torch.Tensor, engine_logp: torch.Tensor, low: float, high: float
) -> torch.Tensor:
    """Truncated importance-sampling weights, ``[B, T]``, no gradient.

    The samples came from the engine's distribution, not exactly the trainer's (different
    kernels, precision): w = clip(exp(trainer_old_logp - engine_logp), low, high) corrects the
    mismatch while the window bounds the variance.
    """
    import torch

    with torch.no_grad():
        return torch.clamp(torch.exp(trainer_old_logp - engine_logp), low, high)


def duplicate_tis_weights(
    trainer_old_logp: torch.Tensor,
    member_engine_logp: torch.Tensor,
    member_owner: torch.Tensor,
    low: float,
    high: float,
) -> torch.Tensor:
    """Mean truncated-IS weight of each distinct sequence over its identical copies, ``[B, T]``.

    At large N many rollouts of a prompt are the same token sequence; the learner runs each
    distinct sequence once and weighs it by its copy count. The copies share the trainer's
    log-probs but each has its own engine log-probs, so their PPO terms differ only by the IS
    weight: Σ_copies w_j · loss = count · mean_j(w_j) · loss. ``member_engine_logp [M, T]``
    holds every copy's engine log-probs and ``member_owner [M]`` the row (0..B-1) of the
    distinct sequence it copies. With one copy per row this equals :func:`tis_weights`.
    """
    import torch

    with torch.no_grad():
        w = torch.clamp(torch.exp(trainer_old_logp[member_owner] - member_engine_logp), low, high)
        total = torch.zeros_like(trainer_old_logp).index_add_(0, member_owner, w)
        counts = torch.zeros(trainer_old_logp.shape[0], dtype=w.dtype).index_add_(
            0, member_owner, torch.ones(member_owner.shape[0], dtype=w.dtype)
        )
        return total / torch.clamp(counts, min=1.0).unsqueeze(-1)


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-token ``values [B, T]`` under ``mask [B, T]`` to a scalar, named by ``mode``.

    - ``token-mean``: Σ values·mask / Σ mask — every token of the mini-batch weighs the same
      (long responses count more), the ProRL/BroRL choice.
    - ``seq-mean-token-mean``: mean over sequences of each sequence's token mean.
    - ``seq-mean-token-sum``: mean over sequences of each sequence's token sum.

    When a mini-batch is split into micro-batches, pass the mini-batch's ``total_tokens``
    (token-mean) or ``total_seqs`` (seq-mean-*) so the micro-batch losses sum to the
    mini-batch loss instead of averaging averages. Given totals must be > 0 and are used as
    they are (split over R ranks they may be below 1); the local counts are clamped at 1.

    ``counts [B]`` (optional) is how many identical rollouts each row stands for: the result
    equals the aggregate over the batch with every row repeated that many times.
    """
    import torch

    if total_tokens is not None and not total_tokens > 0:
        raise ValueError(f"aggregate: total_tokens must be > 0, got {total_tokens!r}")
    if total_seqs is not None and not total_seqs > 0:
        raise ValueError(f"aggregate: total_seqs must be > 0, got {total_seqs!r}")
    seq_tokens = mask.sum(dim=-1)
    if counts is not None:
        mask = mask * counts.to(mask.dtype).unsqueeze(-1)
    vm = values * mask
    if mode == "token-mean":
        # A given total is the caller's (already a share of a positive count: a mini-batch's
        # tokens over the ranks can be below 1 per rank); only the local count is clamped.
        if total_tokens is not None:
            return vm.sum() / float(total_tokens)
        return vm.sum() / torch.clamp(mask.sum(), min=1.0)
    if mode == "seq-mean-token-mean":
        per_seq = vm.sum(dim=-1) / torch.clamp(seq_tokens, min=1.0)
    elif mode == "seq-mean-token-sum":
        per_seq = vm.sum(dim=-1)
    else:
        raise ConfigError(
            f"algorithm.loss_agg = {mode!r}: use 'token-mean', 'seq-mean-token-mean' or "
            "'seq-mean-token-sum'"
        )
    if total_seqs is not None:
        return per_seq.sum() / float(total_seqs)
    n = float(values.shape[0]) if counts is None else float(counts.sum())
    return per_seq.sum() / max(n, 1.0)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax at every position: ``[..., V]`` -> ``[...]``."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target]: ``logits [B, T, V]``, ``targets [B, T]`` (int64) -> ``[B, T]``."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    return torch.gather(logp, -1, targets.unsqueeze(-1)).squeeze(-1)


def sqrt_lr(lr0: float, batch: int, ref_batch: int) -> float:
    """The square-root learning-rate rule when the rollout batch grows: lr0 · sqrt(B / B0)."""
    if batch <= 0 or ref_batch <= 0:
        raise ConfigError(f"sqrt_lr: batch sizes must be positive, got B={batch}, B0={ref_batch}")
    return lr0 * math.sqrt(batch / ref_batch)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    engine_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    loss_agg: str,
    kl_coef: float,
    kl_estimator: str,
    kl_clamp: float,
    tis_low: float | None,
    tis_high: float | None,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    counts: torch.Tensor | None = None,
    tis_weight: torch.Tensor | None = None,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = 20.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The full per-micro-batch objective, all tensors ``[B, T]``:

    loss = agg(w_tis · ppo_clip) + kl_coef · agg(kl) - entropy_coef · agg(entropy)

    ``engine_logp``/``tis_*`` None disables truncated IS; ``ref_logp`` None or kl_coef 0
    disables the KL term. Returns the scalar loss and detached metrics (same aggregation).

    ``counts [B]``: rows stand for that many identical rollouts (see :func:`aggregate`);
    ``tis_weight [B, T]``: precomputed IS weights (e.g. :func:`duplicate_tis_weights`) used
    instead of computing them from ``engine_logp``. ``dual_clip``/``log_ratio_clamp``: see
    :func:`ppo_clip_loss`.

    ``entropy`` must carry its graph for the bonus to act (it is only a metric when
    ``entropy_coef`` is 0): maximising entropy·coef needs d entropy / d logits.
    """
    pg, clipped = ppo_clip_loss(
        logp, old_logp, advantages, clip_low, clip_high, dual_clip=dual_clip, log_ratio_clamp=log_ratio_clamp
    )
    if tis_weight is not None:
        pg = pg * tis_weight
    elif engine_logp is not None and tis_low is not None and tis_high is not None:
        # Importance weight of the *sampling* policy: trainer's old logp vs the engine's.
        pg = pg * tis_weights(old_logp, engine_logp, tis_low, tis_high)
    agg = lambda v: aggregate(v, mask, loss_agg, total_tokens, total_seqs, counts)  # noqa: E731
    loss = agg(pg)
    metrics = {"pg_loss": loss.detach(), "clip_frac": agg(clipped).detach()}
    if ref_logp is not None:
        kl = agg(kl_penalty(logp, ref_logp, kl_estimator, kl_clamp))
        metrics["kl"] = kl.detach()
        if kl_coef > 0:
            loss = loss + kl_coef * kl
    if entropy is not None:
        ent = agg(entropy)
        metrics["entropy"] = ent.detach()
        if entropy_coef > 0:
            loss = loss - entropy_coef * ent
    return loss, metrics
