"""The driver's side of the weight sync: which ranks form the sync group, when it is rebuilt (an
engine restarted), and what a failure means. The transport itself is
:mod:`brorl.distributed.weight_sync`."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from brorl.distributed.config import ClusterConfig
from brorl.distributed.liveness import alive as _alive
from brorl.errors import TrainerRankLostError, WorkerLostError

if TYPE_CHECKING:
    from brorl.distributed.engine_pool import EnginePool
    from brorl.distributed.trainer_group import TrainerGroup

__all__ = ["WeightSync", "sync_ranks"]

log = logging.getLogger("brorl.distributed")


def sync_ranks(num_engines: int, workers_per_engine: int) -> tuple[list[int], int]:
    """``(first_rank[j], world_size)`` of the weight-sync group: trainer rank 0 is rank 0, and
    engine j's workers (``workers_per_engine`` of them, its tensor-parallel size) follow."""
    first = [1 + j * workers_per_engine for j in range(num_engines)]
    return first, 1 + num_engines * workers_per_engine


class WeightSync:
    """Trainer rank 0 -> engines after every optimizer step (see :mod:`weight_sync`)."""

    def __init__(
        self,
        cfg: ClusterConfig,
        trainer: TrainerGroup,
        engines: EnginePool,
        backend: str,
        device: str,
        weights_method: str = "named_weights",
        load_method: str = "update_weights",
    ) -> None:
        import ray

        self.cfg = cfg
        self.trainer = trainer
        self.engines = engines
        self.backend = backend
        self.device = device
        self.weights_method = weights_method
        self.load_method = load_method
        bucket_bytes = max(1, int(cfg.sync_bucket_mb * 2**20))
        self.plan = ray.get(
            trainer.ranks[0].weight_plan.remote(weights_method, bucket_bytes), timeout=cfg.timeout_s
        )
        self.total_bytes = sum(b.nbytes for b in self.plan)
        self._group_ok = False
        self.last: dict[str, float] = {}
        engines.sync = self

    def engine_restarted(self, j: int) -> None:
        # A broadcast group cannot replace a member: build a new one at the next sync.
        self._group_ok = False

    def _init_group(self) -> None:
        import ray

        from brorl.distributed.actors import free_port  # noqa: F401  (port chosen on rank 0's node)

        rank0 = self.trainer.ranks[0]
        host, port = ray.get(rank0.address.remote(), timeout=self.cfg.timeout_s)
        first, world = sync_ranks(len(self.engines.engines), self.cfg.engine_tensor_parallel)
        refs = [rank0.init_sync_group.remote(host, port, world, self.backend, self.cfg.timeout_s)]
        refs += [
            e.init_sync_group.remote(host, port, first[j], world, self.backend, self.cfg.timeout_s)
            for j, e in enumerate(self.engines.engines)
        ]
        ray.get(refs, timeout=self.cfg.timeout_s)
        self._group_ok = True

    def sync(self) -> dict[str, float]:
        """Send the current weights to every engine; returns timing for the step's metrics.

        If a participant died during the sync: a dead trainer rank 0 stops the run
        (:class:`TrainerRankLostError`); dead engines are restarted and the sync is redone once.
        """
        try:
            return self._sync_once()
        except WorkerLostError as exc:
            rank0 = self.trainer.ranks[0]
            if not _alive(rank0):
                self.trainer.kill()
                raise TrainerRankLostError(
                    "trainer rank 0 died during the weight sync; the run is stopped. "
                    + self.trainer._resume_message()
                ) from exc
            dead = [j for j, e in enumerate(self.engines.engines) if not _alive(e)]
            if not dead:
                raise
            for j in dead:
                self.engines._restart(j, exc.__cause__ or exc)
            return self._sync_once()

    def _sync_once(self) -> dict[str, float]:
        import ray

        t0 = time.perf_counter()
        rank0 = self.trainer.ranks[0]
        engines = self.engines.engines
        try:
            if self.cfg.placement == "colocated":
                # Tensor-parallel engines' workers fetch the references from rank 0 itself.
                keep = self.engines.via_workers
                refs = ray.get(
                    rank0.put_weights.remote(self.weights_method, self.plan, keep), timeout=self.cfg.timeout_s
                )
                try:
                    ray.get(
                        [e.receive_objects.remote(self.load_method, self.plan, refs, rank0) for e in engines],
                        timeout=self.cfg.timeout_s,
                    )
                finally:
                    if keep:
                        rank0.release_weights.remote()
                max_bucket = max((b.nbytes for b in self.plan), default=0)
                del refs
            else:
                if not self._group_ok:
                    self._init_group()
                recv_device = "cuda" if self.device == "gpu" else "cpu"
                send = rank0.broadcast_weights.remote(self.weights_method, self.plan)
                recvs = [e.receive_broadcast.remote(self.load_method, self.plan, recv_device) for e in engines]
                stats = ray.get(send, timeout=self.cfg.timeout_s)
                ray.get(recvs, timeout=self.cfg.timeout_s)
                max_bucket = stats["max_bucket_bytes"]
        except Exception as exc:
            # A dead participant shows as a Ray error on its own call and as a gloo/NCCL error on
            # the others'; either way the group is gone. sync() decides what to restart.
            self._group_ok = False
            raise WorkerLostError(f"weight sync failed ({type(exc).__name__}: {exc})") from exc
        seconds = time.perf_counter() - t0
        self.last = {
            "weight_sync_s": seconds,
            "weight_sync_mb": self.total_bytes / 2**20,
            "weight_sync_buckets": float(len(self.plan)),
            "weight_sync_max_bucket_mb": max_bucket / 2**20,
        }
        log.info(
            "weight sync (%s): %.1f MiB in %d buckets to %d engines in %.3fs",
            self.cfg.placement,
            self.total_bytes / 2**20,
            len(self.plan),
            len(engines),
            seconds,
        )
        return self.last
