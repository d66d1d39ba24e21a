"""``brorl train`` under ``torchrun --nproc_per_node 2`` on CPU: the whole loop with two DeepSpeed
ranks over gloo (rank 0 owns the vLLM engine, in a child process; the step's batch is
broadcast; both ranks update; rank 0 syncs its engine, writes metrics and the run state; both
write their checkpoint shards), checked against the world-size-1 run of the same seed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")
pytest.importorskip("vllm")

from train_fixtures import easy_config, max_logprob_gap  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(900)]

# Small enough for 2 cores: N=16 x 2 prompts, checkpoints every step, and a tiny held-out set so
# the rank-0 evaluation runs too.
SMALL = {"algorithm__n": 16, "algorithm__prompts_per_step": 2, "data__eval_size": 8, "run__steps": 2,
         "run__save_every": 1, "run__plots": False}


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def brorl_train(out_dir: Path, name: str, world: int, **over) -> Path:
    """Run ``brorl train --config`` as a user would: under torchrun for world > 1. Returns the
    run directory."""
    cfg = {"preset": "default", **easy_config(out_dir, name, **{**SMALL, **over})}
    import yaml

    path = out_dir / f"{name}-{world}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ)
    # an in-process run earlier in this pytest session leaves its rendezvous variables behind
    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    cli = ["-m", "brorl.cli", "train", "--config", str(path)]
    if world == 1:
        cmd = [sys.executable, *cli]
    else:
        with socket.socket() as sock:  # a free port: the default 29500 may be taken by another job
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world),
               "--master_port", str(port), *cli]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    if world > 1:
        # rank 0 speaks for the job; the other rank prints no summary of its own
        assert r.stdout.count("[brorl] done: ") == 1, r.stdout[-2000:]
    return out_dir / name


@pytest.fixture(scope="module")
def world2(tmp_path_factory):
    return brorl_train(tmp_path_factory.mktemp("ws2"), "ws2", 2, run__eval_before=True, run__eval_after=True)


@pytest.fixture(scope="module")
def world1(tmp_path_factory):
    return brorl_train(tmp_path_factory.mktemp("ws1"), "ws1", 1, run__steps=1, run__eval_before=False,
                       run__eval_after=False)


def test_world_size_2_runs_the_whole_loop(world2):
    from brorl.train.loop import METRIC_FIELDS

    rows = read_rows(world2)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert not [k for k in METRIC_FIELDS if k not in r]
        assert r["world_size"] == 2
        assert math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0
        # both ranks trained: each packed and back-propagated its own micro-batches
        assert r["micro_batches/rank0"] >= 1 and r["micro_batches/rank1"] >= 1, r
        assert r["rollouts_trained"] == 16 * r["groups_kept"] > 0
        assert r["time/generate"] > 0 and r["time/train"] > 0 and r["time/weight_sync"] > 0
    # The engine samples step 2 with the weights synced after step 1's update: the trainer's
    # log-probs of those tokens equal the engine's (fp32 noise, ~3e-7), although the update moved
    # them by ~sqrt(2 KL) ~ 0.2 (the reference is still the start model at step 2). Without the
    # sync the mismatch would be of that size.
    assert rows[1]["kl"] > 1e-3
    assert rows[1]["logp_mismatch"] < 1e-5 < 1e-2 * math.sqrt(2 * rows[1]["kl"])
    ck = world2 / "checkpoints"
    assert sorted(p.name for p in ck.glob("step_*")) == ["step_000001", "step_000002"]
    assert (ck / "latest").read_text() == "step_000002"
    # each rank wrote its ZeRO optimizer shard
    shards = sorted(p.name for p in (ck / "step_000002" / "learner").glob("zero_pp_rank_*_optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    ev = json.loads((world2 / "eval.json").read_text())
    assert 0 <= ev["pass1_before"] <= 1 and 0 <= ev["pass1_after"] <= 1
    assert any(p.name.startswith("events.out.tfevents") for p in (world2 / "tensorboard").iterdir())


def test_first_step_matches_world_size_1(world1, world2):
    """Same seed, same config: the rollouts of step 1 are identical (rank 0's engine is the
    single-process engine in a child process, sampling from the same seeded generator), so reward
    and lengths are equal exactly; the update differs only in float summation order (micro-batches
    split over two ranks, gradients averaged by all-reduce). Step 1's loss is ~0 (ratio 1,
    advantages normalised to zero mean), so it is compared in absolute terms; measured gaps are
    ~1e-8 on the loss and ~1e-7 relative on grad norm and entropy."""
    one, two = read_rows(world1)[0], read_rows(world2)[0]
    assert one["world_size"] == 1 and two["world_size"] == 2
    for k in ("reward_mean", "pass_rate", "groups_kept", "rollouts_trained", "response_len_mean"):
        assert two[k] == one[k], k
    assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
    for k in ("grad_norm", "entropy", "logp_mismatch"):
        assert two[k] == pytest.approx(one[k], rel=1e-4, abs=1e-7), k


def test_resume_at_world_size_2_reproduces_next_step(world2, tmp_path):
    # a run killed after step 1: its step-1 checkpoint and first metrics line are all that is left
    d = tmp_path / "ws2"
    shutil.copytree(world2, d)
    shutil.rmtree(d / "checkpoints" / "step_000002")
    (d / "checkpoints" / "latest").write_text("step_000001")
    rows = read_rows(world2)
    (d / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    brorl_train(tmp_path, "ws2", 2, run__eval_after=False)
    again = read_rows(d)
    assert [r["step"] for r in again] == [1, 2]
    a, b = rows[1], again[1]
    for k in ("reward_mean", "pass_rate", "groups_kept", "response_len_mean", "micro_batches/rank1"):
        assert b[k] == a[k], k
    for k in ("loss", "kl", "entropy", "grad_norm", "logp_mismatch"):
        assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-7), k


def test_zero3_world_size_2(world1, tmp_path):
    """ZeRO-3 shards the parameters: gathering them for the engine is a collective every rank
    joins (only rank 0 has an engine)."""
    d = brorl_train(tmp_path, "z3", 2, deepspeed__zero_stage=3, run__save_every=0, run__eval_before=False,
                    run__eval_after=False)
    rows = read_rows(d)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["kl"] > 1e-3 and rows[1]["logp_mismatch"] < 1e-5  # synced (see above)
    one = read_rows(world1)[0]
    assert rows[0]["reward_mean"] == one["reward_mean"]
    assert rows[0]["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
    assert (d / "checkpoints" / "latest").read_text() == "step_000002"


def test_engine_process_holds_the_trained_weights(world2):
    """The child-process engine rank 0 uses, loaded with the run's final weights over its
    shared-memory buckets: vLLM's parameters equal the checkpoint's."""
    from transformers import AutoModelForCausalLM

    from brorl.train.config import from_dict
    from brorl.train.engines import EngineProcess
    from brorl.train.loop import resolve_model

    start = resolve_model(from_dict(easy_config(world2.parent, "x")), None, print)
    states = list((world2 / "checkpoints" / "step_000002" / "learner").glob("*model_states.pt"))
    final = {k: v.float() for k, v in torch.load(states[0], map_location="cpu", weights_only=False)["module"].items()}
    model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32).eval()
    res = model.load_state_dict(final, strict=False)
    assert not res.unexpected_keys and all("rotary" in k for k in res.missing_keys), res
    prompts = [[5, 6, 7, 8], [9, 10, 11]]
    # small buckets: the weights cross in several pieces
    gen = EngineProcess(start, kv_cache_gib=1, max_num_seqs=64, max_model_len=64, weight_bucket_mb=1)
    try:

        def gap() -> float:
            return max_logprob_gap(gen, model, prompts)

        assert gap() > 1e-3  # the engine starts from the pre-training weights
        gen.update_weights(list(final.items()))
        engine = gen.engine_weights()
        # parameters vLLM keeps in their HF layout are bit-identical ...
        for name in ("model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight"):
            np.testing.assert_array_equal(engine[name].numpy(), final[name].numpy())
        # ... and the linear layers, which the CPU backend repacks, act identically
        assert gap() < 2e-4
    finally:
        gen.close()
