"""The two kinds of Ray actor of a distributed run. Each hosts an object of the single-machine
trainer (a DeepSpeed learner, a vLLM generator) built inside the actor by a picklable factory,
and forwards calls to it; the actors add only what placement needs (torch.distributed set-up,
weight transport). This module imports neither Ray nor torch at import time: the classes become
actors through ``ray.remote(cls).options(...)`` where they are created.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from brorl.distributed import weight_sync as ws

__all__ = ["TrainerRank", "EngineActor", "free_port", "node_ip"]

log = logging.getLogger("brorl.distributed")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())


def _named(weights: Any) -> list[tuple[str, Any]]:
    return list(weights.items()) if hasattr(weights, "items") else list(weights)


class TrainerRank:
    """One DeepSpeed data-parallel rank. ``setup`` joins torch.distributed with the other ranks
    (rank 0's address, given by the driver) and only then builds the learner, so DeepSpeed finds
    the process group already initialised and reuses it."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank = rank
        self.world_size = world_size
        self.target: Any = None
        self._sync: tuple[Any, Any] | None = None
        self._kept: list[Any] = []

    def address(self) -> tuple[str, int]:
        return node_ip(), free_port()

    def pid(self) -> int:
        return os.getpid()

    def setup(
        self,
        master_addr: str,
        master_port: int,
        backend: str,
        factory: Callable[[], Any],
        timeout_s: float,
    ) -> dict[str, Any]:
        import torch.distributed as dist

        # The env is what DeepSpeed and torch read; Ray already narrowed CUDA_VISIBLE_DEVICES to
        # this actor's GPU, so the local rank is always 0.
        os.environ.update(
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK="0",
            LOCAL_WORLD_SIZE="1",
        )
        if not dist.is_initialized():
            dist.init_process_group(
                backend=backend,
                init_method=f"tcp://{master_addr}:{master_port}",
                rank=self.rank,
                world_size=self.world_size,
                timeout=timedelta(seconds=timeout_s),
            )
        self.target = factory()
        return {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "backend": backend}

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.target, method)(*args, **kwargs)

    def all_reduce_check(self, value: float) -> float:
        """Sum of ``value`` over the ranks through the training process group (a cheap check that
        the group is really connected)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    # --- weight sync, called on rank 0 only -------------------------------------------------

    def _weights(self, method: str) -> dict[str, Any]:
        return dict(_named(getattr(self.target, method)()))

    def weight_plan(self, method: str, bucket_bytes: int) -> list[ws.Bucket]:
        return ws.plan_buckets(ws.specs_of(self._weights(method).items()), bucket_bytes)

    def init_sync_group(self, host: str, port: int, world_size: int, backend: str, timeout_s: float) -> None:
        self._sync = ws.new_sync_group(backend, host, port, 0, world_size, timeout_s)

    def broadcast_weights(self, method: str, plan: list[ws.Bucket]) -> dict[str, float]:
        assert self._sync is not None, "init_sync_group first"
        t0 = time.perf_counter()
        weights = self._weights(method)
        peak = 0
        try:
            for bucket in plan:
                buf = ws.pack_bucket(bucket, weights)
                peak = max(peak, buf.numel())
                ws.broadcast_bucket(self._sync[1], buf)
                del buf
        except BaseException:
            # Dropping the group closes its sockets, so engines still waiting in this broadcast
            # fail at once instead of at the group's timeout; the driver builds a new group.
            self._sync = None
            raise
        return {"seconds": time.perf_counter() - t0, "buckets": len(plan), "max_bucket_bytes": peak}

    def put_weights(self, method: str, plan: list[ws.Bucket], keep: bool = False) -> list[Any]:
        """Colocated transport: each bucket into the node's shared-memory object store.

        ``keep``: also hold the references here until :meth:`release_weights`, for the workers of
        tensor-parallel engines, which fetch them with :meth:`kept_weight_refs`.
        """
        import ray

        weights = self._weights(method)
        refs = []
        for bucket in plan:
            # Ray stores numpy arrays without pickling and maps them read-only on the reader.
            refs.append(ray.put(ws.pack_bucket(bucket, weights, device="cpu").numpy()))
        self._kept = refs if keep else []
        return refs

    def kept_weight_refs(self) -> list[Any]:
        # A list of references returned from an actor call reaches the caller with Ray's
        # ownership bookkeeping, which a reference pickled by vLLM's RPC would lack.
        return list(self._kept)

    def release_weights(self) -> None:
        self._kept = []


class EngineActor:
    """One generation engine (vLLM's engine core in this process: VLLM_ENABLE_V1_MULTIPROCESSING=0
    comes with the run's runtime env).

    ``llm_kwargs`` and ``env`` come from :meth:`Placement.engine_setup`: empty for a one-device
    engine, whose model then runs in this process as on one machine. A tensor-parallel engine
    (``llm_kwargs`` name vLLM's Ray executor and brorl's worker extension) has its model in TP
    vLLM worker actors; the weight sync then goes to those workers (see
    :mod:`brorl.distributed.vllm_worker`), each a member of the sync group.
    """

    def __init__(
        self,
        index: int,
        factory: Callable[..., Any],
        llm_kwargs: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.index = index
        # Read by vLLM when it builds the engine (bundle indices of a tensor-parallel engine).
        os.environ.update(env or {})
        self.target = factory(llm_kwargs=llm_kwargs) if llm_kwargs else factory()
        # Whether the engine's workers (not this process) receive the weights.
        self.via_workers = bool((llm_kwargs or {}).get("worker_extension_cls"))
        self.sleep_mode = bool((llm_kwargs or {}).get("enable_sleep_mode"))
        self._sync: tuple[Any, Any] | None = None

    def pid(self) -> int:
        return os.getpid()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.target, method)(*args, **kwargs)

    # --- colocated placement: give the device back while the trainer ranks train ------------

    def _vllm(self) -> Any:
        llm = getattr(self.target, "llm", None)
        return llm if llm is not None and hasattr(llm, "sleep") else None

    def sleep(self, level: int) -> bool:
        """Pause the engine while colocated trainer ranks train; returns whether device memory
        was released.

        With sleep mode (GPU; ``enable_sleep_mode`` from :func:`engine_llm_kwargs`): level 1
        moves the weights to CPU memory and frees the KV cache, level 2 frees both (the weights
        must be reloaded before the next generation: the weight sync does). On CPU vLLM has no
        sleep mode: it rejects ``enable_sleep_mode`` outside CUDA/ROCm/XPU
        (``Platform.is_sleep_mode_available``), and its CPU worker's ``sleep``/``wake_up`` only
        log "not supported". The same call still pauses the engine's scheduler and drops its
        prefix cache; then the idle KV cache's pages go back to the operating system
        (``VLLMGenerator.release_kv_cache``), and this returns whether any did. An engine
        without vLLM (the transformers generator) just stays idle.
        """
        llm = self._vllm()
        if llm is None:
            return False
        _quiet_cpu_sleep_warning()
        llm.sleep(level=level)
        if self.sleep_mode:
            return True
        release = getattr(self.target, "release_kv_cache", None)
        return bool(release is not None and release() > 0)

    def wake_up(self, tags: list[str] | None = None) -> None:
        """Undo :meth:`sleep`: ``["weights"]`` (then load new weights), ``["kv_cache"]`` after,
        or everything with None."""
        llm = self._vllm()
        if llm is not None:
            llm.wake_up(tags=tags)

    # --- weight sync ----------------------------------------------------------------------

    def _workers(self, method: str, *args: Any) -> list[Any]:
        return list(self.target.llm.collective_rpc(method, args=args))

    def init_sync_group(
        self, host: str, port: int, rank: int, world_size: int, backend: str, timeout_s: float
    ) -> None:
        """Join the sync group as ``rank`` (this process), or as ranks ``rank .. rank+TP-1``
        (the engine's workers)."""
        if self.via_workers:
            self._workers("brorl_init_sync_group", host, port, rank, world_size, backend, timeout_s)
            return
        self._sync = ws.new_sync_group(backend, host, port, rank, world_size, timeout_s)

    def receive_broadcast(self, load_method: str, plan: list[ws.Bucket], device: str = "cpu") -> float:
        import torch

        if self.via_workers:
            t0 = time.perf_counter()
            self._workers("brorl_receive_broadcast", plan)
            self.target.reset()  # cached prefixes hold the old weights' KV
            return time.perf_counter() - t0
        assert self._sync is not None, "init_sync_group first"
        group = self._sync[1]
        t0 = time.perf_counter()

        def receive(bucket: ws.Bucket) -> torch.Tensor:
            return ws.broadcast_bucket(group, torch.empty(bucket.nbytes, dtype=torch.uint8, device=device))

        try:
            self._load(load_method, ws.iter_received(plan, receive))
        except BaseException:
            self._sync = None  # see TrainerRank.broadcast_weights
            raise
        return time.perf_counter() - t0

    def receive_objects(
        self, load_method: str, plan: list[ws.Bucket], refs: list[Any], source: Any = None
    ) -> float:
        """Load the buckets ``refs`` from the object store; the workers of a tensor-parallel
        engine fetch them from ``source`` (trainer rank 0, which keeps them for the sync)."""
        import ray
        import torch

        t0 = time.perf_counter()
        if self.via_workers:
            self._workers("brorl_receive_objects", source, plan)
            self.target.reset()
            return time.perf_counter() - t0
        pending = iter(refs)

        def receive(bucket: ws.Bucket) -> torch.Tensor:
            array = ray.get(next(pending))
            # Read-only shared memory: the loader only reads before copying into parameters.
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return torch.from_numpy(array)

        self._load(load_method, ws.iter_received(plan, receive))
        return time.perf_counter() - t0

    def _load(self, load_method: str, weights: Any) -> None:
        """Hand the lazily received weights to the engine.

        An in-process vLLM engine (one process, no tensor parallelism) pulls the iterator
        itself, bucket by bucket, so the receiver never holds the whole model twice; the
        generator's own ``update_weights`` takes a list because it must also serve engines whose
        workers live in other processes. Anything else gets the generator's method.
        """
        llm: Any = getattr(self.target, "llm", None)
        if load_method == "update_weights" and _in_process_vllm(llm):
            llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
            self.target.reset()  # the cached prompt KV holds the old weights
        else:
            getattr(self.target, load_method)(weights)


def _quiet_cpu_sleep_warning() -> None:
    """vLLM's CPU worker warns "sleep mode is not supported on CPU" at every sleep and wake, twice
    a step; EngineActor.sleep documents what happens instead."""
    cpu_log = logging.getLogger("vllm.v1.worker.cpu_worker")
    if not any(isinstance(f, _DropSleepWarning) for f in cpu_log.filters):
        cpu_log.addFilter(_DropSleepWarning())


class _DropSleepWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "sleep mode is not supported" not in record.getMessage()


def _in_process_vllm(llm: Any) -> bool:
    if llm is None or not hasattr(llm, "collective_rpc"):
        return False
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
        return False
    try:
        return int(llm.llm_engine.vllm_config.parallel_config.world_size) == 1
    except AttributeError:
        return False
