"""brorl's learner path against an independent reference of one PPO mini-batch, written from
the papers' equations (ProRL arXiv 2505.24864, BroRL arXiv 2510.01180; DAPO's clip-higher and
token-mean; dual-clip PPO; Schulman's k1/k2/k3 KL estimators; truncated IS).

The reference loops over rollouts and tokens of the whole mini-batch, with no micro-batches,
ranks or merged copies:

    L = agg_i,t [ w_it · pg_it + β · kl_it - α · H_it ]
    pg_it = -min(r_it A_i, clip(r_it, 1-ε_low, 1+ε_high) A_i)      (dual-clip: min(pg, -c A_i) if A_i<0)
    r_it  = exp(log π(y_t) - log π_old(y_t)),  w_it = clip(π_old(y_t) / π_engine(y_t), w_low, w_high)
    agg   = Σ_i,t / Σ_i |y_i| (token-mean), or the mean over rollouts of each one's token mean/sum

The learner path is brorl's own code between a model and ``backward``: the mini-batch plan
(whole groups, identical rollouts merged, packed into micro-batches per rank), the tensors of
each micro-batch, the forward that turns logits into log-probs and entropy, the per-micro-batch
loss with its global denominators. Two ranks are simulated by running both ranks' plans on one
model and averaging their gradients, as DeepSpeed's all-reduce does.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import brorl  # noqa: E402
from brorl.errors import ConfigError  # noqa: E402
from brorl.train.config import AlgorithmConfig  # noqa: E402
from brorl.train.interfaces import TrainBatch  # noqa: E402
from brorl.train.learner import (  # noqa: E402
    check_train_batch,
    forward_logprobs,
    mini_batch_backward,
    plan_mini_batches,
)

VOCAB, TEMP, PAD = 23, 0.7, 0


class Out:
    def __init__(self, logits):
        self.logits = logits


class Toy(torch.nn.Module):
    """A small causal model: the logits at position i depend on tokens i-1 and i."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Parameter(torch.randn(VOCAB, 8, generator=g))
        self.prev = torch.nn.Parameter(torch.randn(VOCAB, 8, generator=g) * 0.5)
        self.out = torch.nn.Parameter(torch.randn(8, VOCAB, generator=g))

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        prev = torch.cat([torch.zeros_like(input_ids[:, :1]), input_ids[:, :-1]], dim=1)
        return Out(torch.tanh(self.emb[input_ids] + self.prev[prev]) @ self.out)


def perturbed(model: Toy, scale: float, seed: int) -> Toy:
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return m


def ragged_batch(seed: int, groups: int = 4, n: int = 6):
    """Groups of rollouts of 1-7 tokens; about half of each group are copies of one sequence
    (the large-N case the merge is for), each copy with its own engine log-probs."""
    rng = np.random.default_rng(seed)
    pidx, toks, rewards = [], [], []
    for g in range(groups):
        common = rng.integers(1, VOCAB, size=int(rng.integers(1, 8))).tolist()
        for _ in range(n):
            t = common if rng.random() < 0.5 else rng.integers(1, VOCAB, size=int(rng.integers(1, 8))).tolist()
            pidx.append(g)
            toks.append(t)
            rewards.append(float(sum(t) % 3 == 0))  # the reward is a function of the tokens
    lps = [(-rng.random(len(t)) * 3).tolist() for t in toks]
    b = brorl.RolloutBatch.from_lists(np.asarray(pidx), toks, lps)
    b.set_rewards(np.asarray(rewards, dtype=np.float32))
    prompts = [rng.integers(1, VOCAB, size=int(rng.integers(2, 6))).tolist() for _ in range(groups)]
    return TrainBatch(b, prompts, b.advantages())


# -- the reference ------------------------------------------------------------------------------


def ref_token_terms(model: Toy, prompt: list[int], resp: list[int]):
    """Per response token: log π(y_t | prefix) and the entropy of π(· | prefix), at TEMP."""
    ids = torch.tensor([prompt + resp])
    logits = model(ids).logits[0] / TEMP
    lps, ents = [], []
    for k, y in enumerate(resp):
        logp = torch.log_softmax(logits[len(prompt) - 1 + k], dim=-1)
        lps.append(logp[y])
        ents.append(-(logp.exp() * logp).sum())
    return lps, ents


def kl_estimate(x, est: str, clamp: float):
    x = torch.clamp(x, -clamp, clamp)
    return {"k1": x, "k2": 0.5 * x * x, "k3": torch.exp(-x) - 1 + x}[est]


