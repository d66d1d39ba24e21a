import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brorl
from reference import advantages as ref_advantages
from reference import gae as ref_gae

ESTIMATORS = ["reinforce_pp_baseline", "grpo", "dr_grpo", "rloo", "reinforce_pp"]


def test_estimator_list_is_exported():
    assert sorted(brorl.ESTIMATORS) == sorted(ESTIMATORS)


@st.composite
def ragged_groups(draw):
    sizes = draw(st.lists(st.integers(1, 12), min_size=1, max_size=20))
    kind = draw(st.sampled_from(["binary", "real", "equal"]))
    n = sum(sizes)
    if kind == "binary":
        r = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    elif kind == "equal":
        r = [draw(st.floats(-3, 3, width=32))] * n
    else:
        r = draw(st.lists(st.floats(-5, 5, width=32), min_size=n, max_size=n))
    return np.asarray(r, dtype=np.float32), sizes


@pytest.mark.parametrize("estimator", ESTIMATORS)
@settings(max_examples=150, deadline=None)
@given(data=ragged_groups())
def test_matches_numpy_reference(estimator, data):
    rewards, sizes = data
    got = brorl.compute_advantages(rewards, sizes, estimator)
    want = ref_advantages(rewards, sizes, estimator)
    assert got.dtype == np.float32 and got.shape == rewards.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_hand_computed_values():
    r = np.array([1, 0, 0, 1, 1, 1], np.float32)
    np.testing.assert_allclose(brorl.compute_advantages(r, [4, 2], "dr_grpo"), [0.5, -0.5, -0.5, 0.5, 0, 0])
    np.testing.assert_allclose(
        brorl.compute_advantages(r, [4, 2], "rloo"), [2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0], rtol=1e-6
    )
    g = brorl.compute_advantages([1, 0], [2], "grpo", eps=0.0)
    np.testing.assert_allclose(g, [1 / np.sqrt(2), -1 / np.sqrt(2)], rtol=1e-6)


def test_single_rollout_groups_get_zero():
    for est in ESTIMATORS:
        if est == "reinforce_pp":  # batch-level: a single group of one is still zero
            continue
        out = brorl.compute_advantages([0.3, 0.9, -1.0], [1, 1, 1], est)
        if est in ("grpo", "dr_grpo", "rloo"):
            np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rewards_rejected(bad):
    with pytest.raises(brorl.NonFiniteError, match=r"rewards.*index 2"):
        brorl.compute_advantages([1.0, 0.0, bad], [3])


def test_bad_arguments_name_themselves():
    with pytest.raises(brorl.InvalidArgumentError, match="estimator"):
        brorl.compute_advantages([1.0], [1], "ppo")
    with pytest.raises(ValueError, match="group_sizes.*sum to 2"):
        brorl.compute_advantages([1.0, 0.0, 1.0], [2])
    with pytest.raises(brorl.InvalidArgumentError, match="group 1 has size 0"):
        brorl.compute_advantages([1.0, 0.0], [2, 0])
    with pytest.raises(brorl.InvalidArgumentError, match="rewards"):
        brorl.compute_advantages([[1.0]], [1])
    with pytest.raises(brorl.InvalidArgumentError, match="eps"):
        brorl.compute_advantages([1.0], [1], eps=-1.0)


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 15), min_size=1, max_size=10),
    gamma=st.floats(0, 1),
    lam=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_gae_matches_reference(lengths, gamma, lam, seed):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    t = int(offsets[-1])
    rew = rng.normal(size=t).astype(np.float32)
    val = rng.normal(size=t).astype(np.float32)
    adv, ret = brorl.compute_gae(rew, val, offsets, gamma, lam)
    radv, rret = ref_gae(rew.astype(np.float64), val.astype(np.float64), offsets, gamma, lam)
    np.testing.assert_allclose(adv, radv, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ret, rret, rtol=1e-5, atol=1e-4)


def test_gae_errors():
    with pytest.raises(brorl.InvalidArgumentError, match="gamma"):
        brorl.compute_gae([1.0], [0.0], [0, 1], gamma=1.5)
    with pytest.raises(brorl.InvalidArgumentError, match="offsets"):
        brorl.compute_gae([1.0, 2.0], [0.0, 0.0], [0, 1])
    with pytest.raises(brorl.NonFiniteError, match="values"):
        brorl.compute_gae([1.0], [np.nan], [0, 1])
