"""scripts/gpu_check.sh runs once, unattended, on a GPU machine without network: a config
mistake there costs the whole device lease. These tests check what can be checked on CPU: the
script's syntax, that both of its `brorl train` command lines are configs brorl accepts, and its
CPU mode end to end (the same steps, tiny shape, gloo)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from brorl.train.config import load_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _train_overrides(mode: str) -> list[str]:
    """The overrides the script passes to `brorl train` in `mode` ("cpu" or "gpu")."""
    text = SCRIPT.read_text()
    sizes = re.findall(r"TRAIN_SIZE=\(([^)]*)\)", text)
    assert len(sizes) == 2, "expected one TRAIN_SIZE for CPU mode and one for GPU mode"
    size = shlex.split(sizes[0] if mode == "cpu" else sizes[1])
    line = re.search(r"brorl\.cli train (.*?)\\\n\s*(.*?) \"\$\{TRAIN_SIZE", text, re.S)
    assert line, "the brorl train command line was not found"
    fixed = shlex.split(line.group(1) + " " + line.group(2))
    backend = "gloo" if mode == "cpu" else "nccl"
    return fixed + size + [f"deepspeed.backend={backend}"]


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_train_command_lines_are_valid_configs(mode: str) -> None:
    overrides = _train_overrides(mode)
    assert "generation.engine=hf" in overrides and "run.steps=2" in overrides
    cfg = load_config(overrides=overrides)  # raises ConfigError naming the field otherwise
    assert cfg.algorithm.prompts_per_step % cfg.algorithm.mini_batches == 0


def test_cpu_mode_runs_every_part(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "GPU_CHECK_CPU": "1",
        "SKIP_INSTALL": "1",
        "GPU_CHECK_PYTHONPATH": str(REPO / "python"),
        "GPU_CHECK_OUT": str(out),
        "PYTHON": sys.executable,
    }
    env.pop("MASTER_PORT", None)
    env.pop("MASTER_ADDR", None)
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else ""
    assert proc.returncode == 0, proc.stderr[-2000:] + summary
    assert "FAILED" not in summary and "failed" not in summary, summary
    # the learner part measured both paths; the train part finished its 2 steps
    assert "logits_chunk_tokens=0:" in summary and "logits_chunk_tokens=1024:" in summary, summary
    assert "step 1:" in summary and "step 2:" in summary, summary
