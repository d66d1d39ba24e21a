"""The driver's ``RewardFn`` on a cluster: the single-machine reward function fanned out as Ray
tasks over groups of prompts; a task whose worker dies is re-issued."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from brorl.distributed import serde
from brorl.distributed.batches import slice_rollouts, split_groups
from brorl.distributed.config import ClusterConfig
from brorl.distributed.liveness import system_errors as _system_errors
from brorl.errors import WorkerLostError

__all__ = ["RewardPool"]

log = logging.getLogger("brorl.distributed")

_REWARD_FNS: dict[str, Any] = {}  # per worker process: reward functions already built


def _score_chunk(key: str, factory: Callable[[], Any], rollouts: Any, prompts: list[Any]) -> np.ndarray:
    serde.register()
    fn = _REWARD_FNS.get(key)
    if fn is None:
        fn = _REWARD_FNS[key] = factory()
    return np.asarray(fn(rollouts, prompts), dtype=np.float32)


class RewardPool:
    """The single-machine reward function as Ray tasks over chunks of whole prompt groups.

    ``factory`` builds the reward function inside each worker once (verifiers may hold
    processes or Rust state that should not be pickled per task). A task whose worker died is
    re-issued (``cluster.max_reward_retries`` times per chunk), counted in :meth:`pop_metrics`;
    an exception raised by the reward function itself is a bug and propagates.
    """

    def __init__(self, cfg: ClusterConfig, factory: Callable[[], Any]) -> None:
        import uuid

        import ray

        self.cfg = cfg
        self.factory_ref = ray.put(factory)
        self.key = uuid.uuid4().hex
        self._task = ray.remote(_score_chunk).options(
            num_cpus=cfg.cpus_per_reward_task, max_retries=0, name="brorl_reward"
        )
        self._events: dict[str, float] = {}

    def __call__(self, rollouts: Any, prompts: Sequence[Any]) -> np.ndarray:
        import ray

        from brorl.train.interfaces import Rollouts

        batch = rollouts.batch
        chunks = []
        for start, end in split_groups(batch, self.cfg.reward_prompts_per_task):
            sub, originals = slice_rollouts(batch, start, end)
            sub_rollouts = Rollouts(batch=sub, texts=list(rollouts.texts[start:end]), seconds=0.0)
            chunks.append(((start, end), sub_rollouts, [prompts[p] for p in originals]))
        rewards = np.zeros(batch.n_rollouts, dtype=np.float32)
        attempts = [0] * len(chunks)
        refs = {i: self._task.remote(self.key, self.factory_ref, c[1], c[2]) for i, c in enumerate(chunks)}
        while refs:
            done, _ = ray.wait(list(refs.values()), num_returns=1, timeout=self.cfg.timeout_s)
            if not done:
                raise WorkerLostError(
                    f"reward tasks did not finish within cluster.timeout_s={self.cfg.timeout_s:g}s"
                )
            i = next(k for k, v in refs.items() if v == done[0])
            del refs[i]
            (start, end), sub_rollouts, sub_prompts = chunks[i]
            try:
                rewards[start:end] = ray.get(done[0])
            except _system_errors() as exc:
                attempts[i] += 1
                if attempts[i] > self.cfg.max_reward_retries:
                    raise WorkerLostError(
                        f"reward task for rollouts {start}:{end} lost its worker "
                        f"{attempts[i]} times (cluster.max_reward_retries="
                        f"{self.cfg.max_reward_retries})"
                    ) from exc
                self._events["reward_task_retries"] = self._events.get("reward_task_retries", 0) + 1
                log.warning(
                    "reward worker died (%s) scoring rollouts %d:%d; re-issuing the task",
                    type(exc).__name__, start, end,
                )
                refs[i] = self._task.remote(self.key, self.factory_ref, sub_rollouts, sub_prompts)
        return rewards

    def pop_metrics(self) -> dict[str, float]:
        events, self._events = self._events, {}
        return events
