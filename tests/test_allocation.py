"""Adaptive N per prompt (brorl.train.allocation): the allocation against brute force, the
concavity it relies on, rounding to few sizes, regrouping, the pass-rate history and its
checkpoint, and one adaptive collect_step with a scripted generator."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brorl
from brorl.errors import ConfigError, InvalidArgumentError
from brorl.train.allocation import (
    AdaptiveAllocator,
    PassRateHistory,
    allocate,
    beta_power_moments,
    expected_mixed,
    marginal_gains,
    merge_groups,
    quantise,
)
from brorl.train.interfaces import Prompt, Rollouts, SamplingSpec

# -- references ---------------------------------------------------------------------------------


def ref_moment(a: float, b: float, e: int) -> float:
    """E[p^e] for p ~ Beta(a, b) from the Beta function, B(a+e, b) / B(a, b)."""
    return math.exp(math.lgamma(a + e) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(a + b + e))


def ref_mixed(a: float, b: float, m: int, c: int, e: int) -> float:
    """P(group mixed) straight from the definition: already mixed, or the e new samples bring
    the missing outcome."""
    if m + e == 0:
        return 0.0
    if 0 < c < m:
        return 1.0
    p_all_correct = ref_moment(a, b, e) if c == m else 0.0
    p_all_wrong = ref_moment(b, a, e) if c == 0 else 0.0
    return 1.0 - p_all_correct - p_all_wrong


def ref_objective(a, b, m, c, e, w):
    """Expected mixed groups + w x expected signal of the extra samples, 2 E[p(1-p)] each, with
    E[p(1-p)] = E[p] - E[p^2] from the Beta moments."""
    return sum(ref_mixed(a[i], b[i], m[i], c[i], e[i])
               + w * e[i] * 2 * (ref_moment(a[i], b[i], 1) - ref_moment(a[i], b[i], 2)) for i in range(len(m)))


def brute_force(a, b, m, c, budget, floor, cap, w=0.0):
    """Best objective over every allocation with floor <= m+e <= cap, sum(e) <= budget."""
    ranges = [range(max(floor - mi, 0), max(cap - mi, max(floor - mi, 0)) + 1) for mi in m]
    best = -np.inf
    for e in itertools.product(*ranges):
        if sum(e) <= budget:
            best = max(best, ref_objective(a, b, m, c, e, w))
    return best


@st.composite
def small_problem(draw):
    k = draw(st.integers(1, 4))
    m = [draw(st.sampled_from([0, 0, 1, 2, 3])) for _ in range(k)]
    c = [draw(st.integers(0, mi)) for mi in m]
    a = [draw(st.floats(0.2, 6.0)) + ci for ci in c]
    b = [draw(st.floats(0.2, 6.0)) + mi - ci for mi, ci in zip(m, c)]
    floor = draw(st.integers(1, 3))
    cap = draw(st.integers(floor, 6))
    need = sum(max(floor - mi, 0) for mi in m)
    budget = need + draw(st.integers(0, 10))
    w = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0]))
    return a, b, m, c, budget, floor, cap, w


# -- the pure functions ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(small_problem())
def test_allocate_reaches_the_brute_force_optimum(problem):
    a, b, m, c, budget, floor, cap, w = problem
    extra = allocate(a, b, m, c, budget, floor, cap, w)
    total = np.asarray(m) + extra
    assert np.all(total >= floor) or np.all(extra[total < floor] == 0)
    assert np.all((total <= cap) | (extra == 0))
    room = sum(max(cap - mi, max(floor - mi, 0)) for mi in m)
    assert extra.sum() == min(budget, room)  # the whole budget is spent when there is room
    got = ref_objective(a, b, m, c, [int(x) for x in extra], w)
    assert got == pytest.approx(brute_force(a, b, m, c, budget, floor, cap, w), abs=1e-9)
    mixed = sum(ref_mixed(a[i], b[i], m[i], c[i], int(extra[i])) for i in range(len(m)))
    assert expected_mixed(a, b, m, c, extra).sum() == pytest.approx(mixed, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.05, 50.0), st.floats(0.05, 50.0), st.integers(0, 3), st.data())
def test_gains_are_non_increasing_and_match_the_definition(a, b, m, data):
    """The concavity the greedy optimum rests on, checked numerically for each case."""
    c = data.draw(st.integers(0, m))
    g = marginal_gains([a], [b], [m], [c], 300)[0]
    assert np.all(np.diff(g) <= 0)
    assert np.all(g >= 0)
    for e in (0, 1, 7, 40, 299):
        want = ref_mixed(a, b, m, c, e + 1) - ref_mixed(a, b, m, c, e) if m + e > 0 else None
        if want is not None:
            assert g[e] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_moments_match_the_beta_function():
    p, q = beta_power_moments([0.5, 3.0], [2.0, 0.7], 2000)
    for i, (a, b) in enumerate([(0.5, 2.0), (3.0, 0.7)]):
        for e in (0, 1, 5, 100, 2000):
            assert p[i, e] == pytest.approx(ref_moment(a, b, e), rel=1e-9)
            assert q[i, e] == pytest.approx(ref_moment(b, a, e), rel=1e-9)


def test_allocation_favours_rare_successes_and_skips_what_is_known():
    """After a first look of 8: one prompt 8/8 correct, one 0/8, one mixed (4/8). The mixed
    group is informative already; the 0/8 prompt, where a correct answer is rare but possible,
    gets most of the rest."""
    a = np.array([1.0 + 8, 1.0, 1.0 + 4])
    b = np.array([1.0, 1.0 + 8, 1.0 + 4])
    extra = allocate(a, b, [8, 8, 8], [8, 0, 4], budget=72, floor=4, cap=64)
    assert extra.sum() == 72 and extra[2] == 0
    assert extra[1] >= extra[0] > 0


def test_signal_weight_keeps_feeding_mixed_prompts():
    """With the signal term, a prompt mixed after its first look (4/8) keeps getting samples;
    without it, it gets none."""
    a = np.array([1.0 + 4, 1.0])
    b = np.array([1.0 + 4, 1.0 + 8])
    assert allocate(a, b, [8, 8], [4, 0], budget=40, floor=4, cap=64)[0] == 0
    assert allocate(a, b, [8, 8], [4, 0], budget=40, floor=4, cap=64, signal_weight=1.0)[0] > 20


def test_allocate_refuses_bad_input():
    with pytest.raises(InvalidArgumentError, match="floors"):
        allocate([1, 1], [1, 1], [0, 0], [0, 0], budget=3, floor=2, cap=4)
    with pytest.raises(InvalidArgumentError, match="n_correct"):
        allocate([1], [1], [2], [3], budget=3, floor=2, cap=4)
    with pytest.raises(InvalidArgumentError, match="alpha"):
        allocate([0.0], [1], [0], [0], budget=3, floor=2, cap=4)
    with pytest.raises(InvalidArgumentError, match="cap"):
        allocate([1], [1], [0], [0], budget=3, floor=3, cap=2)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 40), st.integers(3, 5), st.data())
def test_quantise_keeps_few_sizes_inside_the_bounds(k, levels, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 10_000)))
    drawn = np.where(rng.random(k) < 0.5, 8, 0)
    c = np.asarray([rng.integers(0, d + 1) for d in drawn])
    a, b = 1.0 + c, 1.0 + drawn - c
    floor, cap, n = 4, 128, 32
    budget = n * k - int(drawn.sum())
    req = np.maximum(floor - drawn, 0)
    capa = np.maximum(cap - drawn, req)
    extra = allocate(a, b, drawn, c, budget, floor, cap)
    value = np.concatenate([np.zeros((k, 1)), np.cumsum(marginal_gains(a, b, drawn, c, int(capa.max())), axis=1)], axis=1)
    q = quantise(extra, req, capa, value, budget, levels)
    assert np.unique(q[q > 0]).size <= levels
    assert np.all(q >= req) and np.all(q <= capa) and q.sum() <= budget
    if np.unique(extra[extra > 0]).size <= levels:
        assert np.array_equal(q, extra)
    # rounding loses little of the optimum here (measured: under 2% of the objective)
    best = expected_mixed(a, b, drawn, c, extra).sum()
    assert expected_mixed(a, b, drawn, c, q).sum() >= 0.9 * best - 1e-9


def test_merge_groups_makes_each_prompt_consecutive():
    b1 = brorl.RolloutBatch.from_lists([0, 0, 1, 1], [[1], [2, 3], [4], [5]], [[-0.1], [-0.2, -0.3], [-0.4], [-0.5]],
                                       rewards=[1, 0, 1, 1])
    b2 = brorl.RolloutBatch.from_lists([0, 0, 0, 1], [[6], [7], [8, 9], [10]], [[-0.6], [-0.7], [-0.8, -0.9], [-1.0]],
                                       rewards=[0, 0, 1, 0], finish_reasons=["stop", "stop", "length", "stop"])
    # part 1 holds merged prompts 2 and 0; part 2 holds merged prompts 0 and 1
    out = merge_groups([(b1, np.array([2, 0])), (b2, np.array([0, 1]))])
    assert out.prompt_index.tolist() == [0, 0, 0, 0, 0, 1, 2, 2]
    assert out.group_sizes.tolist() == [5, 1, 2]
    segs = [out.token_ids[out.offsets[i]:out.offsets[i + 1]].tolist() for i in range(out.n_rollouts)]
    assert segs == [[4], [5], [6], [7], [8, 9], [10], [1], [2, 3]]
    assert out.rewards.tolist() == [1, 1, 0, 0, 1, 0, 1, 0]
    assert out.truncated.tolist() == [False, False, False, False, True, False, False, False]
    np.testing.assert_allclose(out.logprobs, [-0.4, -0.5, -0.6, -0.7, -0.8, -0.9, -1.0, -0.1, -0.2, -0.3], rtol=1e-6)
    # ragged groups go through the estimators as they are
    adv = out.advantages("rloo")
    assert adv[5] == 0.0 and adv.shape == (8,)


def test_history_decays_and_round_trips_through_json():
    h = PassRateHistory(prior=(1.0, 2.0), decay=0.5)
    h.visit(7, 3, 4)
    h.visit(7, 0, 2)
    a, b = h.posterior([7, 8])
    assert a.tolist() == [1.0 + 1.5, 1.0] and b.tolist() == [2.0 + 0.5 + 2, 2.0]
    h2 = PassRateHistory(prior=(1.0, 2.0), decay=0.5)
    h2.load_state_dict(json.loads(json.dumps(h.state_dict())))
    assert [x.tolist() for x in h2.posterior([7, 8])] == [a.tolist(), b.tolist()] and h2.seen(7)
    with pytest.raises(InvalidArgumentError):
        h.visit(1, 3, 2)


def test_config_refuses_bad_knobs():
    from brorl.train.config import load_config

    cfg = load_config(None, ["algorithm.allocation=adaptive"])
    assert cfg.algorithm.allocation == "adaptive" and cfg.algorithm.adaptive.first_n == 8
    assert load_config(None, []).algorithm.allocation == "uniform"
    for bad, field in [
        ("algorithm.allocation=knapsack", "algorithm.allocation"),
        ("algorithm.adaptive.min_n=1", "algorithm.adaptive.min_n"),
        ("algorithm.adaptive.prior=[1]", "algorithm.adaptive.prior"),
        ("algorithm.adaptive.decay=0", "algorithm.adaptive.decay"),
        ("algorithm.adaptive.skip_solved=1.5", "algorithm.adaptive.skip_solved"),
        ("algorithm.adaptive.levels=2", "algorithm.adaptive.levels"),
        ("algorithm.adaptive.first_look=some", "algorithm.adaptive.first_look"),
        ("algorithm.adaptive.signal_weight=-1", "algorithm.adaptive.signal_weight"),
        ("algorithm.adaptive.first_n=300", "algorithm.adaptive.first_n"),
        ("algorithm.adaptive.max_n=100", "algorithm.adaptive.max_n"),
    ]:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_config(None, ["algorithm.allocation=adaptive", bad])


# -- the round and the loop, with a scripted generator ----------------------------------------------


class ScriptedGenerator:
    """Each prompt's rollouts are correct with a fixed probability (its pass rate); a rollout's
    tokens are [uid, correct]. Records every call's (prompt uids, n)."""

    def __init__(self, rates: dict[int, float]) -> None:
        self.rates = rates
        self.calls: list[tuple[list[int], int]] = []

    def generate(self, prompts, n, sampling, seed):
        rng = np.random.default_rng(seed)
        uids = [int(p[0]) for p in prompts]
        self.calls.append((uids, n))
        pidx, toks = [], []
        for i, u in enumerate(uids):
            for _ in range(n):
                pidx.append(i)
                toks.append([u, int(rng.random() < self.rates[u])])
        return Rollouts(brorl.RolloutBatch.from_lists(pidx, toks, [[-0.5, -0.5]] * len(toks)), [""] * len(toks), 0.01)


