"""The update's pure functions against values computed by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from brorl.errors import ConfigError  # noqa: E402
from brorl.train import losses as L  # noqa: E402


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_ppo_clip_loss_hand_values():
    # ratios exp(d): 1.5 (A=+1, clipped at 1.28), 0.5 (A=+1, not clipped: min picks 0.5),
    # 0.5 (A=-1, clipped at 0.8 -> -0.8 < -0.5), 1.1 (A=-1, inside window)
    d = [math.log(1.5), math.log(0.5), math.log(0.5), math.log(1.1)]
    logp = t([d])
    old = torch.zeros(1, 4)
    adv = t([[1.0, 1.0, -1.0, -1.0]])
    loss, clipped = L.ppo_clip_loss(logp, old, adv, 0.2, 0.28)
    assert loss.tolist()[0] == pytest.approx([-1.28, -0.5, 0.8, 1.1], abs=1e-6)
    assert clipped.tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_clip_higher_is_asymmetric():
    logp = t([[math.log(1.25), math.log(0.75)]])
    loss, _ = L.ppo_clip_loss(logp, torch.zeros(1, 2), t([[1.0, -1.0]]), 0.2, 0.28)
    # 1.25 < 1.28 keeps its gradient; 0.75 < 0.8 is clipped for A<0
    assert loss.tolist()[0] == pytest.approx([-1.25, 0.8], abs=1e-6)


@pytest.mark.parametrize(
    "est,expected",
    [("k1", [0.5, -2.0, 10.0]), ("k2", [0.125, 2.0, 50.0]),
     ("k3", [math.exp(-0.5) - 1 + 0.5, math.exp(2.0) - 1 - 2.0, math.exp(-10.0) - 1 + 10.0])],
)
def test_kl_estimators_hand_values(est, expected):
    logp = t([[0.0, -3.0, 20.0]])
    ref = t([[-0.5, -1.0, 0.0]])  # log-ratios 0.5, -2, 20 -> clamped to 10
    got = L.kl_penalty(logp, ref, est, clamp=10.0)
    assert got.tolist()[0] == pytest.approx(expected, rel=1e-5)


def test_kl_unknown_estimator_is_config_error():
    with pytest.raises(ConfigError, match="kl_estimator"):
        L.kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), "k9")


def test_tis_weights_window():
    old = t([[0.0, 0.0, 0.0]])
    eng = t([[math.log(4.0), math.log(0.5), math.log(0.1)]])  # ratios 0.25, 2, 10
    w = L.tis_weights(old, eng, 0.5, 5.0)
    assert w.tolist()[0] == pytest.approx([0.5, 2.0, 5.0], rel=1e-6)
    assert not w.requires_grad


def test_aggregate_modes_hand_values():
    v = t([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = t([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert L.aggregate(v, m, "token-mean").item() == pytest.approx(10 / 4)
    assert L.aggregate(v, m, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert L.aggregate(v, m, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    # micro-batch split: the halves with the global denominators sum to the whole
    a = L.aggregate(v[:1], m[:1], "token-mean", total_tokens=4)
    b = L.aggregate(v[1:], m[1:], "token-mean", total_tokens=4)
    assert (a + b).item() == pytest.approx(2.5)
    a = L.aggregate(v[:1], m[:1], "seq-mean-token-mean", total_seqs=2)
    b = L.aggregate(v[1:], m[1:], "seq-mean-token-mean", total_seqs=2)
    assert (a + b).item() == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="loss_agg"):
        L.aggregate(v, m, "sum-of-everything")


def test_entropy_and_token_logprobs():
    logits = torch.zeros(1, 1, 4)  # uniform over 4
    assert L.entropy_from_logits(logits).item() == pytest.approx(math.log(4))
    logits = t([[[math.log(1.0), math.log(3.0)]]])  # probs 0.25, 0.75
    lp = L.token_logprobs(logits, torch.tensor([[1]]))
    assert lp.item() == pytest.approx(math.log(0.75), rel=1e-6)


def test_sqrt_lr_rule():
    # ProRL batch 16*512 -> BroRL 512*128 is 8x the rollouts: lr grows by sqrt(8)
    assert L.sqrt_lr(1e-6, 512 * 128, 16 * 512) == pytest.approx(1e-6 * math.sqrt(8))
    with pytest.raises(ConfigError):
        L.sqrt_lr(1e-6, 0, 1)


def test_policy_loss_combines_terms():
    logp = t([[0.0, 0.0]]).requires_grad_()
    old = t([[0.0, 0.0]])
    ref = t([[-1.0, 0.0]])
    eng = t([[math.log(0.5), 0.0]])  # tis weight exp(0 - log .5) = 2 on token 0, 1 on token 1
    adv = t([[1.0, -1.0]])
    mask = t([[1.0, 1.0]])
    ent = t([[0.3, 0.1]])
    loss, m = L.policy_loss(
        logp, old, ref, eng, adv, mask, clip_low=0.2, clip_high=0.28, loss_agg="token-mean",
        kl_coef=0.1, kl_estimator="k2", kl_clamp=10.0, tis_low=0.5, tis_high=5.0,
        entropy=ent, entropy_coef=0.5,
    )
    pg = (-1.0 * 2 + 1.0 * 1) / 2  # -0.5
    kl = (0.5 * 1.0 + 0.0) / 2  # 0.25
    assert m["pg_loss"].item() == pytest.approx(pg)
    assert m["kl"].item() == pytest.approx(kl)
    assert m["entropy"].item() == pytest.approx(0.2)
    assert loss.item() == pytest.approx(pg + 0.1 * kl - 0.5 * 0.2)
    loss.backward()
    # d/dlogp of -r*A*w at r=1 is -A*w/2 ; plus kl_coef * d(x^2/2)/dx / 2 = 0.1*x/2
    assert logp.grad.tolist()[0] == pytest.approx([-2 / 2 + 0.1 * 1.0 / 2, 1 / 2], abs=1e-6)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
@pytest.mark.parametrize("seed", range(5))
def test_merged_duplicates_give_the_same_loss_and_gradient(mode, seed):
    # B distinct sequences, copy j of row b has its own engine log-probs. The merged form
    # (each row once, weighted by its copy count, mean IS weight) must equal the loss over
    # the batch with every copy spelled out — value and gradient.
    g = torch.Generator().manual_seed(seed)
    b, tt = 4, 5
    counts = torch.randint(1, 5, (b,), generator=g)
    lengths = torch.randint(1, tt + 1, (b,), generator=g)
    mask = (torch.arange(tt).unsqueeze(0) < lengths.unsqueeze(1)).float()
    base = torch.randn(b, tt, generator=g) * 0.3 - 1.0
    old = base + torch.randn(b, tt, generator=g) * 0.05
    ref = base + torch.randn(b, tt, generator=g) * 0.1
    adv = torch.randn(b, 1, generator=g).expand(b, tt).contiguous()
    owner = torch.repeat_interleave(torch.arange(b), counts)
    member_elp = old[owner] + torch.randn(len(owner), tt, generator=g) * 0.4
    kw = dict(clip_low=0.2, clip_high=0.28, loss_agg=mode, kl_coef=0.1, kl_estimator="k3", kl_clamp=10.0,
              tis_low=0.5, tis_high=5.0)

    logp_full = base.clone().requires_grad_(True)
    lp = logp_full[owner]
    full, mf = L.policy_loss(lp, old[owner], ref[owner], member_elp, adv[owner], mask[owner], **kw)
    full.backward()

    logp_m = base.clone().requires_grad_(True)
    w = L.duplicate_tis_weights(old, member_elp, owner, 0.5, 5.0)
    merged, mm = L.policy_loss(logp_m, old, ref, None, adv, mask, counts=counts.float(), tis_weight=w, **kw)
    merged.backward()

    assert merged.item() == pytest.approx(full.item(), rel=1e-5, abs=1e-7)
    assert torch.allclose(logp_m.grad, logp_full.grad, rtol=1e-5, atol=1e-7)
    for k in mf:
        assert mm[k].item() == pytest.approx(mf[k].item(), rel=1e-5, abs=1e-7), k


def test_duplicate_tis_weights_single_copies_equal_tis_weights():
    old = t([[-1.0, -2.0], [-0.5, -0.1]])
    eng = t([[-1.5, -1.0], [-0.5, -3.0]])
    w = L.duplicate_tis_weights(old, eng, torch.tensor([0, 1]), 0.5, 5.0)
    assert torch.allclose(w, L.tis_weights(old, eng, 0.5, 5.0))
    # two copies of row 0: mean of clip(e^0.5)=1.6487 and clip(e^-1)=0.5 (clipped up from 0.37)
    w2 = L.duplicate_tis_weights(old[:1], torch.stack([eng[0], old[0] + 1.0]), torch.tensor([0, 0]), 0.5, 5.0)
    assert w2[0, 0].item() == pytest.approx((math.exp(0.5) + 0.5) / 2, rel=1e-6)


def test_dual_clip_caps_negative_advantage_loss():
    # ratios 5 (A=-1: loss 5 without the cap, capped at c=3), 5 (A=+1: clipped at 1.28 as usual),
    # 2 (A=-1: below c, loss 2)
    logp = t([[math.log(5.0), math.log(5.0), math.log(2.0)]])
    adv = t([[-1.0, 1.0, -1.0]])
    plain, _ = L.ppo_clip_loss(logp, torch.zeros(1, 3), adv, 0.2, 0.28)
    assert plain.tolist()[0] == pytest.approx([5.0, -1.28, 2.0], rel=1e-6)
    loss, clipped = L.ppo_clip_loss(logp, torch.zeros(1, 3), adv, 0.2, 0.28, dual_clip=3.0)
    assert loss.tolist()[0] == pytest.approx([3.0, -1.28, 2.0], rel=1e-6)
    assert clipped.tolist() == [[1.0, 1.0, 0.0]]
    logp.requires_grad_(True)
    loss, _ = L.ppo_clip_loss(logp, torch.zeros(1, 3), adv, 0.2, 0.28, dual_clip=3.0)
    loss.sum().backward()
    assert logp.grad.tolist()[0] == pytest.approx([0.0, 0.0, 2.0], rel=1e-6)  # capped: no gradient


def test_log_ratio_clamp_keeps_a_collapsed_token_finite():
    # a token whose probability fell by e^-200 under the current policy vs e^+200: exp overflows
    # without the clamp (inf * A, and inf * 0 = NaN once masked)
    logp = t([[200.0, -200.0]])
    adv = t([[-1.0, 1.0]])
    loss, _ = L.ppo_clip_loss(logp, torch.zeros(1, 2), adv, 0.2, 0.28)
    assert torch.isfinite(loss).all() and loss[0, 0].item() == pytest.approx(math.exp(20.0), rel=1e-5)
    raw, _ = L.ppo_clip_loss(logp, torch.zeros(1, 2), adv, 0.2, 0.28, log_ratio_clamp=None)
    assert not torch.isfinite(raw).all()


def test_given_totals_are_not_clamped_but_must_be_positive():
    v, m = t([[2.0]]), t([[1.0]])
    # one token over two ranks: each rank's share of the denominator is 0.5
    assert L.aggregate(v, m, "token-mean", total_tokens=0.5).item() == pytest.approx(4.0)
    assert L.aggregate(v, m, "seq-mean-token-sum", total_seqs=0.5).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="total_tokens"):
        L.aggregate(v, m, "token-mean", total_tokens=0.0)
