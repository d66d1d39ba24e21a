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
    assert ranks == [0, 1, 2, 3] and engines == [4, 5]
    cfg = ClusterConfig(num_engines=2, num_trainer_ranks=4, device="gpu", placement="colocated")
    bundles, ranks, engines = bundles_for(cfg, "gpu")
    assert len(bundles) == 4 and engines == [0, 1]
    cfg = ClusterConfig(num_engines=3, num_trainer_ranks=2, placement="colocated", cpus_per_rank=0.5, cpus_per_engine=0.25)
    bundles, ranks, engines = bundles_for(cfg, "cpu")
    assert bundles == [{"CPU": 1.0}, {"CPU": 0.75}] and engines == [0, 1, 0]


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
    assert (c.placement, c.device) == ("separate", "gpu")
    bundles, _, _ = bundles_for(c, "gpu")
    assert sum(b.get("GPU", 0) for b in bundles) == 64