def reference_loss(policy: Toy, old: Toy, ref: Toy, batch: TrainBatch, sel: np.ndarray, a: AlgorithmConfig):
    ro = batch.rollouts
    per_rollout = []  # (sum over tokens, token count)
    for i in sel.tolist():
        p = list(batch.prompt_token_ids[ro.prompt_index[i]])
        y = ro.token_ids[ro.offsets[i] : ro.offsets[i + 1]].tolist()
        eng = ro.logprobs[ro.offsets[i] : ro.offsets[i + 1]]
        lp, ent = ref_token_terms(policy, p, y)
        with torch.no_grad():
            old_lp, _ = ref_token_terms(old, p, y)
            ref_lp, _ = ref_token_terms(ref, p, y)
        adv = float(batch.advantages[i])
        total = torch.zeros(())
        for t in range(len(y)):
            r = torch.exp(lp[t] - old_lp[t])
            pg = -torch.minimum(r * adv, torch.clamp(r, 1 - a.clip_low, 1 + a.clip_high) * adv)
            if a.dual_clip and adv < 0:
                pg = torch.minimum(pg, torch.tensor(-a.dual_clip * adv))
            w = min(max(math.exp(float(old_lp[t]) - float(eng[t])), a.tis_low), a.tis_high) if a.tis else 1.0
            kl = kl_estimate(lp[t] - ref_lp[t], a.kl_estimator, a.kl_clamp)
            total = total + w * pg + a.kl_coef * kl - a.entropy_coef * ent[t]
        per_rollout.append((total, len(y)))
    if a.loss_agg == "token-mean":
        return sum(s for s, _ in per_rollout) / sum(n for _, n in per_rollout)
    if a.loss_agg == "seq-mean-token-mean":
        return sum(s / max(n, 1) for s, n in per_rollout) / len(per_rollout)
    return sum(s for s, _ in per_rollout) / len(per_rollout)


# -- brorl's path -------------------------------------------------------------------------------


def learner_loss(policy: Toy, old: Toy, ref: Toy, batch: TrainBatch, a: AlgorithmConfig, world: int,
                 budget: int, merge: bool, mini: int = 0, mini_batches: int = 2) -> float:
    """brorl's update path on ``world`` simulated ranks: gradients summed into ``policy``'s
    ``.grad`` then divided by the world size (DeepSpeed's average); returns the loss."""
    token_adv = batch.rollouts.broadcast_to_tokens(batch.advantages.astype(np.float32))
    logprobs = functools.partial(forward_logprobs, temperature=TEMP, device=torch.device("cpu"))
    old_cache = {}
    with torch.no_grad():
        for i in range(batch.rollouts.n_rollouts):
            p = list(batch.prompt_token_ids[batch.rollouts.prompt_index[i]])
            y = batch.rollouts.token_ids[batch.rollouts.offsets[i] : batch.rollouts.offsets[i + 1]].tolist()
            old_cache[i] = torch.stack(ref_token_terms(old, p, y)[0]) if y else torch.zeros(1)
    loss = 0.0
    calls = []
    for rank in range(world):
        plan = plan_mini_batches(batch, mini_batches, budget, merge, rank, world)[mini]
        # old log-probs come padded to the micro-batch's width
        cache = _padded(old_cache, plan)
        n_before = len(calls)
        met = mini_batch_backward(policy, ref, plan, batch, token_adv, a, world, cache,
                                  lambda lo, last: (calls.append(last), lo.backward()), logprobs, PAD)
        assert calls[n_before:] and calls[-1] is True  # the boundary is the last micro-batch
        loss += met["loss"]
    for p in policy.parameters():
        p.grad /= world
    return loss / world, calls


def _padded(cache: dict, plan) -> dict:
    out = {}
    for mb in plan.micro:
        width = max([int(cache[i].shape[0]) for i in mb.rows.tolist()] + [1])
        for i in mb.rows.tolist():
            v = torch.zeros(width)
            v[: cache[i].shape[0]] = cache[i]
            out[i] = v
    return out


def grads(model: Toy) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def setup(seed: int):
    policy = Toy(seed)
    return policy, perturbed(policy, 0.3, seed + 100), perturbed(policy, 0.2, seed + 200), ragged_batch(seed)


