"""The weight sync inside each vLLM worker of a tensor-parallel engine.

A tensor-parallel engine's model lives in TP worker processes (Ray actors started by vLLM's Ray
executor), not in the engine actor, so the weights must reach every worker. vLLM mixes
:class:`WeightSyncExtension` into its worker class (``LLM(worker_extension_cls=...)``) and the
engine actor calls its methods on all workers at once with ``llm.collective_rpc``. Each worker
receives every bucket of the same plan as a one-device engine and loads it with vLLM's own
``reload_weights``, whose weight loaders keep only the worker's shard, so the bucketed design
holds: a worker has at most two buckets in flight whatever the model size.

- ``separate`` placement: every worker is a member of the sync group (rank
  ``first_rank + worker rank``) and receives trainer rank 0's broadcasts directly.
- ``colocated`` placement: trainer rank 0 keeps the buckets it put in Ray's object store and
  hands their references to each worker (references cannot travel inside vLLM's own RPC, which
  pickles them without Ray's ownership bookkeeping; an actor handle can).

Nothing here is imported by brorl itself; vLLM imports it by name in the worker processes.
"""

from __future__ import annotations

import time
from typing import Any

from brorl.distributed import weight_sync as ws

__all__ = ["WeightSyncExtension"]


class WeightSyncExtension:
    """Methods added to every vLLM worker (names prefixed ``brorl_``: vLLM refuses an extension
    whose attribute names clash with the worker's). ``self`` is vLLM's worker: it has ``rank``
    (the worker's rank inside its engine), ``device`` and ``reload_weights``."""

    _brorl_sync: Any = None

    def brorl_init_sync_group(
        self, host: str, port: int, first_rank: int, world_size: int, backend: str, timeout_s: float
    ) -> int:
        rank = int(first_rank) + int(self.rank)  # type: ignore[attr-defined]
        self._brorl_sync = ws.new_sync_group(backend, host, port, rank, world_size, timeout_s)
        return rank

    def brorl_receive_broadcast(self, plan: list[ws.Bucket]) -> float:
        import torch

        assert self._brorl_sync is not None, "brorl_init_sync_group first"
        group = self._brorl_sync[1]
        device = self.device  # type: ignore[attr-defined]
        t0 = time.perf_counter()

        def receive(bucket: ws.Bucket) -> torch.Tensor:
            buf = torch.empty(bucket.nbytes, dtype=torch.uint8, device=device)
            return ws.broadcast_bucket(group, buf)

        try:
            self.reload_weights(weights_iterator=ws.iter_received(plan, receive))  # type: ignore[attr-defined]
        except BaseException:
            # Drop the group so the driver builds a new one (see TrainerRank.broadcast_weights).
            self._brorl_sync = None
            raise
        return time.perf_counter() - t0

    def brorl_receive_objects(self, source: Any, plan: list[ws.Bucket]) -> float:
        """Load the buckets trainer rank 0 (``source``, its actor handle) put in the object store."""
        import warnings

        import ray
        import torch

        t0 = time.perf_counter()
        refs = iter(ray.get(source.kept_weight_refs.remote()))

        def receive(bucket: ws.Bucket) -> torch.Tensor:
            array = ray.get(next(refs))
            with warnings.catch_warnings():  # read-only shared memory; the loader only reads
                warnings.simplefilter("ignore", UserWarning)
                return torch.from_numpy(array)

        self.reload_weights(weights_iterator=ws.iter_received(plan, receive))  # type: ignore[attr-defined]
        return time.perf_counter() - t0
