"""Ray placement groups for the two layouts of a run.

One placement group reserves everything the run's actors need before any of them starts (so a
cluster that cannot fit the run fails at once instead of half-starting):

- ``separate``: a bundle per trainer rank and ``TP = cluster.engine_tensor_parallel`` bundles per
  engine (one GPU each on GPU). Engines and ranks never share a device, which is what a large
  BroRL step wants: generation dominates and runs without pausing.
- ``colocated``: one bundle per trainer rank; engine j lives in the bundles of ranks
  j*TP .. j*TP+TP-1 (of rank j mod M on CPU) and shares their GPUs (half a GPU each, so Ray lets
  both in). The engines sleep while the ranks train, which suits small clusters.

A one-GPU engine (TP=1) is itself the vLLM worker: the engine actor takes the GPU and runs vLLM
in its own process, as on one machine. A tensor-parallel engine's actor takes no GPU: it holds
vLLM's engine core, and vLLM's Ray executor starts one worker actor per GPU in the engine's
bundles (``VLLM_RAY_BUNDLE_INDICES``; the placement group is the one the engine actor was
scheduled in, which vLLM finds with ``ray.util.get_current_placement_group``).

Reward tasks are not placed: they take whatever CPUs are free anywhere in the cluster, so
verification scales with the cluster's CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brorl.distributed.config import ClusterConfig

__all__ = [
    "Placement",
    "WORKER_EXTENSION",
    "bundles_for",
    "create_placement",
    "engine_env",
    "engine_llm_kwargs",
]

# Mixed into every vLLM worker of a tensor-parallel engine (``LLM(worker_extension_cls=...)``):
# the weight sync reaches each worker through it (see brorl.distributed.vllm_worker).
WORKER_EXTENSION = "brorl.distributed.vllm_worker.WeightSyncExtension"


def bundles_for(
    cfg: ClusterConfig, device: str
) -> tuple[list[dict[str, float]], list[int], list[list[int]]]:
    """``(bundles, rank_bundle[i], engine_bundles[j])`` for the layout (pure, no Ray).

    ``engine_bundles[j]`` lists the bundles of engine j's GPUs, one per tensor-parallel worker;
    the engine actor itself lives in the first (which also holds its CPUs).
    """
    gpu = {"GPU": 1.0} if device == "gpu" else {}
    m, k, tp = cfg.num_trainer_ranks, cfg.num_engines, cfg.engine_tensor_parallel
    if cfg.placement == "separate":
        bundles = [{"CPU": cfg.cpus_per_rank, **gpu} for _ in range(m)]
        engine_bundles = []
        for j in range(k):
            first = len(bundles)
            bundles += [{"CPU": cfg.cpus_per_engine if t == 0 else 0.0, **gpu} for t in range(tp)]
            engine_bundles.append(list(range(first, first + tp)))
        return [_drop_zero(b) for b in bundles], list(range(m)), engine_bundles
    # colocated: config validation guarantees k * tp <= m on GPU, and tp == 1 on CPU
    engine_bundles = [[(j * tp + t) % m for t in range(tp)] for j in range(k)]
    hosts = [b[0] for b in engine_bundles]
    bundles = [
        {"CPU": cfg.cpus_per_rank + cfg.cpus_per_engine * hosts.count(i), **gpu} for i in range(m)
    ]
    return [_drop_zero(b) for b in bundles], list(range(m)), engine_bundles


def _drop_zero(bundle: dict[str, float]) -> dict[str, float]:
    # Ray rejects bundles whose every resource is zero; a zero entry among others is just noise.
    kept = {key: v for key, v in bundle.items() if v > 0}
    return kept or {"CPU": 0.001}


def _gpu_share(cfg: ClusterConfig) -> float:
    # Half a GPU when an engine shares it with a rank: Ray then lets both onto the same device.
    return 0.5 if cfg.placement == "colocated" else 1.0


def engine_llm_kwargs(cfg: ClusterConfig, device: str) -> dict[str, Any]:
    """Extra ``vllm.LLM`` arguments of every engine of the run (pure).

    Empty for a one-device engine of a ``separate`` placement (or any CPU engine), which is then
    built exactly as on one machine. Tensor parallelism uses vLLM's Ray executor, the only one
    that can place workers into bundles of an existing placement group (the ``mp`` executor
    forks workers on the engine's node and would escape Ray's accounting). Colocated GPU engines
    enable sleep mode (vLLM's CuMem allocator, CUDA only: vLLM rejects ``enable_sleep_mode`` on
    CPU, so a CPU engine pauses without it).
    """
    kwargs: dict[str, Any] = {}
    tp = cfg.engine_tensor_parallel
    if tp > 1:
        kwargs.update(
            tensor_parallel_size=tp,
            distributed_executor_backend="ray",
            worker_extension_cls=WORKER_EXTENSION,
        )
    if cfg.placement == "colocated" and device == "gpu":
        kwargs["enable_sleep_mode"] = True
    return kwargs


def engine_env(cfg: ClusterConfig, device: str, bundles: list[int]) -> dict[str, str]:
    """Environment engine actor sets before it builds its ``vllm.LLM`` (pure).

    For a tensor-parallel engine: the bundles vLLM's Ray executor must put its workers in
    (without it vLLM takes the first GPU bundles of the whole placement group, which belong to
    the trainer ranks), and the GPU share each worker asks Ray for (half a GPU beside a
    colocated trainer rank).
    """
    if cfg.engine_tensor_parallel == 1 or device != "gpu":
        return {}
    return {
        "VLLM_RAY_BUNDLE_INDICES": ",".join(str(b) for b in bundles),
        "VLLM_RAY_PER_WORKER_GPUS": str(_gpu_share(cfg)),
    }


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
            # A tensor-parallel engine's vLLM workers find the group through this.
            placement_group_capture_child_tasks=True,
        )

    def rank_options(self, rank: int) -> dict[str, Any]:
        return {
            "num_cpus": self.cfg.cpus_per_rank,
            "num_gpus": _gpu_share(self.cfg) if self.device == "gpu" else 0,
            "scheduling_strategy": self._strategy(self.rank_bundle[rank]),
        }

    def engine_options(self, engine: int) -> dict[str, Any]:
        gpus = 0.0
        if self.device == "gpu" and self.cfg.engine_tensor_parallel == 1:
            gpus = _gpu_share(self.cfg)  # the actor is the engine's only vLLM worker
        return {
            "num_cpus": self.cfg.cpus_per_engine,
            "num_gpus": gpus,
            "scheduling_strategy": self._strategy(self.engine_bundles[engine][0]),
        }

    def engine_setup(self, engine: int) -> tuple[dict[str, Any], dict[str, str]]:
        """``(llm_kwargs, env)`` of engine ``engine`` (see :func:`engine_llm_kwargs`,
        :func:`engine_env`)."""
        return (
            engine_llm_kwargs(self.cfg, self.device),
            engine_env(self.cfg, self.device, self.engine_bundles[engine]),
        )


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
