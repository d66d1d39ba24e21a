"""Where a run's checkpoints live, in one place: the training loop resumes from
:func:`latest_checkpoint` and the cluster runtime names it in its resume hint.

Layout: ``<run_dir>/checkpoints/step_NNNNNN/`` per checkpoint, ``state.json`` written last (a
directory without it is incomplete), and ``checkpoints/latest`` holding the newest complete
one's name.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["latest_checkpoint"]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of ``run_dir``, or None when there is none."""
    ck = Path(run_dir) / "checkpoints"
    marker = ck / "latest"
    if marker.is_file():
        p = ck / marker.read_text().strip()
        if (p / "state.json").is_file():
            return p
    return None