def reward_from_tokens(ro, prompts):
    b = ro.batch
    r = np.asarray([b.token_ids[b.offsets[i] + 1] for i in range(b.n_rollouts)], dtype=np.float32)
    assert all(prompts[b.prompt_index[i]].uid == b.token_ids[b.offsets[i]] for i in range(b.n_rollouts))
    return r


def make_prompts(uids):
    return [Prompt(uid=u, domain="math", text=str(u), token_ids=(u,)) for u in uids]


def adaptive_cfg(**kw):
    from brorl.train.config import AdaptiveConfig

    return AdaptiveConfig(**kw)


def test_round_spends_the_budget_on_uncertain_prompts():
    rates = {10: 1.0, 11: 0.0, 12: 0.5, 13: 0.03, 14: 1.0}
    gen = ScriptedGenerator(rates)
    alloc = AdaptiveAllocator(adaptive_cfg(first_n=8, min_n=4, levels=4), n=32)
    rr = alloc.collect_round(gen, reward_from_tokens, make_prompts(list(rates)), 32, SamplingSpec(), seed=3)
    b = rr.batch
    sizes = dict(zip([p.uid for p in rr.prompts], b.group_sizes.tolist()))
    assert b.n_rollouts <= 32 * 5 and b.n_rollouts >= 32 * 5 - 8  # rounding leaves at most a little
    assert gen.calls[0] == (list(rates), 8)  # first look at every unseen prompt
    assert len(gen.calls) <= 1 + 4
    assert sizes[12] == 8  # mixed after the first look: nothing more
    assert sizes[11] > 8 and sizes[13] > 8 and min(sizes.values()) >= 4
    assert np.all(np.diff(b.prompt_index) >= 0)  # each group consecutive
    # the history now holds every group's outcome
    a, bb = alloc.history.posterior([10, 11])
    assert a[0] == 1 + sizes[10] and bb[1] == 1 + sizes[11]
    m = alloc.pop_metrics()
    assert m["alloc/first_samples"] == 40 and m["alloc/skipped"] == 0 and 0 <= m["alloc/calib_mae"] <= 1
    assert 0 <= m["alloc/calib_brier"] <= 1


