"""Per-token log-probs and entropy from hidden states, a chunk of tokens at a time.

The update needs, for every response token, log softmax(z)[target] and the entropy of
softmax(z), where z = (h · Wᵀ + b) / temperature are the LM head's logits. Computing them the
plain way materialises ``[tokens, vocabulary]`` floats for the micro-batch, several times over
(logits, log-softmax, their gradients), for the policy and again for the reference: with a 49k
vocabulary that is the update's largest memory by far. :class:`ChunkedLogprobEntropy` keeps
only ``[chunk, vocabulary]`` alive: the forward pass reduces each chunk to two numbers per
token and forgets the logits; the backward pass recomputes each chunk's logits and forms the
gradient with respect to ``h`` and ``W`` (and ``b``) directly:

- d logp / dz = onehot(target) - p
- d H / dz    = -p · (log p + H)

so ``dz = g_logp · (onehot - p) - g_H · p · (log p + H)``, then ``dh = dz/τ · W`` and
``dW = (dz/τ)ᵀ · h``. The matmuls run in the weight's dtype and the softmax math in float32,
as the plain path (``model(...).logits.float()``) does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brorl.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["chunked_logprobs_entropy", "reference_logprobs_entropy", "lm_head_of"]


def _chunk_stats(h: Any, weight: Any, bias: Any, targets: Any, inv_temp: float) -> tuple[Any, Any]:
    """Target log-probs and entropy of one chunk, with two ``[c, V]`` float32 buffers alive."""
    import torch

    z = torch.nn.functional.linear(h, weight, bias).float()
    z.mul_(inv_temp)
    z.sub_(torch.logsumexp(z, dim=-1, keepdim=True))  # z is now log p
    logp = z.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    p = z.exp()
    ent = -(p.mul_(z)).sum(-1)
    return logp, ent


def _function() -> Any:
    import torch

    class ChunkedLogprobEntropy(torch.autograd.Function):
        """``(hidden [N, H], weight [V, H], bias [V] | None, targets [N])`` -> ``(logp [N],
        entropy [N])`` in float32, never holding more than ``chunk`` rows of logits."""

        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, bias: Any, targets: Any, inv_temp: float, chunk: int) -> Any:
            n = hidden.shape[0]
            logp = torch.empty(n, dtype=torch.float32, device=hidden.device)
            ent = torch.empty(n, dtype=torch.float32, device=hidden.device)
            for s in range(0, n, chunk):
                e = min(s + chunk, n)
                lp, h = _chunk_stats(hidden[s:e], weight, bias, targets[s:e], inv_temp)
                logp[s:e] = lp
                ent[s:e] = h
            ctx.save_for_backward(hidden, weight, bias, targets, ent)
            ctx.inv_temp, ctx.chunk = inv_temp, chunk
            return logp, ent

        @staticmethod
        def backward(ctx: Any, g_logp: Any, g_ent: Any) -> Any:
            hidden, weight, bias, targets, ent = ctx.saved_tensors
            inv_temp, chunk = ctx.inv_temp, ctx.chunk
            n = hidden.shape[0]
            need_h, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias is not None and ctx.needs_input_grad[2]
            g_h: Any = torch.empty_like(hidden) if need_h else None
            g_w: Any = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
            g_b: Any = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
            if g_logp is None:
                g_logp = torch.zeros(n, dtype=torch.float32, device=hidden.device)
            if g_ent is None:
                g_ent = torch.zeros(n, dtype=torch.float32, device=hidden.device)
            for s in range(0, n, chunk):
                e = min(s + chunk, n)
                with torch.no_grad():
                    # two [c, V] float32 buffers: log p (reused for the bracket below) and p -> dz
                    z = torch.nn.functional.linear(hidden[s:e], weight, bias).float()
                    z.mul_(inv_temp)
                    z.sub_(torch.logsumexp(z, dim=-1, keepdim=True))  # log p
                    dz = z.exp()  # p
                    # dz = g_logp·(onehot - p) - g_H·p·(log p + H), then the 1/τ of z = raw/τ
                    z.add_(ent[s:e].unsqueeze(-1)).mul_(-g_ent[s:e].unsqueeze(-1)).sub_(g_logp[s:e].unsqueeze(-1))
                    dz.mul_(z)
                    del z
                    dz.scatter_add_(-1, targets[s:e].unsqueeze(-1), g_logp[s:e].unsqueeze(-1))
                    dz.mul_(inv_temp)
                    dzc = dz.to(weight.dtype)
                    if need_h:
                        g_h[s:e] = dzc @ weight
                    if need_w:
                        if weight.dtype == torch.float32:
                            g_w.addmm_(dzc.t(), hidden[s:e])  # no [V, H] temporary
                        else:
                            g_w.add_((dzc.t() @ hidden[s:e]).float())
                    if need_b:
                        g_b.add_(dz.sum(0))
            return (
                g_h,
                g_w.to(weight.dtype) if need_w else None,
                g_b.to(bias.dtype) if need_b else None,
                None, None, None,
            )

    return ChunkedLogprobEntropy


_FN: Any = None


def chunked_logprobs_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    chunk_tokens: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``targets`` and entropy under softmax((hidden · weightᵀ + bias) / temperature).

    ``hidden [N, H]`` (any dtype the weight has), ``weight [V, H]``, ``targets [N]`` int64.
    Returns float32 ``(logp [N], entropy [N])``; both carry gradient to ``hidden``, ``weight``
    and ``bias``. Peak extra memory is a few ``[chunk_tokens, V]`` float32 buffers.
    """
    global _FN
    if chunk_tokens <= 0:
        raise ConfigError(f"chunk_tokens must be positive, got {chunk_tokens}")
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ConfigError(f"hidden [N, H] and weight [V, H] expected, got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if targets.shape != hidden.shape[:1]:
        raise ConfigError(f"targets must be [N] = {tuple(hidden.shape[:1])}, got {tuple(targets.shape)}")
    if _FN is None:
        _FN = _function()
    return _FN.apply(hidden, weight, bias, targets, 1.0 / float(temperature), int(chunk_tokens))


def reference_logprobs_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *, bias: torch.Tensor | None = None, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain computation (full logits) that :func:`chunked_logprobs_entropy` must equal."""
    import torch

    z = torch.nn.functional.linear(hidden, weight, bias).float() / temperature
    logp_all = torch.log_softmax(z, dim=-1)
    return logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1)


# Config attributes of models whose logits are more than ``lm_head(final hidden state)``.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def lm_head_of(model: Any) -> tuple[Any, Any] | None:
    """``(decoder, lm_head)`` of a Hugging Face causal LM whose logits are exactly
    ``lm_head(decoder(...).last_hidden_state)`` with ``lm_head`` a plain ``nn.Linear``; None
    when the model does anything else (logit soft-capping or scaling, a wrapped head), in
    which case the caller keeps the plain path."""
    import torch

    get_dec = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    if get_dec is None or get_head is None:
        return None
    try:
        dec, head = get_dec(), get_head()
    except (AttributeError, NotImplementedError):
        return None
    if dec is None or dec is model or type(head) is not torch.nn.Linear:
        return None
    cfg = getattr(model, "config", None)
    for name in _LOGIT_TRANSFORMS:
        v = getattr(cfg, name, None)
        if v not in (None, 0, 0.0, 1, 1.0):
            return None
    return dec, head


def response_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    resp_start: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float,
    chunk_tokens: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Response-token log-probs ``[B, T]``, entropy ``[B, T]`` (both with gradient when grad
    is enabled, 0 on padding) and the next-token distribution at the first response position
    ``[B, V]`` (no gradient) of a causal LM, without the full ``[B, L, V]`` logits.

    ``input_ids``/``attention_mask`` ``[B, L]`` (prompt then response, right-padded),
    ``resp_start [B]`` the index of each row's first response token, ``targets``/``mask``
    ``[B, T]``. Returns None when ``model`` is not of the plain ``lm_head(hidden)`` form (see
    :func:`lm_head_of`)."""
    import torch

    parts = lm_head_of(model)
    if parts is None:
        return None
    dec, head = parts
    dev = head.weight.device
    hidden = dec(input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev), use_cache=False).last_hidden_state
    b, t_len = targets.shape
    starts = resp_start.to(dev)
    # position resp_start - 1 + k predicts response token k; only real tokens are computed
    rows, cols = torch.nonzero(mask.to(dev) > 0, as_tuple=True)
    sel = hidden[rows, starts[rows] - 1 + cols]
    lp, ent = chunked_logprobs_entropy(
        sel, head.weight, targets.to(dev)[rows, cols], bias=head.bias, temperature=temperature, chunk_tokens=chunk_tokens
    )
    zeros = torch.zeros((b, t_len), dtype=torch.float32, device=dev)
    logp = zeros.index_put((rows, cols), lp)
    entropy = zeros.index_put((rows, cols), ent)
    with torch.no_grad():
        z0 = head(hidden[torch.arange(b, device=dev), (starts - 1).clamp(min=0)].detach()).float() / temperature
        first = torch.softmax(z0, dim=-1)
    return logp, entropy, first
