import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brorl
from brorl import RolloutBatch
from reference import advantages as ref_advantages
from reference import pass_at_k as ref_pass_at_k


def make_batch(sizes, lengths, rewards=None, seed=0, logprobs=True):
    rng = np.random.default_rng(seed)
    prompt_index = np.repeat(np.arange(len(sizes)) * 10, sizes)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.integers(0, 1000, size=offsets[-1], dtype=np.int32)
    lp = -rng.random(offsets[-1], dtype=np.float32) if logprobs else None
    return RolloutBatch(prompt_index, tokens, offsets, lp, rewards)


@st.composite
def batches(draw):
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=12))
    n = sum(sizes)
    lengths = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    rewards = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n, max_size=n))
    return sizes, lengths, np.asarray(rewards, np.float32)


def test_columns_are_zero_copy():
    prompt_index = np.array([0, 0, 1], np.int64)
    tokens = np.arange(6, dtype=np.int32)
    offsets = np.array([0, 1, 3, 6], np.int64)
    lp = np.zeros(6, np.float32)
    b = RolloutBatch(prompt_index, tokens, offsets, lp)
    assert b.token_ids is tokens or np.shares_memory(b.token_ids, tokens)
    assert np.shares_memory(b.logprobs, lp) and np.shares_memory(b.offsets, offsets)
    assert b.rewards is None
    assert (b.n_groups, b.n_rollouts, b.n_tokens, len(b)) == (2, 3, 6, 3)
    np.testing.assert_array_equal(b.group_sizes, [2, 1])
    np.testing.assert_array_equal(b.response_lengths, [1, 2, 3])
    # Repeated access hands out the same memory, not a fresh copy.
    assert np.shares_memory(b.token_ids, b.token_ids)


def test_from_lists_matches_arrays():
    b = RolloutBatch.from_lists(
        [3, 3, 4], [[1, 2], [3], []], [[-0.1, -0.2], [-0.3], []], [1, 0, 1], ["stop", "length", None]
    )
    np.testing.assert_array_equal(b.token_ids, [1, 2, 3])
    np.testing.assert_array_equal(b.offsets, [0, 2, 3, 3])
    np.testing.assert_allclose(b.logprobs, [-0.1, -0.2, -0.3])
    np.testing.assert_array_equal(b.truncated, [False, True, False])
    with pytest.raises(brorl.InvalidArgumentError, match=r"logprobs\[0\]"):
        RolloutBatch.from_lists([0], [[1, 2]], [[-0.1]])
    with pytest.raises(brorl.InvalidArgumentError, match=r"token_ids\[1\]"):
        RolloutBatch.from_lists([0, 0], [[1], ["a"]])


def test_construction_errors_name_the_argument():
    with pytest.raises(brorl.InvalidArgumentError, match="offsets"):
        RolloutBatch([0, 0], [1, 2, 3], [0, 1, 2])  # last offset != n_tokens
    with pytest.raises(brorl.InvalidArgumentError, match="offsets.*decrease"):
        RolloutBatch([0, 0], [1, 2], [0, 2, 1, 2][:3])
    with pytest.raises(brorl.InvalidArgumentError, match="prompt 0 must be consecutive"):
        RolloutBatch([0, 1, 0], [1, 2, 3], [0, 1, 2, 3])
    with pytest.raises(brorl.NonFiniteError, match="rewards"):
        RolloutBatch([0], [1], [0, 1], rewards=[np.nan])
    with pytest.raises(brorl.InvalidArgumentError, match="logprobs"):
        RolloutBatch([0], [1], [0, 1], logprobs=[0.0, 0.0])
    b = RolloutBatch([0], [1], [0, 1])
    with pytest.raises(brorl.MissingRewardsError, match="set_rewards"):
        b.group_stats()
    with pytest.raises(brorl.InvalidArgumentError, match="rewards"):
        b.set_rewards([1.0, 2.0])


@settings(max_examples=120, deadline=None)
@given(data=batches())
def test_group_stats_and_pass_at_k(data):
    sizes, lengths, rewards = data
    b = make_batch(sizes, lengths, rewards)
    s = b.group_stats(threshold=1.0)
    bounds = np.cumsum([0, *sizes])
    for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        r = rewards[lo:hi].astype(np.float64)
        assert s["size"][g] == hi - lo
        np.testing.assert_allclose(s["mean"][g], r.mean(), rtol=1e-6)
        np.testing.assert_allclose(s["std"][g], r.std(ddof=1) if len(r) > 1 else 0.0, rtol=1e-5, atol=1e-7)
        c = int((r >= 1.0).sum())
        assert s["n_correct"][g] == c
        assert s["solved_all"][g] == (c == len(r)) and s["solved_none"][g] == (c == 0)
    k = min(sizes)
    want = [ref_pass_at_k(n, c, k) for n, c in zip(sizes, s["n_correct"])]
    np.testing.assert_allclose(b.pass_at_k(k), want, rtol=1e-9, atol=1e-12)


