"""The three cluster parts the training loop runs with (learner, generator, reward function),
built together on one placement, plus the weight sync between them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brorl.distributed.config import ClusterConfig
from brorl.distributed.engine_pool import EnginePause, EnginePool
from brorl.distributed.placement import Placement
from brorl.distributed.reward_pool import RewardPool
from brorl.distributed.sync import WeightSync
from brorl.distributed.trainer_group import TrainerGroup

__all__ = ["DistributedParts"]


class DistributedParts:
    """The loop's three parts placed on a Ray cluster, plus what is needed to tear them down.

    ``generator.sync_from(learner)`` replaces the single-machine
    ``generator.update_weights(learner.named_weights())``: the weights go from trainer rank 0
    straight to the engines instead of through the driver.
    """

    def __init__(
        self,
        cfg: ClusterConfig,
        *,
        generator_factory: Callable[[], Any],
        reward_factory: Callable[[], Any],
        learner_factory: Callable[[], Any],
        resume_hint: str | Callable[[], str] = "",
    ) -> None:
        from brorl.distributed import cluster
        from brorl.distributed.placement import create_placement

        self.cfg = cfg
        self.started = cluster.connect(cfg)
        self.placement: Placement | None = None
        self.learner: TrainerGroup | None = None
        self.generator: EnginePool | None = None
        self.pause: EnginePause | None = None
        try:
            self.device = cluster.resolve_device(cfg)
            self.backend = "nccl" if self.device == "gpu" else "gloo"
            self.placement = create_placement(cfg, self.device, timeout_s=min(cfg.timeout_s, 600.0))
            # Ranks first: their set-up (DeepSpeed's first op build) and the engines' start-up
            # then overlap only as far as the cluster's CPUs allow.
            self.learner = TrainerGroup(cfg, self.placement, learner_factory, self.backend, resume_hint)
            self.generator = EnginePool(cfg, self.placement, generator_factory)
            self.reward_fn = RewardPool(cfg, reward_factory)
            self.sync = WeightSync(cfg, self.learner, self.generator, self.backend, self.device)
            if cfg.placement == "colocated":
                self.pause = EnginePause(self.generator, cfg.engine_sleep_level)
                self.learner.pause = self.generator.pause = self.pause
        except BaseException:
            self.close()
            raise

    def pop_metrics(self) -> dict[str, float]:
        """Fault events of the step (engine restarts, re-issued reward tasks); the loop adds
        them to the step's metrics so a recovered failure is visible in metrics.jsonl."""
        out: dict[str, float] = {}
        if self.generator is not None:
            out.update(self.generator.pop_metrics())
        out.update(self.reward_fn.pop_metrics())
        return out

    def close(self) -> None:
        from brorl.distributed import cluster

        try:
            if self.generator is not None:
                self.generator.close()
            if self.learner is not None:
                try:
                    self.learner.close()
                except Exception:  # the ranks may be gone already (TrainerRankLostError)
                    self.learner.kill()
            if self.placement is not None:
                from ray.util.placement_group import remove_placement_group

                try:
                    remove_placement_group(self.placement.group)
                except Exception:
                    pass
        finally:
            cluster.disconnect(self.started)
