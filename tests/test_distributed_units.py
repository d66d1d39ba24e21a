"""Pure parts of brorl.distributed: bucket planning, rollout slicing, placement bundles, config
validation, RolloutBatch pickling. No Ray cluster is started here (see test_distributed.py)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brorl
from brorl.distributed import ClusterConfig, weight_sync as ws
from brorl.distributed.placement import bundles_for
from brorl.distributed.runtime import merge_batches, slice_rollouts, split_groups
from brorl.errors import ConfigError, InvalidArgumentError


def test_import_is_light():
    code = "import brorl.distributed, sys; print('ray' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 5000), min_size=0, max_size=40),
    bucket=st.integers(1, 8000),
)
def test_plan_buckets_bounds_order_and_alignment(sizes, bucket):
    specs = [(f"t{i}", (n,), "uint8", n) for i, n in enumerate(sizes)]
    plan = ws.plan_buckets(specs, bucket)
    # Every tensor exactly once, in order.
    assert [s.name for b in plan for s in b.tensors] == [n for n, *_ in specs]
    for b in plan:
        # A bucket stays within the budget unless it holds a single larger tensor.
        assert b.nbytes <= bucket or len(b.tensors) == 1
        for s in b.tensors:
            assert s.offset % 64 == 0
            assert s.offset + s.nbytes <= b.nbytes
        ends = [s.offset + s.nbytes for s in b.tensors]
        starts = [s.offset for s in b.tensors]
        assert all(e <= s for e, s in zip(ends, starts[1:]))  # no overlap


def test_plan_buckets_rejects_bad_budget():
    with pytest.raises(InvalidArgumentError, match="bucket_bytes"):
        ws.plan_buckets([("a", (1,), "float32", 4)], 0)


def test_pack_unpack_round_trip_mixed_dtypes():
    torch = pytest.importorskip("torch")
    tensors = {
        "w": torch.randn(7, 3),
        "b": torch.arange(5, dtype=torch.int64),
        "h": torch.randn(4, 2, dtype=torch.bfloat16),
    }
    plan = ws.plan_buckets(ws.specs_of(tensors.items()), 100)
    # w (84 B) alone, since 84 rounded up to 128 + 40 > 100; then b (40 B) and h at offset 64.
    assert [[s.name for s in b.tensors] for b in plan] == [["w"], ["b", "h"]]
    got = {}
    for b in plan:
        buf = ws.pack_bucket(b, tensors)
        assert buf.numel() == b.nbytes
        got.update(dict(ws.unpack_bucket(buf.clone(), b)))
    for name, t in tensors.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t)


def _batch():
    # 3 prompts with 2, 3 and 1 rollouts; prompt indices deliberately out of order.
    b = brorl.RolloutBatch.from_lists(
        [2, 2, 0, 0, 0, 1],
        [[1, 2], [3], [4, 5, 6], [7], [8, 9], [10]],
        [[-0.1, -0.2], [-0.3], [-0.4, -0.5, -0.6], [-0.7], [-0.8, -0.9], [-1.0]],
        finish_reasons=["stop", "length", "stop", "stop", "stop", "length"],
    )
    b.set_rewards([1.0, 0.0, 0.5, 0.25, 0.0, 1.0])
    return b


def test_split_and_slice_rollouts_cover_whole_groups():
    b = _batch()
    assert split_groups(b, 2) == [(0, 5), (5, 6)]
    assert split_groups(b, 1) == [(0, 2), (2, 5), (5, 6)]
    sub, originals = slice_rollouts(b, 0, 5)
    assert originals == [2, 0]
    np.testing.assert_array_equal(sub.prompt_index, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(sub.token_ids, [1, 2, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_allclose(sub.rewards, [1.0, 0.0, 0.5, 0.25, 0.0])
    np.testing.assert_array_equal(sub.truncated, [False, True, False, False, False])
    sub2, originals2 = slice_rollouts(b, 5, 6)
    assert originals2 == [1]
    np.testing.assert_allclose(sub2.logprobs, [-1.0])


def test_merge_batches_shifts_prompt_indices():
    a = brorl.RolloutBatch.from_lists([0, 0, 1], [[1], [2, 3], [4]], [[-1.0], [-2.0, -3.0], [-4.0]])
    b = brorl.RolloutBatch.from_lists([0, 1, 1], [[5, 6], [7], [8]], [[-5.0, -6.0], [-7.0], [-8.0]])
    m = merge_batches([a, b], [0, 2])
    np.testing.assert_array_equal(m.prompt_index, [0, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(m.token_ids, [1, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(m.offsets, [0, 1, 3, 4, 6, 7, 8])
    np.testing.assert_allclose(m.logprobs, -np.arange(1, 9))


def test_rollout_batch_pickles_through_brorl_distributed():
    b = _batch()
    c = pickle.loads(pickle.dumps(b))
    for col in ("prompt_index", "token_ids", "offsets", "logprobs", "rewards", "truncated"):
        np.testing.assert_array_equal(getattr(c, col), getattr(b, col))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("placement", "spread", "cluster.placement"),
        ("device", "tpu", "cluster.device"),
        ("num_engines", 0, "cluster.num_engines"),
        ("num_trainer_ranks", 1.5, "cluster.num_trainer_ranks"),
        ("cpus_per_engine", -1, "cluster.cpus_per_engine"),
        ("sync_bucket_mb", 0, "cluster.sync_bucket_mb"),
        ("local_object_store_mb", 10, "cluster.local_object_store_mb"),
        ("max_engine_restarts", -1, "cluster.max_engine_restarts"),
    ],
)
def test_cluster_config_names_bad_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        ClusterConfig(**{field: value})


def test_cluster_config_cross_field_checks():
    with pytest.raises(ConfigError, match="must be <= cluster.num_trainer_ranks"):
        ClusterConfig(device="gpu", placement="colocated", num_engines=4, num_trainer_ranks=2)
    with pytest.raises(ConfigError, match="cluster.nodes is not a cluster setting"):
        ClusterConfig.from_dict({"nodes": 2})


def test_bundles_separate_and_colocated():
    cfg = ClusterConfig(num_engines=2, num_trainer_ranks=4, device="gpu")
    bundles, ranks, engines = bundles_for(cfg, "gpu")
    assert len(bundles) == 6 and all(b["GPU"] == 1.0 for b in bundles)
    assert ranks == [0, 1, 2, 3] and engines == [[4], [5]]
    cfg = ClusterConfig(num_engines=2, num_trainer_ranks=4, device="gpu", placement="colocated")
    bundles, ranks, engines = bundles_for(cfg, "gpu")
    assert len(bundles) == 4 and engines == [[0], [1]]
    cfg = ClusterConfig(num_engines=3, num_trainer_ranks=2, placement="colocated", cpus_per_rank=0.5, cpus_per_engine=0.25)
    bundles, ranks, engines = bundles_for(cfg, "cpu")
    assert bundles == [{"CPU": 1.0}, {"CPU": 0.75}] and engines == [[0], [1], [0]]


def test_bundles_tensor_parallel_engines():
    # separate: each engine gets TP one-GPU bundles after the ranks'; its actor's CPUs sit in
    # the first (vLLM refuses bundles of more than one GPU).
    cfg = ClusterConfig(num_engines=2, num_trainer_ranks=2, device="gpu", engine_tensor_parallel=2,
                        cpus_per_rank=1, cpus_per_engine=2)
    bundles, ranks, engines = bundles_for(cfg, "gpu")
    assert ranks == [0, 1] and engines == [[2, 3], [4, 5]]
    assert bundles == [
        {"CPU": 1, "GPU": 1.0}, {"CPU": 1, "GPU": 1.0},
        {"CPU": 2, "GPU": 1.0}, {"GPU": 1.0},
        {"CPU": 2, "GPU": 1.0}, {"GPU": 1.0},
    ]
    assert sum(b["GPU"] for b in bundles) == 2 + 2 * 2
    # colocated: engine j on the GPUs of ranks j*TP .. j*TP+TP-1, its CPUs with rank j*TP.
    cfg = ClusterConfig(num_engines=2, num_trainer_ranks=4, device="gpu", placement="colocated",
                        engine_tensor_parallel=2, cpus_per_rank=1, cpus_per_engine=2)
    bundles, ranks, engines = bundles_for(cfg, "gpu")
    assert engines == [[0, 1], [2, 3]]
    assert bundles == [{"CPU": 3, "GPU": 1.0}, {"CPU": 1, "GPU": 1.0}, {"CPU": 3, "GPU": 1.0}, {"CPU": 1, "GPU": 1.0}]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"engine_tensor_parallel": 0}, "cluster.engine_tensor_parallel must be an integer >= 1"),
        ({"engine_tensor_parallel": 1.5}, "cluster.engine_tensor_parallel must be an integer >= 1"),
        ({"engine_tensor_parallel": 2, "device": "cpu"}, "engine_tensor_parallel=2 needs GPUs"),
        ({"engine_tensor_parallel": 2, "device": "gpu", "placement": "colocated", "num_engines": 2,
          "num_trainer_ranks": 3}, r"num_engines x cluster.engine_tensor_parallel \(2 x 2\) must be <= "),
        ({"engine_sleep_level": 0}, "cluster.engine_sleep_level must be 1 or 2"),
        ({"engine_sleep_level": True}, "cluster.engine_sleep_level must be 1 or 2"),
    ],
)
def test_cluster_config_tensor_parallel_and_sleep_checks(kw, match):
    with pytest.raises(ConfigError, match=match):
        ClusterConfig(**kw)


def test_cluster_config_accepts_tensor_parallel_layouts():
    ClusterConfig(engine_tensor_parallel=4, device="gpu", num_engines=8)
    ClusterConfig(engine_tensor_parallel=2, device="gpu", placement="colocated", num_engines=2, num_trainer_ranks=4)
    ClusterConfig(engine_tensor_parallel=2)  # device 'auto': checked against the cluster at start
    ClusterConfig(engine_sleep_level=2, placement="colocated")


def test_resolve_device_counts_tensor_parallel_gpus(monkeypatch):
    ray = pytest.importorskip("ray")
    from brorl.distributed.cluster import resolve_device

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 64.0, "GPU": 8.0})
    cfg = ClusterConfig(device="gpu", engine_tensor_parallel=2, num_engines=3, num_trainer_ranks=2)
    assert resolve_device(cfg) == "gpu"  # 2 + 3 x 2 = 8
    cfg = ClusterConfig(device="gpu", engine_tensor_parallel=2, num_engines=4, num_trainer_ranks=2)
    with pytest.raises(ConfigError, match="needs 10 GPUs, the cluster has 8"):
        resolve_device(cfg)
    # 'auto' on a cluster with GPUs runs the GPU checks it skipped at config time
    cfg = ClusterConfig(engine_tensor_parallel=4, placement="colocated", num_engines=2, num_trainer_ranks=4)
    with pytest.raises(ConfigError, match=r"\(2 x 4\) must be <="):
        resolve_device(cfg)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(ConfigError, match="needs GPUs and the cluster has none"):
        resolve_device(ClusterConfig(engine_tensor_parallel=2))
    assert resolve_device(ClusterConfig()) == "cpu"


def test_engine_llm_kwargs_and_env():
    from brorl.distributed.placement import WORKER_EXTENSION, engine_env, engine_llm_kwargs

    # One-device engines without sleep mode are built exactly as on one machine.
    for kw in ({}, {"placement": "colocated"}):
        cfg = ClusterConfig(**kw)
        assert engine_llm_kwargs(cfg, "cpu") == {} and engine_env(cfg, "cpu", [0]) == {}
    assert engine_llm_kwargs(ClusterConfig(device="gpu"), "gpu") == {}
    colocated = ClusterConfig(device="gpu", placement="colocated")
    assert engine_llm_kwargs(colocated, "gpu") == {"enable_sleep_mode": True}
    assert engine_env(colocated, "gpu", [0]) == {}
    tp = ClusterConfig(device="gpu", engine_tensor_parallel=4, num_engines=2)
    assert engine_llm_kwargs(tp, "gpu") == {
        "tensor_parallel_size": 4,
        "distributed_executor_backend": "ray",
        "worker_extension_cls": WORKER_EXTENSION,
    }
    assert engine_env(tp, "gpu", [5, 6, 7, 8]) == {
        "VLLM_RAY_BUNDLE_INDICES": "5,6,7,8",
        "VLLM_RAY_PER_WORKER_GPUS": "1.0",
    }
    tp_col = ClusterConfig(device="gpu", engine_tensor_parallel=2, placement="colocated", num_trainer_ranks=2)
    assert engine_llm_kwargs(tp_col, "gpu")["enable_sleep_mode"] is True
    # each worker takes half the GPU it shares with a trainer rank
    assert engine_env(tp_col, "gpu", [0, 1])["VLLM_RAY_PER_WORKER_GPUS"] == "0.5"
    # the extension class is importable by that name (vLLM resolves it in the workers)
    import importlib

    module, name = WORKER_EXTENSION.rsplit(".", 1)
    assert hasattr(importlib.import_module(module), name)


def test_engine_actor_resources():
    pytest.importorskip("ray")
    from brorl.distributed.placement import Placement

    def options(**kw):
        cfg = ClusterConfig(**kw)
        _, ranks, engines = bundles_for(cfg, "gpu")
        p = Placement(cfg, "gpu", None, ranks, engines)
        e, r = p.engine_options(0), p.rank_options(0)
        return e["num_gpus"], e["scheduling_strategy"].placement_group_bundle_index, r["num_gpus"]

    assert options(device="gpu") == (1.0, 1, 1.0)
    assert options(device="gpu", placement="colocated") == (0.5, 0, 0.5)
    # a tensor-parallel engine's actor takes no GPU: vLLM's workers take its bundles' GPUs
    assert options(device="gpu", engine_tensor_parallel=2, num_trainer_ranks=3) == (0.0, 3, 1.0)
    assert options(device="gpu", engine_tensor_parallel=2, placement="colocated", num_trainer_ranks=2) == (0.0, 0, 0.5)


def test_sync_ranks():
    from brorl.distributed.runtime import sync_ranks

    assert sync_ranks(3, 1) == ([1, 2, 3], 4)  # one-device engines: as before
    assert sync_ranks(2, 4) == ([1, 5], 9)  # every tensor-parallel worker is a member


class _FakeEngines:
    """Records the calls EnginePause makes, in order."""

    def __init__(self, log, released=True):
        self.log = log
        self.released = released

    def sleep_engines(self, level):
        self.log.append(("sleep", level))
        return [self.released, self.released]

    def wake_engines(self, tags):
        self.log.append(("wake", tags))


def test_engine_pause_sleeps_before_train_and_wakes_around_the_sync():
    from brorl.distributed.runtime import EnginePause

    log = []
    pause = EnginePause(_FakeEngines(log), level=2)
    m = pause.sleep()
    assert pause.asleep and log == [("sleep", 2)]
    assert m["engine_paused"] == 1.0 and m["engine_memory_released"] == 1.0 and m["time/engine_sleep"] >= 0
    log.append(("train", None))

    def sync():
        assert pause.asleep  # the KV cache is still released while weights load
        log.append(("sync", None))
        return {"weight_sync_s": 0.5}

    out = pause.around_sync(sync)
    assert log == [("sleep", 2), ("train", None), ("wake", ["weights"]), ("sync", None), ("wake", ["kv_cache"])]
    assert out["weight_sync_s"] == 0.5 and out["time/engine_wake"] >= 0
    assert not pause.asleep
    # Awake: a sync (e.g. after a restart) does not wake anything, and neither does wake().
    log.clear()
    assert pause.around_sync(lambda: {"weight_sync_s": 0.1}) == {"weight_sync_s": 0.1}
    assert pause.wake() == 0.0 and log == []
    # Generation asked for while asleep (no sync after the update) wakes everything at once.
    pause.sleep()
    pause.wake()
    assert log == [("sleep", 2), ("wake", None)] and not pause.asleep


def test_engine_pause_reports_engines_that_release_nothing():
    from brorl.distributed.runtime import EnginePause

    m = EnginePause(_FakeEngines([], released=False), level=1).sleep()
    assert m["engine_paused"] == 1.0 and m["engine_memory_released"] == 0.0


class _FakeVLLMWorker:
    """What WeightSyncExtension needs of vLLM's worker: rank, device, reload_weights."""

    def __init__(self, rank):
        self.rank = rank
        self.device = "cpu"
        self.loaded = {}

    def reload_weights(self, weights_iterator):
        for name, t in weights_iterator:  # lazily, as vLLM's loader pulls them
            self.loaded[name] = t.clone()


