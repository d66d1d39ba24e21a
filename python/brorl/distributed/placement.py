"""Ray placement groups for the two layouts of a run.

One placement group reserves everything the run's actors need before any of them starts (so a
cluster that cannot fit the run fails at once instead of half-starting):

- ``separate``: a bundle per trainer rank and a bundle per engine (one GPU each on GPU).
  Engines and ranks never share a device, which is what a large BroRL step wants: generation
  dominates and runs without pausing.
- ``colocated``: one bundle per trainer rank; engine j lives in the bundle of rank j (of rank
  j mod M on CPU) and shares its GPU (half a GPU each, so Ray lets both in). The engines are
  idle while the ranks train, which suits small clusters.

Reward tasks are not placed: they take whatever CPUs are free anywhere in the cluster, so
verification scales with the cluster's CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brorl.distributed.config import ClusterConfig

__all__ = ["Placement", "bundles_for", "create_placement"]


def bundles_for(cfg: ClusterConfig, device: str) -> tuple[list[dict[str, float]], list[int], list[int]]:
    """``(bundles, rank_bundle[i], engine_bundle[j])`` for the layout (pure, no Ray)."""
    gpu = {"GPU": 1.0} if device == "gpu" else {}
    m, k = cfg.num_trainer_ranks, cfg.num_engines
    if cfg.placement == "separate":
        bundles = [{"CPU": cfg.cpus_per_rank, **gpu} for _ in range(m)]
        bundles += [{"CPU": cfg.cpus_per_engine, **gpu} for _ in range(k)]
        return [_drop_zero(b) for b in bundles], list(range(m)), list(range(m, m + k))
    engine_bundle = [j % m for j in range(k)]
    bundles = [
        {"CPU": cfg.cpus_per_rank + cfg.cpus_per_engine * engine_bundle.count(i), **gpu}
        for i in range(m)
    ]
    return [_drop_zero(b) for b in bundles], list(range(m)), engine_bundle


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
    engine_bundle: list[int]

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
        colocated = self.cfg.placement == "colocated"
        return {
            "num_cpus": self.cfg.cpus_per_engine,
            "num_gpus": (0.5 if colocated else 1.0) if gpu else 0,
            "scheduling_strategy": self._strategy(self.engine_bundle[engine]),
        }


def create_placement(cfg: ClusterConfig, device: str, timeout_s: float = 600.0) -> Placement:
    import ray
    from ray.util.placement_group import placement_group

    from brorl.errors import ConfigError

    bundles, rank_bundle, engine_bundle = bundles_for(cfg, device)
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
    return Placement(cfg, device, group, rank_bundle, engine_bundle)