CASES = [
    # (loss_agg, kl_estimator, dual_clip, entropy_coef, tis)
    ("token-mean", "k2", 0.0, 0.0, True),
    ("token-mean", "k1", 3.0, 0.05, True),
    ("token-mean", "k3", 1.5, 0.2, False),
    ("seq-mean-token-mean", "k2", 2.0, 0.1, True),
    ("seq-mean-token-sum", "k3", 0.0, 0.05, True),
]


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("seed", [0, 1])
def test_learner_path_matches_reference(seed, case, merge, world):
    agg, est, dual, ent, tis = case
    a = AlgorithmConfig(clip_low=0.2, clip_high=0.28, loss_agg=agg, kl_coef=0.3, kl_estimator=est, kl_clamp=10.0,
                        tis=tis, tis_low=0.5, tis_high=2.0, entropy_coef=ent, dual_clip=dual)
    for mini in (0, 1):
        policy, old, ref, batch = setup(seed)
        plan = plan_mini_batches(batch, 2, 14, merge, 0, world)[mini]
        got, calls = learner_loss(policy, old, ref, batch, a, world, budget=14, merge=merge, mini=mini)
        assert len(calls) == world * len(plan.micro) and len(plan.micro) >= 2  # several micro-batches per rank
        g_learner = grads(policy)
        policy.zero_grad()
        want = reference_loss(policy, old, ref, batch, plan.sel, a)
        want.backward()
        g_ref = grads(policy)
        assert got == pytest.approx(float(want), rel=1e-5, abs=1e-6)
        torch.testing.assert_close(g_learner, g_ref, rtol=1e-4, atol=1e-6)


def test_the_merge_really_merges_and_ranks_split_the_work():
    _, _, _, batch = setup(0)
    merged = plan_mini_batches(batch, 2, 14, True, 0, 1)[0]
    plain = plan_mini_batches(batch, 2, 14, False, 0, 1)[0]
    assert sum(len(m.rows) for m in merged.micro) < sum(len(m.rows) for m in plain.micro) == len(plain.sel)
    r0, r1 = (plan_mini_batches(batch, 2, 14, True, r, 2)[0] for r in (0, 1))
    assert len(r0.micro) == len(r1.micro)  # the same number of forward/backward calls
    rows = sorted(i for p in (r0, r1) for m in p.micro for i in m.rows.tolist())
    assert rows == sorted(i for m in merged.micro for i in m.rows.tolist())


def test_entropy_bonus_has_the_autograd_gradient():
    """d loss / d θ moves by -α · d H̄ / d θ when the entropy coefficient goes from 0 to α, with
    H̄ the token-mean entropy computed by autograd in the reference."""
    policy, old, ref, batch = setup(3)
    base = AlgorithmConfig(kl_coef=0.0, tis=False, entropy_coef=0.0)
    g = {}
    for coef in (0.0, 0.5):
        policy.zero_grad()
        learner_loss(policy, old, ref, batch, AlgorithmConfig(**{**base.__dict__, "entropy_coef": coef}), 1, 14, True)
        g[coef] = grads(policy).clone()
    policy.zero_grad()
    sel = plan_mini_batches(batch, 2, 14, True, 0, 1)[0].sel
    ent_only = AlgorithmConfig(**{**base.__dict__, "entropy_coef": 1.0})
    # entropy term alone: a zero advantage removes the PPO term, kl_coef 0 the KL term
    zero_adv = TrainBatch(batch.rollouts, batch.prompt_token_ids, np.zeros_like(batch.advantages))
    (-reference_loss(policy, old, ref, zero_adv, sel, ent_only)).backward()
    dH = grads(policy)
    assert float(dH.norm()) > 1e-3
    torch.testing.assert_close(g[0.5] - g[0.0], -0.5 * dH, rtol=1e-4, atol=1e-6)


def test_clip_acts_off_policy_and_its_bounds_change_the_update():
    policy, old, ref, batch = setup(5)
    out = {}
    for bounds in ((0.2, 0.28), (0.2, 10.0), (10.0, 10.0)):
        policy.zero_grad()
        a = AlgorithmConfig(clip_low=bounds[0], clip_high=bounds[1], kl_coef=0.0, tis=False)
        token_adv = batch.rollouts.broadcast_to_tokens(batch.advantages.astype(np.float32))
        plan = plan_mini_batches(batch, 2, 14, True, 0, 1)[0]
        with torch.no_grad():
            cache = {}
            for i in plan.sel.tolist():
                p = list(batch.prompt_token_ids[batch.rollouts.prompt_index[i]])
                y = batch.rollouts.token_ids[batch.rollouts.offsets[i] : batch.rollouts.offsets[i + 1]].tolist()
                cache[i] = torch.stack(ref_token_terms(old, p, y)[0])
        met = mini_batch_backward(policy, ref, plan, batch, token_adv, a, 1, _padded(cache, plan),
                                  lambda lo, last: lo.backward(),
                                  functools.partial(forward_logprobs, temperature=TEMP, device=torch.device("cpu")), PAD)
        out[bounds] = (met["clip_frac"], grads(policy).clone())
    assert out[(0.2, 0.28)][0] > out[(0.2, 10.0)][0] > 0 == out[(10.0, 10.0)][0]
    assert not torch.allclose(out[(0.2, 0.28)][1], out[(0.2, 10.0)][1])
    assert not torch.allclose(out[(0.2, 10.0)][1], out[(10.0, 10.0)][1])


