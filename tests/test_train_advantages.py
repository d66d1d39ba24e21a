"""advantage_whiten: the paper's per-rollout normalisation vs verl/OpenRLHF's per-token one."""

from __future__ import annotations

import numpy as np
import pytest

import brorl
from brorl.errors import ConfigError
from brorl.train.advantages import step_advantages, token_whiten
from brorl.train.config import load_config


def worked_example() -> brorl.RolloutBatch:
    """The README's example: an easy prompt (three short right answers, one 200-token wrong one)
    and a hard prompt (one right, three wrong, all 10 tokens)."""
    toks = [[1] * 10, [1] * 10, [1] * 10, [2] * 200, [1] * 10, [2] * 10, [2] * 10, [2] * 10]
    b = brorl.RolloutBatch.from_lists(np.repeat([0, 1], 4), toks, None)
    b.set_rewards(np.asarray([1, 1, 1, 0, 1, 0, 0, 0], dtype=np.float32))
    return b


def test_token_whiten_hand_values():
    # values 1 (3 tokens) and -1 (1 token): token mean 0.5, unbiased token var (3*.25 + 2.25)/3 = 1
    got = token_whiten(np.asarray([1.0, -1.0]), np.asarray([3, 1]), eps=0.0)
    assert got.tolist() == pytest.approx([0.5, -1.5])
    # rollouts without tokens take no part in the statistics
    got0 = token_whiten(np.asarray([1.0, -1.0, 100.0]), np.asarray([3, 1, 0]), eps=0.0)
    assert got0[:2].tolist() == pytest.approx([0.5, -1.5])
    with pytest.raises(ValueError, match="shape"):
        token_whiten(np.zeros(2), np.zeros(3))


def test_worked_example_token_whitening_flips_the_sign_of_wrong_answers():
    b = worked_example()
    baseline = b.advantages("dr_grpo")  # r - group mean
    assert baseline.tolist() == pytest.approx([0.25, 0.25, 0.25, -0.75, 0.75, -0.25, -0.25, -0.25])
    rollout = step_advantages(b, "reinforce_pp_baseline", "rollout")
    token = step_advantages(b, "reinforce_pp_baseline", "token")
    # the paper's form keeps every sign: the rollout mean of the baselines is 0
    assert np.array_equal(np.sign(rollout), np.sign(baseline))
    np.testing.assert_allclose(rollout, b.advantages("reinforce_pp_baseline"))
    # over tokens the 200-token wrong answer pulls the mean to -142.5 / 290 = -0.491: the hard
    # prompt's short wrong answers end up with a positive advantage (+0.667)
    mean_tok = (0.25 * 30 - 0.75 * 200 + 0.75 * 10 - 0.25 * 30) / 290
    assert mean_tok == pytest.approx(-0.4914, abs=1e-4)
    assert token[5:].tolist() == pytest.approx([0.6669] * 3, abs=1e-3)
    assert token[3] < 0 and token[0] > 0


def test_token_mode_of_reinforce_pp_whitens_raw_rewards():
    b = worked_example()
    want = token_whiten(np.asarray(b.rewards), b.response_lengths)
    np.testing.assert_allclose(step_advantages(b, "reinforce_pp", "token"), want)


def test_config_field():
    assert load_config().algorithm.advantage_whiten == "rollout"
    assert load_config(overrides=["algorithm.advantage_whiten=token"]).algorithm.advantage_whiten == "token"
    with pytest.raises(ConfigError, match="algorithm.advantage_whiten"):
        load_config(overrides=["algorithm.advantage_whiten=sequence"])
    with pytest.raises(ConfigError, match="algorithm.advantage_whiten = 'token'.*grpo"):
        load_config(overrides=["algorithm.advantage_whiten=token", "algorithm.estimator=grpo"])
