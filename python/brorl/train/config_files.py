"""Config files by path or by name. The example configs ship inside the package
(``brorl/configs/*.yaml``; a clone's ``configs/`` points at the same directory), so
``--config smollm2_135m_cpu`` works from a wheel as well as from a clone."""

from __future__ import annotations

from pathlib import Path

from brorl.errors import ConfigError

__all__ = ["SHIPPED_DIR", "shipped_configs", "resolve_config_path", "rebase_data_paths"]

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "configs"


def shipped_configs() -> dict[str, Path]:
    """Name (file stem) -> path of every example config shipped with brorl."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.yaml"))}


def resolve_config_path(path: str | Path) -> Path:
    """``path`` when it is a file; else, for a bare name (``smollm2_135m_cpu``, with or without
    ``.yaml``), the shipped config of that name; else a ConfigError listing the names."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = shipped_configs()
    if len(p.parts) == 1:
        stem = p.name[: -len(p.suffix)] if p.suffix in (".yaml", ".yml") else p.name
        if stem in shipped:
            return shipped[stem]
    names = ", ".join(shipped) or "none"
    raise ConfigError(f"--config: {str(path)!r} does not exist (neither a file nor the name of a shipped config: {names})")


def rebase_data_paths(loaded: dict, config_file: Path) -> dict:
    """Relative data-source paths of a config file that do not exist from the current directory
    but do next to the file are read from there, so a config and its data travel together."""
    sources = (loaded.get("data") or {}).get("sources") if isinstance(loaded.get("data"), dict) else None
    if not isinstance(sources, list):
        return loaded
    here = config_file.resolve().parent
    for s in sources:
        if isinstance(s, dict) and isinstance(s.get("path"), str):
            p = Path(s["path"])
            if not p.is_absolute() and not p.exists() and (here / p).exists():
                s["path"] = str(here / p)
    return loaded
