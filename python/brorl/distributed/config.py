"""The ``cluster`` section of a training config: where the trainer's parts run.

Leaving ``address`` empty keeps everything in one process (the single-machine trainer). Setting
it moves the same parts onto Ray actors: ``num_engines`` generation engines, ``num_trainer_ranks``
DeepSpeed data-parallel ranks and reward work as Ray tasks. Nothing here changes the algorithm,
only placement, so a run's metrics do not depend on this section beyond floating-point noise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from brorl.errors import ConfigError

__all__ = ["ClusterConfig", "PLACEMENTS", "DEVICES"]

PLACEMENTS = ("separate", "colocated")
DEVICES = ("auto", "cpu", "gpu")


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class ClusterConfig:
    """Placement of generation engines, trainer ranks and reward work on a Ray cluster."""

    address: str = _help(
        "Ray cluster to run on. Empty: no Ray, everything in this process. 'local': start a "
        "Ray cluster on this machine for the run (shut down at the end). 'auto': join the "
        "cluster started with `ray start` on this node. 'ray://host:10001': Ray Client. "
        "'host:6379': a cluster's GCS address.",
        "",
    )
    placement: str = _help(
        "'separate': engines and trainer ranks get their own devices (weights are broadcast "
        "from trainer rank 0 after each step). 'colocated': each engine shares a device with "
        "trainer ranks and sleeps while they train, giving back its device memory (vLLM sleep "
        "mode on GPU; on CPU vLLM has no sleep mode and only its prefix cache is dropped); weights "
        "are copied through shared memory.",
        "separate",
    )
    device: str = _help(
        "'gpu' reserves GPUs for engines and ranks and uses NCCL; 'cpu' uses gloo; 'auto' picks "
        "'gpu' when the cluster has GPUs.",
        "auto",
    )
    num_engines: int = _help(
        "Generation engine actors (cluster.engine_tensor_parallel GPUs each on GPU clusters). A "
        "step's prompts are spread over them, each prompt's N rollouts on one engine so they share "
        "its prefix cache.",
        1,
    )
    engine_tensor_parallel: int = _help(
        "GPUs per generation engine (vLLM tensor parallelism, its workers placed by vLLM's Ray "
        "executor in the engine's bundles of the run's placement group). 1 suits models that fit "
        "one GPU: more engines of one GPU each generate more than fewer wider ones. Above 1 needs "
        "device 'gpu'; with placement 'colocated' engine j shares the GPUs of trainer ranks "
        "j*TP .. j*TP+TP-1.",
        1,
    )
    engine_sleep_level: int = _help(
        "vLLM sleep level of colocated engines while the ranks train: 1 moves the weights to CPU "
        "memory and drops the KV cache; 2 drops both (the weight sync after the step reloads every "
        "parameter the trainer sends, so use 2 only when it sends all of them). Unused with "
        "placement 'separate'.",
        1,
    )
    num_trainer_ranks: int = _help(
        "DeepSpeed data-parallel ranks, one Ray actor each (one GPU each on GPU clusters).", 1
    )
    cpus_per_engine: float = _help(
        "CPUs Ray reserves per engine actor. Fractions let several actors share a small machine.",
        0.5,
    )
    cpus_per_rank: float = _help("CPUs Ray reserves per trainer rank actor.", 0.5)
    cpus_per_reward_task: float = _help(
        "CPUs Ray reserves per reward task. Keep it below the CPUs left free by the actors, or "
        "reward tasks wait forever for a CPU.",
        0.25,
    )
    reward_prompts_per_task: int = _help(
        "Prompt groups scored by one reward task: smaller spreads verifier work wider, larger "
        "costs less scheduling.",
        16,
    )
    local_num_cpus: int = _help(
        "CPUs of the cluster started by address='local' (0: all of this machine's).", 0
    )
    local_object_store_mb: int = _help(
        "Shared-memory object store of the cluster started by address='local', in MiB.", 512
    )
    sync_bucket_mb: float = _help(
        "Weight sync sends parameters in buckets of at most this many MiB (a larger single "
        "tensor goes alone), so the memory in flight stays bounded whatever the model size.",
        64.0,
    )
    max_engine_restarts: int = _help(
        "How often per run a dead engine actor is restarted (its prompts re-issued) before the "
        "run gives up.",
        3,
    )
    max_reward_retries: int = _help(
        "How often a reward task whose worker died is re-issued before the run gives up.", 3
    )
    timeout_s: float = _help(
        "Upper bound on one remote call (generation of a step, a train step, a weight sync); "
        "a call past it is treated as a dead worker.",
        3600.0,
    )

    def __post_init__(self) -> None:
        self.validate()

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def validate(self) -> None:
        if not isinstance(self.address, str):
            raise ConfigError(f"cluster.address must be a string, got {self.address!r}")
        if self.placement not in PLACEMENTS:
            raise ConfigError(
                f"cluster.placement must be one of {PLACEMENTS}, got {self.placement!r}"
            )
        if self.device not in DEVICES:
            raise ConfigError(f"cluster.device must be one of {DEVICES}, got {self.device!r}")
        for name in (
            "num_engines",
            "num_trainer_ranks",
            "engine_tensor_parallel",
            "reward_prompts_per_task",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"cluster.{name} must be an integer >= 1, got {value!r}")
        for name in ("max_engine_restarts", "max_reward_retries", "local_num_cpus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"cluster.{name} must be an integer >= 0, got {value!r}")
        for name in ("cpus_per_engine", "cpus_per_rank", "cpus_per_reward_task"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"cluster.{name} must be a finite number >= 0, got {value!r}")
        for name in ("sync_bucket_mb", "timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"cluster.{name} must be a finite number > 0, got {value!r}")
        if self.local_object_store_mb < 80:
            # Ray refuses object stores below ~75 MiB with a less helpful message.
            raise ConfigError(
                f"cluster.local_object_store_mb must be >= 80, got {self.local_object_store_mb!r}"
            )
        if isinstance(self.engine_sleep_level, bool) or self.engine_sleep_level not in (1, 2):
            raise ConfigError(
                f"cluster.engine_sleep_level must be 1 or 2, got {self.engine_sleep_level!r}"
            )
        tp = self.engine_tensor_parallel
        if tp > 1 and self.device == "cpu":
            raise ConfigError(
                f"cluster.engine_tensor_parallel={tp} needs GPUs (vLLM on CPU runs an engine in "
                "one process); set cluster.device=gpu, or engine_tensor_parallel=1 and raise "
                "cluster.num_engines instead"
            )
        if self.placement == "colocated" and self.device == "gpu":
            if self.num_engines * tp > self.num_trainer_ranks:
                raise ConfigError(
                    "with cluster.placement='colocated' each engine GPU is the GPU of one trainer "
                    f"rank, so cluster.num_engines x cluster.engine_tensor_parallel "
                    f"({self.num_engines} x {tp}) must be <= cluster.num_trainer_ranks "
                    f"({self.num_trainer_ranks})"
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ClusterConfig:
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"cluster.{unknown[0]} is not a cluster setting (known: {', '.join(sorted(known))})"
            )
        return cls(**data)
