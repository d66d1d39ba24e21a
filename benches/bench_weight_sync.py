"""Weight sync of a distributed run (``cluster.placement=separate``): time and receiver memory of
the bucketed broadcast from trainer rank 0 to an engine, over the same gloo group code the run
uses (``brorl.distributed.weight_sync``), between two processes on this machine.

    .venv/bin/python benches/bench_weight_sync.py [--json] [--model-mb 512] [--tensor-mb 8]
        [--bucket-mb 16 64 512]

The "model" is float32 tensors of --tensor-mb each, --model-mb in all. The receiver holds its
own copy of the parameters (as an engine does) and copies each received tensor into it, so what
the sync itself adds to the receiver's resident memory is the bucket in flight: the report gives
the receiver's peak RSS above its parameters for each bucket size (a bucket as big as the model
is the unbucketed baseline), and the sync time / throughput. vLLM's own loading is not included
(``weight_sync_s`` in a run's metrics.jsonl is the end-to-end number with the engine).

glibc keeps freed buffers below its (self-raising) mmap threshold in the heap, which shows as
resident memory that the sync no longer uses; run with ``MALLOC_MMAP_THRESHOLD_=1048576`` to see
only what is live. Measured on the 2-core CPU machine (loaded by other jobs), 512 MiB in 8 MiB
tensors, with that setting: 16 MiB buckets 1.7 s, +34 MiB on the receiver; 64 MiB buckets
1.8 s, +130 MiB; one 512 MiB bucket 2.3-9.1 s, +514 MiB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _params(model_mb: int, tensor_mb: int, fill: float):
    import torch

    n = max(1, model_mb // tensor_mb)
    numel = tensor_mb * 2**20 // 4
    return {f"layer{i}.weight": torch.full((numel,), fill + i, dtype=torch.float32) for i in range(n)}


def _worker(rank: int, port: int, args: argparse.Namespace, bucket_mb: int, out: mp.Queue) -> None:
    import torch

    from brorl.distributed import weight_sync as ws

    torch.set_num_threads(1)
    params = _params(args.model_mb, args.tensor_mb, 1.0 if rank == 0 else 0.0)
    plan = ws.plan_buckets(ws.specs_of(params.items()), bucket_mb * 2**20)
    _, group = ws.new_sync_group("gloo", "127.0.0.1", port, rank, 2, 600)
    ws.broadcast_bucket(group, torch.zeros(1, dtype=torch.uint8))  # connect before timing
    base = _rss_mb()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    if rank == 0:
        for bucket in plan:
            ws.broadcast_bucket(group, ws.pack_bucket(bucket, params))
    else:

        def receive(bucket):
            return ws.broadcast_bucket(group, torch.empty(bucket.nbytes, dtype=torch.uint8))

        for name, tensor in ws.iter_received(plan, receive):
            params[name].copy_(tensor)  # what an engine's loader does
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    ok = all(bool((t == 1.0 + i).all()) for i, t in enumerate(params.values()))
    out.put({"rank": rank, "seconds": seconds, "extra_rss_mb": peak[0] - base, "ok": ok, "buckets": len(plan)})


def run_one(args: argparse.Namespace, bucket_mb: int) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, port, args, bucket_mb, q)) for r in (0, 1)]
    for p in procs:
        p.start()
    res = {r["rank"]: r for r in (q.get(timeout=900) for _ in procs)}
    for p in procs:
        p.join()
    recv = res[1]
    if not recv["ok"]:
        raise SystemExit("receiver got wrong weights")
    return {
        "bucket_mb": bucket_mb,
        "buckets": recv["buckets"],
        "seconds": round(max(res[0]["seconds"], recv["seconds"]), 4),
        "gb_per_s": round(args.model_mb / 1024 / max(recv["seconds"], 1e-9), 3),
        "receiver_extra_rss_mb": round(recv["extra_rss_mb"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-mb", type=int, default=512)
    ap.add_argument("--tensor-mb", type=int, default=8)
    ap.add_argument("--bucket-mb", type=int, nargs="+", default=[16, 64, 512])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = [run_one(args, b) for b in args.bucket_mb]
    report = {"model_mb": args.model_mb, "tensor_mb": args.tensor_mb, "backend": "gloo", "rows": rows}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"bucketed gloo broadcast of {args.model_mb} MiB ({args.tensor_mb} MiB tensors), rank 0 -> 1 engine")
        print(f"{'bucket MiB':>10} {'buckets':>8} {'seconds':>8} {'GB/s':>7} {'receiver +RSS MiB':>18}")
        for r in rows:
            print(f"{r['bucket_mb']:>10} {r['buckets']:>8} {r['seconds']:>8} {r['gb_per_s']:>7} {r['receiver_extra_rss_mb']:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
