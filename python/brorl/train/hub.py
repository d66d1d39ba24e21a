"""Hugging Face Hub ids for ``model.path`` and ``kind: hf`` data sources, resolved through the
Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``).

A cached repo is used without any network call, so ``HF_HUB_OFFLINE=1`` works once a model or
data set is in the cache; otherwise it is downloaded (``huggingface_hub.snapshot_download``),
unless offline, where the error says so and how to fix it. Local paths always win over ids.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from brorl.errors import ConfigError

__all__ = ["is_hub_id", "hub_offline", "resolve_hub_snapshot"]

# 'name' or 'org/name' as the Hub accepts them (letters, digits, '-', '_', '.'; no '--' / '..')
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a Hub repo id (it may still not exist)."""
    return bool(_HUB_ID.match(text)) and "--" not in text and ".." not in text and not text.endswith(".")


def hub_offline() -> bool:
    """Whether Hugging Face libraries are told not to use the network."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def resolve_hub_snapshot(repo_id: str, field: str, repo_type: str = "model", revision: str | None = None,
                         allow_download: bool = True, error: type[Exception] = ConfigError) -> Path:
    """The local snapshot directory of ``repo_id`` from the Hugging Face cache; downloaded
    when missing, online and ``allow_download``. ``error`` (default :class:`ConfigError`),
    naming ``field``, when it cannot be had."""
    try:
        import huggingface_hub
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise error(f"{field} = {repo_id!r}: Hub ids need the 'huggingface_hub' package "
                          "(installed with transformers: pip install 'brorl[train]')") from None
    kind = "data set" if repo_type == "dataset" else "model"
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, repo_type=repo_type, revision=revision,
                                                      local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    cache = os.environ.get("HF_HUB_CACHE") or str(Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if hub_offline() or not allow_download:
        raise error(
            f"{field} = {repo_id!r}: not a local directory, and the {kind} is not in the Hugging Face "
            f"cache ({cache}) while offline (HF_HUB_OFFLINE=1). Download it once with network access "
            f"(`hf download {'--repo-type dataset ' if repo_type == 'dataset' else ''}{repo_id}`), point "
            "HF_HOME at a cache that has it, or give a local directory."
        )
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, repo_type=repo_type, revision=revision))
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo: all mean "cannot have it"
        raise error(
            f"{field} = {repo_id!r}: not a local directory, and downloading the {kind} from the Hugging Face "
            f"Hub failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Check the id, "
            "your network and token (HF_TOKEN), or give a local directory."
        ) from None