def test_worker_extension_receives_broadcast_buckets():
    """A tensor-parallel engine's worker joins the sync group at its own rank and loads every
    bucket rank 0 broadcasts (gloo, threads standing in for the processes)."""
    torch = pytest.importorskip("torch")
    import threading

    from brorl.distributed.actors import free_port
    from brorl.distributed.vllm_worker import WeightSyncExtension

    class Worker(_FakeVLLMWorker, WeightSyncExtension):
        pass

    weights = {"a": torch.randn(300), "b": torch.arange(40, dtype=torch.int64), "c": torch.randn(7, 9)}
    plan = ws.plan_buckets(ws.specs_of(weights.items()), 1024)
    assert len(plan) >= 2
    port = free_port()
    workers = [Worker(0), Worker(1)]  # TP=2 engine whose workers are sync ranks 1 and 2
    errors = []
    ranks = []

    def worker_side(w):
        try:
            ranks.append(w.brorl_init_sync_group("127.0.0.1", port, 1, 3, "gloo", 60))
            w.brorl_receive_broadcast(plan)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker_side, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    store, group = ws.new_sync_group("gloo", "127.0.0.1", port, 0, 3, 60)
    for bucket in plan:
        ws.broadcast_bucket(group, ws.pack_bucket(bucket, weights))
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(ranks) == [1, 2]
    for w in workers:
        assert set(w.loaded) == set(weights)
        for name, t in weights.items():
            assert torch.equal(w.loaded[name], t)


