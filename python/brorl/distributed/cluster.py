"""Joining (or starting) the Ray cluster a run is placed on."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any

from brorl.distributed.config import ClusterConfig
from brorl.errors import ConfigError

__all__ = ["connect", "disconnect", "resolve_device", "worker_env"]

log = logging.getLogger("brorl.distributed")


def worker_env() -> dict[str, str]:
    """Environment every actor and task of a run starts with.

    vLLM must run its engine core in the actor's own process (a nested multiprocessing engine
    would escape Ray's resource accounting and cannot receive weights in-process). The CPU KV
    cache default is a quarter of the machine; a small cache leaves room for the trainer ranks.
    Values already set by the user win.
    """
    env = {
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Spinning OpenMP waits starve the other actors sharing a node's cores (as on one machine,
        # where brorl.train sets the same default).
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    for key in list(env):
        if key in os.environ:
            env[key] = os.environ[key]
    # DeepSpeed compiles its small ops with `ninja`, which a virtual environment installs next to
    # its python; workers do not inherit an activated venv's PATH when the driver was started
    # as `.venv/bin/python`.
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    env["PATH"] = path if bindir in path.split(os.pathsep) else os.pathsep.join([bindir, path])
    return env


def connect(cfg: ClusterConfig) -> bool:
    """Connect to the cluster named by ``cfg.address``; return True when this call started Ray
    (so the caller shuts it down at the end), False when it joined a running cluster."""
    import ray

    if not cfg.enabled:
        raise ConfigError("cluster.address is empty: the run is not distributed")
    if ray.is_initialized():
        return False
    runtime_env: dict[str, Any] = {"env_vars": worker_env()}
    if cfg.address == "local":
        kwargs: dict[str, Any] = {
            "object_store_memory": cfg.local_object_store_mb * 2**20,
            "include_dashboard": False,
        }
        if cfg.local_num_cpus:
            kwargs["num_cpus"] = cfg.local_num_cpus
        ray.init(runtime_env=runtime_env, **kwargs)
        log.info("started a local Ray cluster: %s", ray.cluster_resources())
        return True
    try:
        ray.init(address=cfg.address, runtime_env=runtime_env)
    except ConnectionError as exc:
        raise ConfigError(
            f"cluster.address={cfg.address!r}: no Ray cluster answered ({exc}). Start one with "
            "`ray start --head` (and `ray start --address=<head>:6379` on the other nodes), or "
            "use cluster.address=local to start one for this run."
        ) from exc
    log.info("joined Ray cluster %s: %s", cfg.address, ray.cluster_resources())
    return True


def disconnect(started: bool) -> None:
    import ray

    if started and ray.is_initialized():
        ray.shutdown()


def resolve_device(cfg: ClusterConfig) -> str:
    """'cpu' or 'gpu' for the run, checked against what the cluster has."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    device = cfg.device
    if device == "auto":
        device = "gpu" if gpus > 0 else "cpu"
        if device == "gpu":
            # 'auto' skipped the GPU-only checks of ClusterConfig.validate; run them now.
            dataclasses.replace(cfg, device="gpu")
    if device == "cpu" and cfg.engine_tensor_parallel > 1:
        raise ConfigError(
            f"cluster.engine_tensor_parallel={cfg.engine_tensor_parallel} needs GPUs and the "
            "cluster has none; set cluster.engine_tensor_parallel=1"
        )
    if device == "gpu":
        needed = cfg.num_trainer_ranks + (
            0 if cfg.placement == "colocated" else cfg.num_engines * cfg.engine_tensor_parallel
        )
        if gpus < needed:
            raise ConfigError(
                f"cluster.device='gpu' with cluster.placement={cfg.placement!r} needs {needed} GPUs, "
                f"the cluster has {gpus:g}"
            )
    return device
