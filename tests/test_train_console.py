"""The training console: library logs go to the run's log file, the console shows brorl's lines
and each real warning once."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from brorl.train.console import RunConsole


def test_benign_and_repeated_messages_go_to_the_file_only(tmp_path):
    out = io.StringIO()
    ds = logging.getLogger("DeepSpeed")
    before = (list(ds.handlers), ds.propagate, ds.level)
    console = RunConsole(stream=out).install()
    try:
        vllm_log = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
        vllm_log.warning("%s: Failed to load weights", "RotaryEmbedding")  # before the file is known
        # a library imported after install() creates its logger with its own stream handler
        ds.addHandler(logging.StreamHandler(io.StringIO()))
        ds.propagate = False
        console.attach(tmp_path / "train.log")
        for _ in range(3):  # one per weight sync
            vllm_log.warning("%s: Failed to load weights", "RotaryEmbedding")
        logging.getLogger("vllm.platforms.cpu").warning("Triton is not installed. triton-cpu is expected on x86 CPUs.")
        ds.setLevel(logging.INFO)  # DeepSpeed, once imported, sets WARNING on its logger
        ds.info("DeepSpeed info: version=0.0")
        for k in range(2):
            logging.getLogger("vllm.engine").warning("KV cache is %d%% full", 90 + k)  # real, repeated
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a real library warning", UserWarning, stacklevel=1)
        console.info("[brorl] step 1/2")
    finally:
        console.uninstall()
    shown = out.getvalue()
    text = (tmp_path / "train.log").read_text()
    assert "Failed to load weights" not in shown and "Triton" not in shown and "DeepSpeed info" not in shown
    assert shown.count("KV cache is") == 1 and "KV cache is 90% full" in shown
    assert "a real library warning" in shown
    assert "[brorl] step 1/2" in shown
    assert text.count("RotaryEmbedding: Failed to load weights") == 4
    for needle in ("Triton is not installed", "DeepSpeed info", "KV cache is 91% full", "a real library warning",
                   "[brorl] step 1/2"):
        assert needle in text, needle
    assert console.hidden == 7
    # every logger it touched is as it was
    assert (list(ds.handlers), ds.propagate, ds.level) == before


def test_a_handler_added_after_install_does_not_print(tmp_path):
    """DeepSpeed creates its logger with a stream handler while it is imported and warns in the
    same import, before anything could re-route it: the record still goes to the log file only."""
    out, theirs = io.StringIO(), io.StringIO()
    ds = logging.getLogger("DeepSpeed")
    before = (list(ds.handlers), ds.propagate, ds.level, list(ds.filters))
    console = RunConsole(stream=out).install()
    try:
        ds.addHandler(logging.StreamHandler(theirs))  # what its import does
        ds.propagate = False
        ds.warning("Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.")
        ds.warning("a real DeepSpeed warning")
        console.attach(tmp_path / "train.log")
    finally:
        console.uninstall()
    text = (tmp_path / "train.log").read_text()
    assert theirs.getvalue() == ""
    assert "Setting accelerator to CPU" in text and "Setting accelerator" not in out.getvalue()
    assert "a real DeepSpeed warning" in text and "a real DeepSpeed warning" in out.getvalue()
    assert (list(ds.handlers), ds.propagate, ds.level, list(ds.filters)) == before


def test_transformers_progress_bars_are_off_during_a_run_only():
    hf_logging = pytest.importorskip("transformers.utils.logging")
    hf_logging.enable_progress_bar()
    with RunConsole(stream=io.StringIO()):
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_console_is_readable(tmp_path):
    """`brorl train` for two steps with the default's two engine processes: the per-sync vLLM
    notice (logged in the engines' processes) is in train.log, not on the console; the console
    names the log file and the held-out numbers once each."""
    pytest.importorskip("vllm")
    pytest.importorskip("deepspeed")
    import yaml

    sys.path.insert(0, str(Path(__file__).parent))
    from train_fixtures import easy_config

    cfg = {"preset": "default", **easy_config(tmp_path, "console", algorithm__n=16, algorithm__prompts_per_step=2,
                                                data__eval_size=8, run__steps=2, run__plots=False,
                                                generation__local_engines=2)}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ)
    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "VLLM_CONFIGURE_LOGGING"):
        env.pop(var, None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    r = subprocess.run([sys.executable, "-m", "brorl.cli", "train", "--config", str(path)], env=env,
                       capture_output=True, text=True, timeout=800)
    assert r.returncode == 0, r.stderr[-3000:]
    shown = r.stdout + r.stderr
    log = (tmp_path / "console" / "train.log").read_text()
    assert "Failed to load weights" in log  # the engine really reloaded weights in place
    assert "Failed to load weights" not in shown
    assert shown.count("held-out pass@1 before training") == 1
    assert shown.count("held-out pass@1 after training") == 1
    assert f"log:     {(tmp_path / 'console' / 'train.log').resolve()}" in shown
    # one-off notices and per-file progress bars of the libraries stay off the console too
    for noise in ("Setting accelerator to CPU", "Loading weights", "Writing model shards",
                  "Loading safetensors checkpoint shards"):
        assert noise not in shown, noise
