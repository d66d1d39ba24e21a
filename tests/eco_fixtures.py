"""Shared pieces of the ecosystem tests: a Hugging Face hub cache the test builds (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache_entry(hf_home: Path, repo_id: str, files_from: Path, repo_type: str = "model") -> Path:
    """Put the files of ``files_from`` into ``hf_home``'s hub cache as repo ``repo_id`` (the
    layout a download leaves: refs/main -> snapshots/<commit>/...). Returns the snapshot."""
    prefix = {"model": "models", "dataset": "datasets"}[repo_type]
    repo = Path(hf_home) / "hub" / f"{prefix}--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / COMMIT
    shutil.copytree(files_from, snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snap
