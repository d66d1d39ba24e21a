"""Mass balance theory (brorl.theory), the toy simulation (`brorl simulate`) and `brorl plot`."""

import json
import math

import numpy as np
import pytest

import brorl
from brorl.theory import (
    ShrinkageTracker,
    expected_unsampled_moments,
    mass_balance_terms,
    predicted_delta_q_pos,
    softmax,
    unsampled_second_moment,
)


def _loop_unsampled_m2(p, n):
    """Obviously-correct reference: a Python loop over rows and tokens."""
    rows = np.atleast_2d(p)
    return float(np.mean([sum(q * q * (1 - q) ** n for q in row) for row in rows]))


# ---------------------------------------------------------------- unsampled second moment


def test_unsampled_second_moment_matches_loop_numpy_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(40, 0.3), size=(2, 3))  # [2, 3, 40]: mean over both leading dims
    for n in [0, 1, 4, 16, 512]:
        want = _loop_unsampled_m2(p.reshape(-1, 40), n)
        assert unsampled_second_moment(p, n) == pytest.approx(want, rel=1e-12)
        assert unsampled_second_moment(torch.tensor(p), n) == pytest.approx(want, rel=1e-10)
        assert unsampled_second_moment(torch.tensor(p, dtype=torch.float32), n) == pytest.approx(want, rel=1e-4)
    # one distribution: no leading dims
    assert unsampled_second_moment(p[0, 0], 3) == pytest.approx(_loop_unsampled_m2(p[0, 0], 3))
    # n = 0 is the plain second moment; a point mass is never unsampled
    assert unsampled_second_moment(p, 0) == pytest.approx(float((p**2).sum(-1).mean()))
    assert unsampled_second_moment(np.eye(5)[2], 1) == 0.0


def test_unsampled_second_moment_decreases_in_n():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(1000, 0.05), size=4)
    ns = [0, 1, 2, 4, 8, 16, 64, 512, 4096, 51200]
    vals = [unsampled_second_moment(p, n) for n in ns]
    assert all(b < a for a, b in zip(vals, vals[1:])), vals
    assert vals[-1] < 1e-6 * vals[0]


@pytest.mark.parametrize("n", [-1, 2.5, True, "4"])
def test_unsampled_second_moment_rejects_bad_n(n):
    with pytest.raises(brorl.BrorlError, match="n must"):
        unsampled_second_moment(np.full(4, 0.25), n)


@pytest.mark.parametrize("probs", [np.array([0.5, np.nan]), np.array([1.5, -0.5]), np.zeros((3, 0))])
def test_unsampled_second_moment_rejects_bad_probs(probs):
    with pytest.raises(brorl.InvalidArgumentError, match="probs"):
        unsampled_second_moment(probs, 4)


# ---------------------------------------------------------------- shrinkage tracker


def test_shrinkage_tracker_counts():
    t = ShrinkageTracker()
    first = t.update(["a", "b", "c", "d"], [0.5, 0.25, 0.0, 1.0])
    assert first == {"shrink/fell_share": 0.0, "shrink/lost_share": 0.0, "shrink/revisited": 0.0, "shrink/prev_solved": 0.0}
    # a fell (0.5 -> 0.25), b lost (0.25 -> 0), c stayed unsolved, d equal; e is new
    got = t.update(["a", "b", "c", "d", "e"], [0.25, 0.0, 0.0, 1.0, 0.0])
    assert got["shrink/revisited"] == 4
    assert got["shrink/fell_share"] == pytest.approx(2 / 4)
    assert got["shrink/prev_solved"] == 3  # a, b, d had pass rate > 0
    assert got["shrink/lost_share"] == pytest.approx(1 / 3)
    # compared with the *latest* visit: b went 0.25 -> 0 -> 0.5 (rose), a 0.25 -> 0.125 (fell)
    got = t.update(["b", "a"], [0.5, 0.125])
    assert got["shrink/fell_share"] == pytest.approx(0.5)
    assert got["shrink/lost_share"] == 0.0 and got["shrink/prev_solved"] == 1


def test_shrinkage_tracker_duplicates_are_averaged():
    t = ShrinkageTracker()
    t.update([7], [0.5])
    got = t.update([7, 7], [0.25, 0.5])  # mean 0.375 < 0.5
    assert got["shrink/revisited"] == 1 and got["shrink/fell_share"] == 1.0


def test_shrinkage_tracker_state_survives_json_round_trip():
    a = ShrinkageTracker()
    a.update([1, "x", (2, "y")], [0.5, 0.75, 0.25])
    b = ShrinkageTracker()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert len(b) == 3
    ids, rates = [1, "x", (2, "y")], [0.0, 1.0, 0.0]
    assert b.update(ids, rates) == a.update(ids, rates)


def test_shrinkage_tracker_rejects_bad_input():
    t = ShrinkageTracker()
    with pytest.raises(brorl.InvalidArgumentError, match="same length"):
        t.update([1, 2], [0.5])
    with pytest.raises(brorl.InvalidArgumentError, match="pass_rates"):
        t.update([1], [1.5])
    with pytest.raises(brorl.InvalidArgumentError, match="pass_rates"):
        t.update([1], [math.nan])
    with pytest.raises(brorl.BrorlTypeError, match="hashable"):
        t.update([[1]], [0.5])
    with pytest.raises(brorl.InvalidArgumentError, match="state"):
        t.load_state_dict({"last": {}})
