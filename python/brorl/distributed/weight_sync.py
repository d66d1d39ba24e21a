"""Moving a trainer's weights into generation engines after each optimizer step, in buckets.

Two transports, one bucket plan:

- ``separate`` placement: trainer rank 0 and the K engines form their own torch.distributed
  group (gloo on CPU, NCCL on GPU), created beside DeepSpeed's so neither disturbs the other;
  each bucket is one ``broadcast`` from rank 0.
- ``colocated`` placement: rank 0 puts each bucket in Ray's shared-memory object store and the
  engines on the same node map it; no copy through a socket.

Either way the parameters travel as flat byte buffers of at most ``bucket_bytes`` (a single larger
tensor travels alone), and the receiver hands vLLM a lazy iterator, so the memory in flight is one
bucket on the sender and at most two on each receiver (the one being loaded and the next),
whatever the model size. ``benches/bench_weight_sync.py`` measures it: 512 MiB sent in 16 MiB
buckets adds ~34 MiB to the receiver's resident memory, against 514 MiB unbucketed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from brorl.errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch

__all__ = [
    "TensorSpec",
    "Bucket",
    "plan_buckets",
    "pack_bucket",
    "unpack_bucket",
    "iter_received",
    "new_sync_group",
    "broadcast_bucket",
]

# Byte offsets inside a bucket are multiples of this, so every tensor view is aligned for any dtype.
_ALIGN = 64


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # e.g. "float32"; a string so specs pickle without torch
    nbytes: int
    offset: int  # byte offset inside the bucket


@dataclass(frozen=True)
class Bucket:
    tensors: tuple[TensorSpec, ...]
    nbytes: int


def _round_up(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def plan_buckets(
    specs: Iterable[tuple[str, tuple[int, ...], str, int]], bucket_bytes: int
) -> list[Bucket]:
    """Group ``(name, shape, dtype, nbytes)`` in order into buckets of at most ``bucket_bytes``.

    Order is kept (engines may load layer by layer). A tensor larger than ``bucket_bytes`` gets a
    bucket of its own: splitting one tensor across broadcasts would need a reassembly copy of it
    on the receiver anyway.
    """
    if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes <= 0:
        raise InvalidArgumentError(f"bucket_bytes must be a positive integer, got {bucket_bytes!r}")
    buckets: list[Bucket] = []
    current: list[TensorSpec] = []
    used = 0
    for name, shape, dtype, nbytes in specs:
        if nbytes < 0:
            raise InvalidArgumentError(f"nbytes of {name!r} must be >= 0, got {nbytes!r}")
        start = _round_up(used)
        if current and start + nbytes > bucket_bytes:
            buckets.append(Bucket(tuple(current), used))
            current, used, start = [], 0, 0
        current.append(TensorSpec(name, tuple(int(s) for s in shape), str(dtype), int(nbytes), start))
        used = start + nbytes
    if current:
        buckets.append(Bucket(tuple(current), used))
    return buckets


def specs_of(named: Iterable[tuple[str, torch.Tensor]]) -> list[tuple[str, tuple[int, ...], str, int]]:
    """The ``plan_buckets`` input for named tensors."""
    return [
        (name, tuple(t.shape), str(t.dtype).removeprefix("torch."), t.numel() * t.element_size())
        for name, t in named
    ]


def pack_bucket(bucket: Bucket, tensors: dict[str, torch.Tensor], device: Any = None) -> torch.Tensor:
    """Copy the bucket's tensors into one flat uint8 buffer (the only allocation of a send)."""
    import torch

    device = device if device is not None else next(iter(tensors.values())).device
    buf = torch.empty(bucket.nbytes, dtype=torch.uint8, device=device)
    for spec in bucket.tensors:
        src = tensors[spec.name].detach().contiguous().reshape(-1).view(torch.uint8)
        buf[spec.offset : spec.offset + spec.nbytes].copy_(src)
    return buf


def unpack_bucket(buf: torch.Tensor, bucket: Bucket) -> list[tuple[str, torch.Tensor]]:
    """Views into ``buf`` (no copy) with each tensor's name, dtype and shape."""
    import torch

    out = []
    for spec in bucket.tensors:
        dtype = getattr(torch, spec.dtype)
        view = buf[spec.offset : spec.offset + spec.nbytes].view(dtype).view(spec.shape)
        out.append((spec.name, view))
    return out


def iter_received(
    plan: list[Bucket], receive: Callable[[Bucket], torch.Tensor]
) -> Iterator[tuple[str, torch.Tensor]]:
    """Lazily receive bucket after bucket; the consumer (vLLM's weight loader) pulls the next one
    only when it has copied the previous tensors, so at most two buckets are alive at a time
    (the consumer may still hold a view of the previous one while the next arrives)."""
    for bucket in plan:
        buf = receive(bucket)
        yield from unpack_bucket(buf, bucket)
        del buf


def new_sync_group(
    backend: str, host: str, port: int, rank: int, world_size: int, timeout_s: float = 600.0
) -> tuple[Any, Any]:
    """A torch.distributed process group of trainer rank 0 (rank 0 here) and the engines.

    Built directly from a TCPStore instead of ``init_process_group`` because rank 0 already has
    DeepSpeed's default group and a process can only have one default group. Returns
    ``(store, group)``; keep the store referenced as long as the group is used.
    """
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    store = dist.TCPStore(
        host, port, world_size, is_master=(rank == 0), timeout=timeout, wait_for_workers=False
    )
    group: Any
    if backend == "gloo":
        group = dist.ProcessGroupGloo(store, rank, world_size, timeout)
    elif backend == "nccl":
        opts = dist.ProcessGroupNCCL.Options()
        opts._timeout = timeout
        group = dist.ProcessGroupNCCL(store, rank, world_size, opts)
    else:
        raise InvalidArgumentError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    return store, group


def broadcast_bucket(group: Any, buf: torch.Tensor) -> torch.Tensor:
    """Broadcast ``buf`` from rank 0 of ``group`` in place (send on rank 0, receive elsewhere)."""
    import torch.distributed as dist

    opts = dist.BroadcastOptions()
    opts.rootRank = 0
    opts.rootTensor = 0
    group.broadcast([buf], opts).wait()
    return buf
