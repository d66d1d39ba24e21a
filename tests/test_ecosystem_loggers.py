"""``run.loggers``: TensorBoard and Weights & Biases beside metrics.jsonl; W&B in offline mode
(WANDB_MODE=offline, files under the run directory, no network), project/name/tags passed on,
a resumed run continues the same W&B run."""

from __future__ import annotations

import json

import pytest

from brorl.errors import ConfigError
from brorl.train import config as C

wandb = pytest.importorskip("wandb")


def _rows():
    return [{"step": s, "reward_mean": 0.125 * s, "time/step": 2.5, "kl": float("nan")} for s in (1, 2, 3)]


def test_config_validation():
    cfg = C.load_config(overrides=["run.loggers=[tensorboard, wandb]", "run.wandb.project=proj",
                                   "run.wandb.tags=[a, b]", "run.wandb.mode=offline"])
    assert cfg.run.loggers == ["tensorboard", "wandb"] and cfg.run.wandb.tags == ["a", "b"]
    assert C.load_config().run.loggers == ["tensorboard"]
    with pytest.raises(ConfigError, match="run.loggers = \\['mlflow'\\]"):
        C.load_config(overrides=["run.loggers=[mlflow]"])
    with pytest.raises(ConfigError, match="run.wandb.mode = 'cloud'"):
        C.load_config(overrides=["run.wandb.mode=cloud"])


def test_wandb_offline_and_tensorboard_beside_metrics_jsonl(tmp_path, monkeypatch):
    from brorl.train.loop import _Log

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))  # ours goes to the run dir anyway
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = C.load_config(overrides=["run.loggers=[tensorboard, wandb]", "run.wandb.project=brorl-tests",
                                   "run.wandb.name=eco-run", "run.wandb.tags=[ecosystem-tag]"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = _Log(run_dir, cfg, rank=0)
    for r in _rows()[:2]:
        log.write(r)
    log.close()
    rid = (run_dir / "wandb_id").read_text()
    # resuming the run directory continues the same W&B run
    log = _Log(run_dir, cfg, rank=0)
    log.write(_rows()[2])
    log.close()
    assert (run_dir / "wandb_id").read_text() == rid
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").iterdir())
    # one offline W&B run id, written twice (first run, then the resumed one)
    runs = [p for p in (run_dir / "wandb").iterdir() if p.name.startswith("offline-run-") and not p.is_symlink()]
    assert runs and all(rid in p.name for p in runs), runs
    logs = b"".join(f.read_bytes() for p in runs for f in p.glob("run-*.wandb"))
    # the offline log holds the metrics (NaN values are left out), the run's name, tags, project
    assert b"reward_mean" in logs and b"0.25" in logs and b"time/step" in logs and b'"kl"' not in logs
    assert b"eco-run" in logs and b"ecosystem-tag" in logs and b"brorl-tests" in logs
    # (the resumed run's own values reach the offline file through W&B's background writer,
    # whose flush at close is not guaranteed under load: metrics.jsonl above holds step 3)


def test_tensorboard_off_and_wandb_only(tmp_path, monkeypatch):
    from brorl.train.loop import _Log

    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = C.load_config(overrides=["run.loggers=[wandb]", "run.wandb.mode=offline"])
    log = _Log(tmp_path, cfg, rank=0)
    log.write(_rows()[0])
    log.close()
    assert not (tmp_path / "tensorboard").exists() and (tmp_path / "wandb").is_dir()
    # other ranks write nothing
    other = tmp_path / "rank1"
    other.mkdir()
    log = _Log(other, cfg, rank=1)
    log.write(_rows()[0])
    log.close()
    assert list(other.iterdir()) == []
