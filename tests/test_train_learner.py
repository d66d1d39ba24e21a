"""The DeepSpeed learner at world size 1 and 2 (torchrun, gloo): same batch, same update."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("deepspeed")

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(900)]
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from brorl.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def run_worker(tmp_path, tiny_dir, world, stage, kind="random", chunk=None):
    out = tmp_path / f"ws{world}_z{stage}_{kind}_c{chunk}.json"
    # keep the caller's PYTHONPATH: it decides which brorl checkout the workers import
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p))
    # An in-process learner earlier in this pytest session leaves its rendezvous variables in
    # os.environ; a child must pick its own port instead of colliding with that group.
    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if world == 1:
        cmd = [sys.executable, str(HERE / "train_fixtures.py"), str(tiny_dir), str(out), str(stage), kind]
        cmd += [] if chunk is None else [str(chunk)]
    else:
        import socket

        with socket.socket() as sock:  # a free port: the default 29500 may be taken by another job
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world), "--master_port", str(port),
               str(HERE / "train_fixtures.py"), str(tiny_dir), str(out), str(stage), kind]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def world_1(tmp_path_factory, tiny_dir):
    # one world-size-1 reference for both stages: the ZeRO stage does not change the math
    return run_worker(tmp_path_factory.mktemp("ws1"), tiny_dir, 1, 2)


@pytest.mark.parametrize("stage", [2, 3])
def test_world_size_2_matches_world_size_1(tmp_path, tiny_dir, world_1, world_1_full_logits, stage):
    # ZeRO-3 takes the full-logits path (its lm_head weight is partitioned outside the head's
    # forward): compare it with the same path at world size 1, so only the ranks differ
    one = world_1 if stage == 2 else world_1_full_logits
    two = run_worker(tmp_path, tiny_dir, 2, stage)
    assert (one["world"], two["world"]) == (1, 2)
    for k in ("loss", "pg_loss", "kl", "entropy", "clip_frac"):
        assert two["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-4, abs=1e-6), k
    assert one["metrics"]["micro_batches"] >= 2  # the token budget really split the batch
    for name, w in one["weights"].items():
        # Adam turns float-summation-order noise in near-zero gradients into updates of up to
        # ~lr; two steps at lr 1e-2 leave such elements within a few 1e-4
        np.testing.assert_allclose(np.asarray(two["weights"][name]), np.asarray(w), rtol=1e-4, atol=3e-4)


@pytest.fixture(scope="module")
def world_1_uneven(tmp_path_factory, tiny_dir):
    return run_worker(tmp_path_factory.mktemp("ws1u"), tiny_dir, 1, 2, "uneven")


@pytest.mark.parametrize("stage", [2, 3])
def test_ranks_with_fewer_rows_make_the_same_collective_calls(tmp_path, tiny_dir, world_1_uneven, stage):
    """Three distinct sequences of 100/90/80 tokens under a 100-token budget, then one distinct
    sequence: on 2 ranks one rank has fewer real micro-batches in the first mini-batch and none
    in the second. Its padding micro-batches run the same forward/backward with zero loss, so
    the gradient all-reduces (ZeRO-2) and parameter gathers (ZeRO-3) line up: the step ends,
    and matches world size 1."""
    one = world_1_uneven
    two = run_worker(tmp_path, tiny_dir, 2, stage, "uneven")
    assert two["metrics"]["micro_batches/rank0"] == two["metrics"]["micro_batches/rank1"] == 3
    # every distinct sequence was trained exactly once over the two ranks: 3 + 1
    assert one["metrics"]["rows_trained"] == two["metrics"]["rows_trained"] == 4
    for k in ("loss", "pg_loss", "kl", "entropy", "clip_frac", "logp_mismatch"):
        assert two["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-4, abs=1e-6), k
    assert one["metrics"]["clip_frac"] > 0  # the second mini-batch's update is off-policy and clipped
    for name, w in one["weights"].items():
        # Adam amplifies summation-order noise in near-zero gradients to ~lr-sized moves (see
        # above); under ZeRO-3 one element of 98,304 moved 4.3e-4 apart, the rest within 3e-4
        np.testing.assert_allclose(np.asarray(two["weights"][name]), np.asarray(w), rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def world_1_full_logits(tmp_path_factory, tiny_dir):
    # deepspeed.logits_chunk_tokens = 0: the full [tokens, vocabulary] logits
    return run_worker(tmp_path_factory.mktemp("ws1full"), tiny_dir, 1, 2, chunk=0)


def test_chunked_logprobs_update_matches_full_logits(world_1, world_1_full_logits):
    # world_1 runs with the default chunked log-probs
    plain = world_1_full_logits
    for k in ("loss", "pg_loss", "kl", "entropy", "clip_frac", "logp_mismatch"):
        # the second mini-batch starts from weights one update apart by float order: 1e-4 as across ranks
        assert world_1["metrics"][k] == pytest.approx(plain["metrics"][k], rel=1e-4, abs=1e-6), k
    for name, w in plain["weights"].items():
        # Adam amplifies summation-order noise in near-zero gradients (see above): 1e-3
        np.testing.assert_allclose(np.asarray(world_1["weights"][name]), np.asarray(w), rtol=1e-4, atol=1e-3)


def test_first_mini_batch_takes_its_old_logprobs_from_its_own_forward(world_1, world_1_uneven):
    """The old log-probs of a step's first mini-batch are the current policy's (no optimizer
    step yet): the no-grad old-log-prob pass runs only over the later mini-batches, and the
    update still matches world size 2 and the full-logits path (the tests above)."""
    for one in (world_1, world_1_uneven):
        m = one["metrics"]
        assert m["micro_batches_after_first_mini"] >= 1
        assert m["old_logp_forwards"] == m["micro_batches_after_first_mini"]
        assert m["old_logp_forwards"] < m["micro_batches"]


def test_one_rank_builds_no_deepspeed_comm_op(tmp_path):
    """A single rank never communicates: its start-up must not JIT-build DeepSpeed's CPU
    shared-memory all-reduce op (1-2 minutes of C++ compilation on a fresh machine)."""
    code = (
        "from brorl.train.learner import init_distributed\n"
        "print(init_distributed('gloo'))\n"
        "import deepspeed.comm.comm as cc\n"
        "print('shm', cc.cdb.shm_comm_op)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["TORCH_EXTENSIONS_DIR"] = str(tmp_path / "ext")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(0, 1)" in out.stdout and "shm None" in out.stdout, out.stdout
    assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").iterdir())
