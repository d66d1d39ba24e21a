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


def run_worker(tmp_path, tiny_dir, world, stage, chunk=None):
    out = tmp_path / f"ws{world}_z{stage}_c{chunk}.json"
    # the tests' helpers, then whatever brorl the caller imports (a source tree on PYTHONPATH)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    # An in-process learner earlier in this pytest session leaves its rendezvous variables in
    # os.environ; a child must pick its own port instead of colliding with that group.
    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if world == 1:
        cmd = [sys.executable, str(HERE / "train_fixtures.py"), str(tiny_dir), str(out), str(stage)]
        cmd += [] if chunk is None else [str(chunk)]
    else:
        import socket

        with socket.socket() as sock:  # a free port: the default 29500 may be taken by another job
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world), "--master_port", str(port),
               str(HERE / "train_fixtures.py"), str(tiny_dir), str(out), str(stage)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def world_1(tmp_path_factory, tiny_dir):
    # one world-size-1 reference for both stages: the ZeRO stage does not change the math
    return run_worker(tmp_path_factory.mktemp("ws1"), tiny_dir, 1, 2)


@pytest.mark.parametrize("stage", [2, 3])
def test_world_size_2_matches_world_size_1(tmp_path, tiny_dir, world_1, stage):
    one = world_1
    two = run_worker(tmp_path, tiny_dir, 2, stage)
    assert (one["world"], two["world"]) == (1, 2)
    for k in ("loss", "pg_loss", "kl", "entropy", "clip_frac"):
        assert two["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-4, abs=1e-6), k
    assert one["metrics"]["micro_batches"] >= 2  # the token budget really split the batch
    for name, w in one["weights"].items():
        # Adam turns float-summation-order noise in near-zero gradients into updates of up to
        # ~lr; two steps at lr 1e-2 leave such elements within a few 1e-4
        np.testing.assert_allclose(np.asarray(two["weights"][name]), np.asarray(w), rtol=1e-4, atol=3e-4)


def test_chunked_logprobs_update_matches_full_logits(tmp_path, tiny_dir, world_1):
    # world_1 runs with the default chunked log-probs; 0 = full [tokens, vocabulary] logits
    plain = run_worker(tmp_path, tiny_dir, 1, 2, chunk=0)
    for k in ("loss", "pg_loss", "kl", "entropy", "clip_frac", "logp_mismatch"):
        assert world_1["metrics"][k] == pytest.approx(plain["metrics"][k], rel=1e-5, abs=1e-6), k
    for name, w in plain["weights"].items():
        np.testing.assert_allclose(np.asarray(world_1["weights"][name]), np.asarray(w), rtol=1e-4, atol=3e-4)