def test_pass_at_k_large_n_and_errors():
    # n in the thousands overflows naive binomials in floating point
    got = brorl.pass_at_k([4096], [3], 512)
    np.testing.assert_allclose(got, [ref_pass_at_k(4096, 3, 512)], rtol=1e-9)
    with pytest.raises(brorl.InvalidArgumentError, match="k=5 exceeds"):
        brorl.pass_at_k([4], [1], 5)
    with pytest.raises(brorl.InvalidArgumentError, match="impossible"):
        brorl.pass_at_k([4], [5], 1)


@settings(max_examples=120, deadline=None)
@given(data=batches())
def test_filter_concat_and_advantages(data):
    sizes, lengths, rewards = data
    b = make_batch(sizes, lengths, rewards)
    bounds = np.cumsum([0, *sizes])
    varied = np.array([len(set(rewards[lo:hi])) > 1 for lo, hi in zip(bounds[:-1], bounds[1:])])
    np.testing.assert_array_equal(b.varied_groups(), varied)
    kept = b.filter_groups()
    keep_rollout = np.repeat(varied, sizes)
    keep_token = np.repeat(keep_rollout, lengths)
    np.testing.assert_array_equal(kept.token_ids, b.token_ids[keep_token])
    np.testing.assert_array_equal(kept.logprobs, b.logprobs[keep_token])
    np.testing.assert_array_equal(kept.rewards, rewards[keep_rollout])
    np.testing.assert_array_equal(kept.response_lengths, np.asarray(lengths)[keep_rollout])
    np.testing.assert_array_equal(kept.group_sizes, np.asarray(sizes)[varied])
    # refill: concatenating the kept and dropped parts holds every rollout exactly once
    both = RolloutBatch.concat([kept, b.filter_groups(~varied)]) if (~varied).any() else kept
    assert both.n_rollouts == b.n_rollouts and both.n_tokens == b.n_tokens
    # advantages on the batch equal the module function and the reference
    adv = b.advantages("grpo")
    np.testing.assert_allclose(adv, ref_advantages(rewards, sizes, "grpo"), rtol=1e-5, atol=2e-5)
    tok = b.broadcast_to_tokens(adv)
    np.testing.assert_array_equal(tok, np.repeat(adv, lengths))
    padded, mask = b.padded_token_values(adv)
    width = max(lengths)
    assert padded.shape == (len(lengths), width) and mask.shape == padded.shape
    for i, length in enumerate(lengths):
        assert mask[i].sum() == length and not mask[i, length:].any()
        np.testing.assert_array_equal(padded[i, :length], adv[i])


def test_filter_mask_length_checked():
    b = make_batch([2, 2], [1, 1, 1, 1], np.array([1, 0, 1, 1], np.float32))
    with pytest.raises(brorl.InvalidArgumentError, match="one per group"):
        b.filter_groups([True])
    empty = b.filter_groups([False, False])
    assert empty.n_rollouts == 0 and empty.n_tokens == 0


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 200), min_size=1, max_size=300),
    ranks=st.integers(1, 4),
    budget=st.integers(200, 1000),
)
def test_pack_is_a_balanced_partition_under_budget(lengths, ranks, budget):
    b = make_batch([len(lengths)], lengths, logprobs=False)
    prompt = np.full(len(lengths), 7)
    packs = b.pack(budget + 7, n_ranks=ranks, prompt_lengths=prompt)
    assert len(packs) == ranks
    assert len({len(r) for r in packs}) == 1, "every rank must get the same number of micro-batches"
    seen = np.concatenate([mb for r in packs for mb in r]) if sum(len(r) for r in packs) else []
    assert sorted(seen) == list(range(len(lengths)))
    cost = np.asarray(lengths) + 7
    for r in packs:
        for mb in r:
            assert cost[mb].sum() <= budget + 7
    loads = [sum(cost[mb].sum() for mb in r) for r in packs]
    assert max(loads) - min(loads) <= cost.max()  # LPT: within one item of balanced


def test_pack_errors():
    b = make_batch([2], [5, 50], logprobs=False)
    with pytest.raises(brorl.InvalidArgumentError, match="max_tokens.*50 tokens"):
        b.pack(10)
    with pytest.raises(brorl.InvalidArgumentError, match="n_ranks"):
        b.pack(100, n_ranks=0)


def test_large_batch_parallel_paths_agree():
    """65,536 rollouts (the paper's step) exercise the multi-threaded copy paths."""
    rng = np.random.default_rng(1)
    sizes = [512] * 128
    lengths = rng.integers(0, 40, size=sum(sizes))
    rewards = (rng.random(sum(sizes)) < np.repeat(rng.choice([0, 0.5, 1], 128), 512)).astype(np.float32)
    b = make_batch(sizes, lengths, rewards)
    kept = b.filter_groups()
    keep_token = np.repeat(np.repeat(b.varied_groups(), sizes), lengths)
    np.testing.assert_array_equal(kept.token_ids, b.token_ids[keep_token])
    adv = kept.advantages()
    np.testing.assert_array_equal(kept.broadcast_to_tokens(adv), np.repeat(adv, kept.response_lengths))
