"""``model.path`` (train) and ``--model`` (eval) accept a Hugging Face Hub id, resolved through
the Hugging Face cache: offline (HF_HUB_OFFLINE=1) from a cache the test builds in a temporary
HF_HOME, and a clear error naming the field when the model is not cached. Each case runs in a
fresh interpreter, because huggingface_hub reads HF_HOME when it is imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers")

from eco_fixtures import hub_cache_entry  # noqa: E402

CODE = r"""
import json, sys
from pathlib import Path
from brorl.errors import ConfigError, InvalidArgumentError
from brorl.train.config import load_config
from brorl.train.loop import resolve_model
from brorl.eval import engines
from transformers import AutoTokenizer

out = {}
cfg = load_config(overrides=["model.path=someorg/tiny-llama"])
snap = resolve_model(cfg, None, print)
out["train_dir"] = str(snap)
out["vocab"] = AutoTokenizer.from_pretrained(snap).vocab_size
out["eval_dir"] = str(engines.resolve_model_dir("someorg/tiny-llama"))
try:
    load_config(overrides=["model.path=someorg/not-cached"])
except ConfigError as e:
    out["train_err"] = str(e)
try:
    engines.resolve_model_dir("someorg/not-cached")
except InvalidArgumentError as e:
    out["eval_err"] = str(e)
try:
    load_config(overrides=["model.path=not a path or id"])
except ConfigError as e:
    out["shape_err"] = str(e)
print("RESULT " + json.dumps(out))
"""


def test_hub_id_resolves_offline_from_the_cache_in_train_and_eval(tmp_path):
    from brorl.train.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "m", seed=0)
    hf_home = tmp_path / "hf"
    snap = hub_cache_entry(hf_home, "someorg/tiny-llama", model)
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    env.pop("HF_HUB_CACHE", None)
    r = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    out = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["train_dir"] == str(snap) and out["eval_dir"] == str(snap)
    assert out["vocab"] > 100
    for key, field in (("train_err", "model.path"), ("eval_err", "--model")):
        msg = out[key]
        assert field in msg and "'someorg/not-cached'" in msg and "HF_HUB_OFFLINE=1" in msg, msg
        assert str(hf_home / "hub") in msg, msg  # says which cache it looked in
    assert "model.path = 'not a path or id'" in out["shape_err"] and "neither a directory nor a Hub model id" in out["shape_err"]


def test_hub_id_shape():
    from brorl.train.hub import is_hub_id

    for ok in ("Qwen/Qwen2.5-0.5B", "gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        assert is_hub_id(ok), ok
    for bad in ("/abs/path", "./rel", "a/b/c", "org/na--me", "x..y", "with space", ""):
        assert not is_hub_id(bad), bad