def test_solved_prompts_are_skipped_then_come_back():
    gen = ScriptedGenerator({1: 1.0, 2: 0.5})
    alloc = AdaptiveAllocator(adaptive_cfg(first_n=8, min_n=4, skip_solved=0.9, decay=0.5), n=32)
    alloc.history.visit(1, 200, 200)  # Beta(201, 1): E[p^8] = 0.96
    rr = alloc.collect_round(gen, reward_from_tokens, make_prompts([1, 2]), 32, SamplingSpec(), seed=0)
    assert [p.uid for p in rr.prompts] == [2] and alloc.pop_metrics()["alloc/skipped"] == 1
    assert rr.batch.n_rollouts == 64  # the skipped prompt's share went to the other one
    # skipped visits fade the evidence until the prompt is sampled again
    for _ in range(3):
        rr = alloc.collect_round(gen, reward_from_tokens, make_prompts([1]), 32, SamplingSpec(), seed=1)
    assert rr.batch is not None and [p.uid for p in rr.prompts] == [1]


def test_first_look_all_or_unseen():
    gen = ScriptedGenerator({1: 0.5, 2: 0.5})
    for look, first_calls in (("all", [1, 2]), ("unseen", [2])):
        alloc = AdaptiveAllocator(adaptive_cfg(first_n=8, min_n=4, first_look=look), n=32)
        alloc.history.visit(1, 3, 6)
        gen.calls.clear()
        alloc.collect_round(gen, reward_from_tokens, make_prompts([1, 2]), 32, SamplingSpec(), seed=0)
        assert gen.calls[0] == (first_calls, 8), look


