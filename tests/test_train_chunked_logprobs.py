"""Chunked log-probs and entropy (brorl.train.chunked_logprobs) against the full-logits path:
the same values, the same loss and the same gradients, on random tensors, on the built-in
model and on a wide-vocabulary model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from brorl.errors import ConfigError  # noqa: E402
from brorl.train import losses as L  # noqa: E402
from brorl.train.chunked_logprobs import (  # noqa: E402
    chunked_logprobs_entropy,
    lm_head_of,
    reference_logprobs_entropy,
    response_logprobs,
)


def _values_and_grads(fn, h, w, b, t, g1, g2):
    for x in (h, w, b):
        if x is not None:
            x.grad = None
    lp, ent = fn()
    ((lp * g1).sum() + (ent * g2).sum()).backward()
    return [lp.detach(), ent.detach(), h.grad.clone(), w.grad.clone()] + ([b.grad.clone()] if b is not None else [])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40), hdim=st.integers(1, 12), vocab=st.integers(2, 70), chunk=st.integers(1, 50),
    temp=st.floats(0.3, 2.0), with_bias=st.booleans(), seed=st.integers(0, 10**6),
)
def test_chunked_equals_full_logits_float32(n, hdim, vocab, chunk, temp, with_bias, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hdim, generator=g, requires_grad=True)
    w = (torch.randn(vocab, hdim, generator=g) * 2).requires_grad_()
    b = torch.randn(vocab, generator=g, requires_grad=True) if with_bias else None
    t = torch.randint(vocab, (n,), generator=g)
    g1, g2 = torch.randn(n, generator=g), torch.randn(n, generator=g)
    got = _values_and_grads(lambda: chunked_logprobs_entropy(h, w, t, bias=b, temperature=temp, chunk_tokens=chunk),
                            h, w, b, t, g1, g2)
    want = _values_and_grads(lambda: reference_logprobs_entropy(h, w, t, bias=b, temperature=temp), h, w, b, t, g1, g2)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)


def test_chunked_bfloat16_within_rounding():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(33, 16, generator=g, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(300, 16, generator=g, dtype=torch.bfloat16, requires_grad=True)
    t = torch.randint(300, (33,), generator=g)
    g1, g2 = torch.randn(33, generator=g), torch.randn(33, generator=g)
    got = _values_and_grads(lambda: chunked_logprobs_entropy(h, w, t, chunk_tokens=7), h, w, None, t, g1, g2)
    want = _values_and_grads(lambda: reference_logprobs_entropy(h, w, t), h, w, None, t, g1, g2)
    assert [x.dtype for x in got[2:]] == [torch.bfloat16, torch.bfloat16]
    for x, y in zip(got, want):
        # bf16 keeps 8 bits of mantissa: compare relative to the tensor's scale
        assert float((x.float() - y.float()).abs().max()) <= 2e-2 * max(float(y.float().abs().max()), 1.0)


@pytest.mark.parametrize(
    "kw, arg",
    [({"chunk_tokens": 0}, "chunk_tokens"), ({"temperature": 0.0}, "temperature")],
)
def test_bad_arguments_are_refused(kw, arg):
    h, w, t = torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ConfigError, match=arg):
        chunked_logprobs_entropy(h, w, t, **kw)
    with pytest.raises(ConfigError, match="targets"):
        chunked_logprobs_entropy(h, w, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match="hidden"):
        chunked_logprobs_entropy(h, torch.zeros(5, 3), t)


# -- on models ------------------------------------------------------------------------------


def _llama(vocab: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, head_dim=32, max_position_embeddings=128,
                      tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def builtin_model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from brorl.train.tiny import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", seed=0)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _micro_batch(vocab: int, seed: int = 0):
    """A right-padded micro-batch of prompts + responses of different lengths."""
    g = torch.Generator().manual_seed(seed)
    plens, rlens = [5, 9, 3, 7], [6, 1, 11, 0]
    width = max(p + r for p, r in zip(plens, rlens))
    t_len = max(rlens)
    ids = torch.zeros(len(plens), width, dtype=torch.long)
    att = torch.zeros_like(ids)
    targets = torch.zeros(len(plens), t_len, dtype=torch.long)
    mask = torch.zeros(len(plens), t_len)
    for j, (p, r) in enumerate(zip(plens, rlens)):
        seq = torch.randint(3, vocab, (p + r,), generator=g)
        ids[j, : p + r] = seq
        att[j, : p + r] = 1
        targets[j, :r] = seq[p:]
        mask[j, :r] = 1.0
    adv = torch.randn(len(plens), t_len, generator=g)
    return {"input_ids": ids, "attention_mask": att, "resp_start": torch.tensor(plens), "targets": targets,
            "mask": mask, "adv": adv}


def _full_logits_path(model, t, temperature):
    """Today's path: the full [B, L, V] logits, then the response positions (learner.py)."""
    from brorl.train.learner import _response_logits

    out = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], use_cache=False)
    logits = _response_logits(out.logits.float(), t["resp_start"], t["targets"].shape[1]) / temperature
    logp = L.token_logprobs(logits, t["targets"])
    ent = L.entropy_from_logits(logits)
    first = torch.softmax(logits[:, 0].detach(), dim=-1)
    return logp, ent, first