def test_on_policy_first_update_never_clips():
    """With no old log-probs (the first mini-batch) the ratio is exactly 1: nothing clips."""
    policy, _, ref, batch = setup(2)
    token_adv = batch.rollouts.broadcast_to_tokens(batch.advantages.astype(np.float32))
    plan = plan_mini_batches(batch, 1, 14, True, 0, 1)[0]
    met = mini_batch_backward(policy, ref, plan, batch, token_adv, AlgorithmConfig(), 1, {},
                              lambda lo, last: lo.backward(),
                              functools.partial(forward_logprobs, temperature=TEMP, device=torch.device("cpu")), PAD)
    assert met["clip_frac"] == 0.0


def test_empty_micro_batch_is_a_zero_loss_placeholder():
    """A rank's padding micro-batch runs the model and back-propagates exactly zero."""
    policy, _, ref, batch = setup(4)
    logprobs = functools.partial(forward_logprobs, temperature=TEMP, device=torch.device("cpu"))
    # one distinct sequence in the mini-batch, two ranks: rank 1 holds only a padding bin
    same = brorl.RolloutBatch.from_lists(np.zeros(3, dtype=np.int64), [[5, 6, 7]] * 3, [[-1.0, -1.0, -1.0]] * 3)
    same.set_rewards(np.zeros(3, dtype=np.float32))
    one = TrainBatch(same, [batch.prompt_token_ids[0]], np.full(3, 0.5, dtype=np.float32))
    plan1 = plan_mini_batches(one, 1, 14, True, 1, 2)[0]
    assert [len(m.rows) for m in plan1.micro] == [0]
    calls = []
    met = mini_batch_backward(policy, ref, plan1, one, one.rollouts.broadcast_to_tokens(one.advantages), AlgorithmConfig(),
                              2, {}, lambda lo, last: (calls.append(float(lo)), lo.backward()), logprobs, PAD)
    assert calls == [0.0] and met["loss"] == 0.0
    assert all(float(p.grad.abs().max()) == 0.0 for p in policy.parameters())


def test_tis_without_engine_logprobs_is_an_error():
    b = brorl.RolloutBatch.from_lists(np.zeros(2, dtype=np.int64), [[1, 2], [3]], None)
    b.set_rewards(np.asarray([1.0, 0.0], dtype=np.float32))
    batch = TrainBatch(b, [[1, 2]], b.advantages())
    with pytest.raises(ConfigError, match="algorithm.tis"):
        check_train_batch(batch, AlgorithmConfig(tis=True))
    check_train_batch(batch, AlgorithmConfig(tis=False))


def test_token_denominator_is_not_clamped_per_rank():
    """One response token in the mini-batch, two ranks: each rank's share of the denominator is
    1/2 and the ranks' average is the mini-batch loss (clamping the share at 1 halved it)."""
    policy, old, ref, _ = setup(6)
    b = brorl.RolloutBatch.from_lists(np.zeros(2, dtype=np.int64), [[4], []], [[-2.0], []])
    b.set_rewards(np.asarray([1.0, 0.0], dtype=np.float32))
    batch = TrainBatch(b, [[3, 9]], np.asarray([1.0, -1.0], dtype=np.float32))
    a = AlgorithmConfig(kl_coef=0.1, tis=True)
    policy.zero_grad()
    got, _ = learner_loss(policy, old, ref, batch, a, 2, budget=14, merge=True, mini=0, mini_batches=1)
    g = grads(policy).clone()
    policy.zero_grad()
    want = reference_loss(policy, old, ref, batch, np.arange(2), a)
    want.backward()
    assert got == pytest.approx(float(want), rel=1e-5)
    torch.testing.assert_close(g, grads(policy), rtol=1e-4, atol=1e-7)