def test_collect_step_adaptive_keeps_ragged_mixed_groups():
    from brorl.train.loop import collect_step

    rates = {u: r for u, r in zip(range(100, 112), [1.0, 0.0, 0.5, 0.05, 0.9, 0.2] * 2)}
    gen = ScriptedGenerator(rates)
    queue = make_prompts(list(rates))

    def take(k):
        out = queue[:k]
        del queue[:k]
        return out

    alloc = AdaptiveAllocator(adaptive_cfg(first_n=8, min_n=4), n=16)
    batch, prompts, m = collect_step(gen, reward_from_tokens, take, n=16, groups_wanted=4, sampling=SamplingSpec(),
                                     dynamic_sampling=True, max_rounds=2, oversample=1.5, seed=5, allocator=alloc)
    assert batch is not None and batch.n_groups == m["groups_kept"] <= 4
    assert batch.varied_groups().all()
    for i in range(batch.n_rollouts):  # prompt_index points at the rollout's own prompt
        assert prompts[batch.prompt_index[i]].uid == batch.token_ids[batch.offsets[i]]
    for k in ("alloc/n_min", "alloc/n_median", "alloc/n_max", "alloc/wasted_share", "alloc/calib_mae",
              "alloc/calib_brier", "alloc/samples", "alloc/skipped"):
        assert k in m and math.isfinite(m[k]), k
    assert m["alloc/n_min"] < m["alloc/n_max"] and 0 <= m["alloc/wasted_share"] < 1  # ragged groups generated
    assert m["alloc/samples"] <= 16 * 6 * m["gen_rounds"]