def _loss(logp, ent, t):
    old = logp.detach() - 0.05  # ratios != 1 so the clip and the KL both act
    ref = logp.detach() + 0.1
    loss, _ = L.policy_loss(logp, old, ref, None, t["adv"], t["mask"], clip_low=0.2, clip_high=0.28,
                            loss_agg="token-mean", kl_coef=0.1, kl_estimator="k3", kl_clamp=10.0,
                            tis_low=None, tis_high=None, entropy=ent, entropy_coef=0.01)
    return loss


@pytest.mark.parametrize("which", ["builtin", "wide"])
def test_loss_and_gradients_match_full_logits(which, builtin_model):
    model = builtin_model if which == "builtin" else _llama(vocab=20000, seed=1)
    vocab = model.config.vocab_size
    t = _micro_batch(vocab)
    temp = 0.9
    runs = []
    for path in ("full", "chunked"):
        model.zero_grad()
        if path == "full":
            logp, ent, first = _full_logits_path(model, t, temp)
        else:
            logp, ent, first = response_logprobs(model, t["input_ids"], t["attention_mask"], t["resp_start"],
                                                 t["targets"], t["mask"], temperature=temp, chunk_tokens=5)
        loss = _loss(logp, ent, t)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        runs.append((loss.detach(), logp.detach() * t["mask"], ent.detach() * t["mask"], first, grads))
    (l0, lp0, e0, f0, g0), (l1, lp1, e1, f1, g1) = runs
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lp1, lp0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(e1, e0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f1, f0, rtol=1e-5, atol=1e-6)
    assert set(g1) == set(g0) and len(g0) == len(list(model.parameters()))
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-4, atol=1e-6, msg=n)


def test_entropy_carries_gradient(builtin_model):
    t = _micro_batch(builtin_model.config.vocab_size)
    builtin_model.zero_grad()
    _, ent, _ = response_logprobs(builtin_model, t["input_ids"], t["attention_mask"], t["resp_start"], t["targets"],
                                  t["mask"], temperature=1.0, chunk_tokens=4)
    (ent * t["mask"]).sum().backward()
    assert float(builtin_model.lm_head.weight.grad.abs().sum()) > 0
    assert float(builtin_model.model.layers[0].mlp.up_proj.weight.grad.abs().sum()) > 0


def test_models_with_logit_transforms_keep_the_plain_path():
    model = _llama(vocab=50)
    assert lm_head_of(model) is not None
    model.config.final_logit_softcapping = 30.0
    assert lm_head_of(model) is None
    assert lm_head_of(torch.nn.Linear(2, 2)) is None


def test_config_refuses_negative_chunk():
    from brorl.train.config import load_config

    assert load_config(overrides=["deepspeed.logits_chunk_tokens=0"]).deepspeed.logits_chunk_tokens == 0
    with pytest.raises(ConfigError, match="deepspeed.logits_chunk_tokens"):
        load_config(overrides=["deepspeed.logits_chunk_tokens=-1"])
