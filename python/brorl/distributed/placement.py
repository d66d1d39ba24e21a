"""Ray placement groups for the two layouts of a run.

One placement group reserves everything the run's actors need before any of them starts (so a
cluster that cannot fit the run fails at once instead of half-starting):

- ``separate``: a bundle per trainer rank and a bundle per engine (``engine_tensor_parallel``
  bundles of one GPU each for a tensor-parallel engine on GPU). Engines and ranks never share a
  device, which is what a large BroRL step wants: generation dominates and runs without pausing.
- ``colocated``: one bundle per trainer rank; engine j lives in the bundles of ranks
  j*tp..(j+1)*tp-1 and shares their GPUs (half a GPU each, so Ray lets both in). The engines
  are idle while the ranks train, which suits small clusters.

Reward tasks are not placed: they take whatever CPUs are free anywhere in the cluster, so
verification scales with the cluster's CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brorl.distributed.config import ClusterConfig

__all__ = ["Placement", "bundles_for", "create_placement"]


def bundles_for(cfg: ClusterConfig, device: str) -> tuple[list[dict[str, float]], list[int], list[list[int]]]:
    """``(bundles, rank_bundle[i], engine_bundles[j])`` for the layout (pure, no Ray)."""
    gpu = device == "gpu"
    m, k, tp = cfg.num_trainer_ranks, cfg.num_engines, cfg.engine_tensor_parallel
    bundles: list[dict[str, float]] = []
    if cfg.placement == "separate":
        for _ in range(m):
            bundles.append({"CPU": cfg.cpus_per_rank, **({"GPU": 1.0} if gpu else {})})
        rank_bundle = list(range(m))
        engine_bundles = []
        for _ in range(k):
            first = len(bundles)
            shards = tp if gpu else 1
            for s in range(shards):
                cpu = cfg.cpus_per_engine if s == 0 else 0.0
                bundles.append({"CPU": cpu, **({"GPU": 1.0} if gpu else {})})
            engine_bundles.append(list(range(first, first + shards)))
        return [_drop_zero(b) for b in bundles], rank_bundle, engine_bundles
    # colocated
    shards = tp if gpu else 1
    engine_bundles = []
    for j in range(k):
        engine_bundles.append([(j * shards + s) % m for s in range(shards)])
    for i in range(m):
        cpu = cfg.cpus_per_rank + sum(
            cfg.cpus_per_engine for b in engine_bundles if b[0] == i
        )
        bundles.append({"CPU": cpu, **({"GPU": 1.0} if gpu else {})})
    return [_drop_zero(b) for b in bundles], list(range(m)), engine_bundles


def _drop_zero(bundle: dict[str, float]) -> dict[str, float]:
    # Ray rejects bundles whose every resource is zero; a zero entry among others is just noise.
    kept = {key: v for key, v in bundle.items() if v > 0}
    return kept or {"CPU": 0.001}


@dataclass
class Placement:
    """The run's placement group and the Ray actor options of each rank and engine."""

    cfg: ClusterConfig
    device: str
    group: Any
    rank_bundle: list[int]
    engine_bundles: list[list[int]]

    def _strategy(self, bundle: int) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return PlacementGroupSchedulingStrategy(
            placement_group=self.group,
            placement_group_bundle_index=bundle,
            placement_group_capture_child_tasks=True,
        )

    def rank_options(self, rank: int) -> dict[str, Any]:
        gpu = self.device == "gpu"
        colocated = self.cfg.placement == "colocated"
        return {
            "num_cpus": self.cfg.cpus_per_rank,
            # Half a GPU when an engine shares it: Ray then lets both actors see the same device.
            "num_gpus": (0.5 if colocated else 1.0) if gpu else 0,
            "scheduling_strategy": self._strategy(self.rank_bundle[rank]),
        }

    def engine_options(self, engine: int) -> dict[str, Any]:
        gpu = self.device == "gpu"
        tp = self.cfg.engine_tensor_parallel
        colocated = self.cfg.placement == "colocated"
        # A tensor-parallel engine's GPUs belong to the workers vLLM starts in the group; the
        # actor itself holds none.
        num_gpus = 0 if (not gpu or tp > 1) else (0.5 if colocated else 1.0)
        return {
            "num_cpus": self.cfg.cpus_per_engine,
            "num_gpus": num_gpus,
            "scheduling_strategy": self._strategy(self.engine_bundles[engine][0]),
        }


def create_placement(cfg: ClusterConfig, device: str, timeout_s: float = 600.0) -> Placement:
    import ray
    from ray.util.placement_group import placement_group

    from brorl.errors import ConfigError

    bundles, rank_bundle, engine_bundles = bundles_for(cfg, device)
    group = placement_group(bundles, strategy="PACK", name="")
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(group)
        raise ConfigError(
            f"the cluster cannot fit cluster.placement={cfg.placement!r} within {timeout_s:g}s: it "
            f"needs bundles {bundles}, it has {ray.available_resources()}. Lower "
            "cluster.cpus_per_rank / cluster.cpus_per_engine or add nodes."
        )
    return Placement(cfg, device, group, rank_bundle, engine_bundles)