def test_collect_step_uniform_reports_the_same_fields():
    from brorl.train.loop import collect_step

    gen = ScriptedGenerator({1: 1.0, 2: 0.5, 3: 0.0})
    queue = make_prompts([1, 2, 3])
    _, _, m = collect_step(gen, reward_from_tokens, lambda k: [queue.pop(0) for _ in range(k)], n=8, groups_wanted=3,
                           sampling=SamplingSpec(), dynamic_sampling=True, max_rounds=1, oversample=1.0, seed=0)
    assert m["alloc/n_min"] == m["alloc/n_max"] == 8 and m["alloc/samples"] == 24
    # the 1.0 and 0.0 prompts' groups are all-equal: 16 of 24 samples carry no advantage
    assert m["alloc/wasted_share"] == pytest.approx(16 / 24)
    assert "alloc/calib_mae" not in m


def test_checkpoint_carries_the_history(tmp_path):
    """Trainer._save/_load with fake learner and sampler: the pass-rate history survives."""
    from brorl.theory import ShrinkageTracker
    from brorl.train.config import load_config
    from brorl.train.loop import Trainer

    class FakeLearner:
        def save_checkpoint(self, path):
            (path / "learner").mkdir(exist_ok=True)

        def load_checkpoint(self, path):
            pass

    class FakeSampler:
        def state_dict(self):
            return {}

        def load_state_dict(self, s):
            pass

    cfg = load_config(None, ["algorithm.allocation=adaptive", "run.keep_checkpoints=1"])
    t = Trainer(cfg)
    t.allocator = AdaptiveAllocator(cfg.algorithm.adaptive, cfg.algorithm.n)
    t.allocator.history.visit(123, 5, 9)
    t._save(tmp_path, 3, FakeLearner(), FakeSampler(), ShrinkageTracker(), rank=0)
    t2 = Trainer(cfg)
    t2.allocator = AdaptiveAllocator(cfg.algorithm.adaptive, cfg.algorithm.n)
    assert t2._load(tmp_path / "checkpoints" / "step_000003", FakeLearner(), FakeSampler(), ShrinkageTracker()) == 3
    assert [x.tolist() for x in t2.allocator.history.posterior([123])] == [[6.0], [5.0]]