def test_gpu_config_is_the_papers_setting_on_64_gpus(tmp_path):
    from pathlib import Path

    from brorl.train.config import load_config

    model = tmp_path / "model"
    model.mkdir()
    for name in ("math.jsonl", "code.jsonl"):
        (tmp_path / name).write_text("")
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(
        root / "configs" / "brorl_ray_gpu.yaml",
        [
            f"model.path={model}",
            f"data.sources=[{{kind: jsonl, path: {tmp_path / 'math.jsonl'}}}, {{kind: jsonl, path: {tmp_path / 'code.jsonl'}}}]",
        ],
    )
    assert (cfg.algorithm.n, cfg.algorithm.prompts_per_step) == (512, 128)
    c = cfg.cluster
    assert (c.placement, c.device, c.engine_tensor_parallel) == ("separate", "gpu", 1)
    bundles, _, _ = bundles_for(c, "gpu")
    assert sum(b.get("GPU", 0) for b in bundles) == 64
    # The same 64 GPUs with two-GPU engines, as the config's comment suggests for larger models.
    from dataclasses import replace

    bundles, _, engines = bundles_for(replace(c, engine_tensor_parallel=2, num_engines=16), "gpu")
    assert sum(b.get("GPU", 0) for b in bundles) == 64 and all(len(e) == 2 for e in engines)


def test_transformers_engine_refuses_tensor_parallel():
    from types import SimpleNamespace

    from brorl.train.engines import make_generator

    with pytest.raises(ConfigError, match="engine_tensor_parallel > 1 needs generation.engine=vllm"):
        make_generator("unused", SimpleNamespace(engine="hf"), "float32", 64, 0,
                       llm_kwargs={"tensor_parallel_size": 2, "distributed_executor_backend": "ray"})
