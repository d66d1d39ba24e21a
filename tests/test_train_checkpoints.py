"""Checkpoint discovery lives in one module both the loop and the cluster runtime use."""

from __future__ import annotations

import subprocess
import sys

from brorl.train.checkpoints import latest_checkpoint


def test_latest_checkpoint_needs_the_marker_and_a_complete_directory(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    ck = tmp_path / "checkpoints"
    (ck / "step_000002").mkdir(parents=True)
    (ck / "latest").write_text("step_000002\n")
    assert latest_checkpoint(tmp_path) is None  # no state.json yet: being written
    (ck / "step_000002" / "state.json").write_text("{}")
    assert latest_checkpoint(str(tmp_path)) == ck / "step_000002"


def test_cluster_runtime_does_not_import_the_loop():
    """distributed/train.py used to import the loop's private helper (and the loop imports it):
    now neither needs the other to import."""
    code = ("import sys, brorl.distributed.train, brorl.distributed.runtime; "
            "print('brorl.train.loop' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
