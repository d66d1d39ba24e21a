"""The sweep's typed config and the per-run training configs it derives.

A sweep YAML has two sections::

    sweep:            # the grid and the measurements (SweepConfig below)
      ns: [16, 64, 256, 1024]
      samples_per_step: 1024
      seeds: [0, 1, 2]
    train:            # the training recipe as configured: a preset plus overrides,
      preset: default # exactly what `brorl train --config` would read
      data: {...}

Every run gets the ``train`` recipe unchanged except for: ``algorithm.n = N``,
``algorithm.prompts_per_step = samples_per_step / N``, ``run.seed``, ``run.steps``, the run
directory, and the learning rate by the paper's square-root rule (below). All runs start from
the same model (the built-in one is warmed up once, with the recipe's ``run.seed``).

Learning rate: lr = lr0 * sqrt(B / B0) with B = N * prompts_per_step the rollout batch
(``brorl.train.config.effective_lr``). B0 is the recipe's own batch (its n * prompts_per_step)
unless the recipe sets ``optim.lr_ref_batch``. At an equal budget B = samples_per_step for
every N, so every N trains at the same lr.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brorl.errors import ConfigError

__all__ = ["SweepConfig", "RunSpec", "load_sweep_config", "run_configs", "run_name", "base_train_dict"]


def _f(default: Any, help: str) -> Any:
    if isinstance(default, list):
        items = list(default)

        def fresh() -> list:
            return list(items)

        return field(default_factory=fresh, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class SweepConfig:
    ns: list = _f([16, 64, 256, 1024], "Values of N (rollouts per prompt); each must divide samples_per_step.")
    samples_per_step: int = _f(1024, "Generated samples per step for every N (prompts per step = this / N).")
    seeds: list = _f([0, 1, 2], "Seeds (data order, sampling, learner init); every N runs every seed.")
    steps: int = _f(8, "Training steps of every run.")
    eval_every: int = _f(2, "Evaluate held-out pass@k and the probe set every this many steps (and at 0 and the end).")
    eval_prompts: int = _f(64, "Held-out prompts (never in training) used for pass@k.")
    eval_samples: int = _f(32, "Samples per held-out prompt; pass@k is reported for k = 1, 2, 4, ... up to this.")
    probe_prompts: int = _f(32, "Fixed training prompts whose per-prompt pass rates are tracked (the probe set).")
    probe_samples: int = _f(32, "Samples per probe prompt.")
    wide_prompts: int = _f(16, "Wide pass@k: the first this many held-out prompts, measured at the start (once per sweep) and at every run's end.")
    wide_samples: int = _f(1024, "Wide pass@k: samples per prompt (pass@k for k = 1, 2, 4, ... up to this); 0 turns the wide measurement off.")
    table1_small_n: int = _f(16, "Table-1 comparison: the small-N arm (ProRL's N).")
    table1_large_n: int | None = _f(None, "Table-1 comparison: the large-N arm (default: the largest N).")
    output_dir: str = _f("runs/n_sweep", "Report directory; runs go to <output_dir>/runs/n<N>_seed<s>.")

    def __post_init__(self) -> None:
        validate_sweep(self)


def _check(cond: bool, name: str, value: Any, what: str) -> None:
    if not cond:
        raise ConfigError(f"sweep.{name} = {value!r}: {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_sweep(c: SweepConfig) -> SweepConfig:
    _check(isinstance(c.ns, list) and len(c.ns) >= 1 and all(_is_int(n) for n in c.ns), "ns", c.ns,
           "must be a non-empty list of integers")
    _check(len(set(c.ns)) == len(c.ns), "ns", c.ns, "values must be distinct")
    _check(_is_int(c.samples_per_step) and c.samples_per_step >= 2, "samples_per_step", c.samples_per_step,
           "must be an integer >= 2")
    for n in c.ns:
        _check(n >= 2, "ns", c.ns, f"N={n}: need at least 2 rollouts per prompt (a group baseline)")
        _check(c.samples_per_step % n == 0, "ns", c.ns,
               f"N={n} does not divide samples_per_step={c.samples_per_step}: prompts per step must be whole")
    _check(isinstance(c.seeds, list) and len(c.seeds) >= 1 and all(_is_int(s) for s in c.seeds), "seeds", c.seeds,
           "must be a non-empty list of integers")
    _check(len(set(c.seeds)) == len(c.seeds), "seeds", c.seeds, "values must be distinct")
    for name in ("steps", "eval_every", "eval_prompts", "eval_samples", "probe_prompts", "probe_samples"):
        v = getattr(c, name)
        _check(_is_int(v) and v >= 1, name, v, "must be an integer >= 1")
    for name in ("wide_prompts", "wide_samples"):
        v = getattr(c, name)
        _check(_is_int(v) and v >= 0, name, v, "must be an integer >= 0 (wide_samples 0: no wide measurement)")
    _check(c.wide_samples == 0 or c.wide_samples >= 2, "wide_samples", c.wide_samples, "must be 0 (off) or >= 2")
    _check(c.wide_samples == 0 or c.wide_prompts <= c.eval_prompts, "wide_prompts", c.wide_prompts,
           f"must be <= eval_prompts={c.eval_prompts} (the wide set is the first held-out prompts)")
    _check(c.wide_samples == 0 or c.wide_prompts >= 1, "wide_prompts", c.wide_prompts,
           "must be >= 1 when wide_samples > 0")
    large = c.table1_large_n if c.table1_large_n is not None else max(c.ns)
    _check(c.table1_small_n in c.ns, "table1_small_n", c.table1_small_n, f"must be one of ns={c.ns}")
    _check(large in c.ns, "table1_large_n", c.table1_large_n, f"must be one of ns={c.ns}")
    return c


def run_name(n: int, seed: int) -> str:
    return f"n{n}_seed{seed}"


def load_sweep_config(path: str | Path | None = None, overrides: list[str] | None = None) -> tuple[SweepConfig, dict]:
    """(SweepConfig, the training recipe as a nested dict) from a sweep YAML (or the defaults:
    the built-in default recipe) plus ``sweep.x=...`` / ``train.a.b=...`` overrides."""
    import yaml

    from brorl.train.config import apply_overrides

    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config: file {str(p)!r} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"--config {p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config {p}: expected a mapping with 'sweep' and 'train' sections")
    unknown = set(data) - {"sweep", "train"}
    if unknown:
        raise ConfigError(f"--config: unknown top-level keys {sorted(unknown)}; use 'sweep' and 'train'")
    for item in overrides or []:
        head = item.split("=", 1)[0].split(".", 1)[0]
        if head not in ("sweep", "train"):
            raise ConfigError(f"override {item!r}: start the key with 'sweep.' or 'train.'")
    data = apply_overrides(data, overrides or [])
    sw = data.get("sweep") or {}
    if not isinstance(sw, dict):
        raise ConfigError("sweep: expected a mapping")
    names = {f.name for f in dataclasses.fields(SweepConfig)}
    bad = set(sw) - names
    if bad:
        raise ConfigError(f"sweep: unknown fields {sorted(bad)}; known: {sorted(names)}")
    cfg = SweepConfig(**sw)
    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError("train: expected a mapping (a training config, as `brorl train --config` reads)")
    base_train_dict(train)  # refuse a bad recipe now, not after the first run
    return cfg, copy.deepcopy(train)


def base_train_dict(train: dict) -> dict:
    """The recipe resolved over its preset (default: 'default'), validated."""
    from brorl.train.config import _merge, from_dict, preset, validate

    t = copy.deepcopy(train)
    name = t.pop("preset", "default")
    merged = _merge(preset(str(name)), t)
    validate(from_dict(merged))
    return merged


@dataclass(frozen=True)
class RunSpec:
    n: int
    seed: int
    prompts_per_step: int
    lr: float  # after the square-root rule
    name: str
    train: dict  # the run's full training config (nested dict)


def run_configs(cfg: SweepConfig, train: dict, model_path: str | None = None) -> list[RunSpec]:
    """Every run of the grid, in run order (seeds outer, so a partial sweep still covers every
    N)."""
    from brorl.train.config import _merge, effective_lr, from_dict, validate

    base = base_train_dict(train)
    a = base.get("algorithm", {})
    ref_batch = base.get("optim", {}).get("lr_ref_batch")
    if ref_batch is None:
        # the paper's rule relative to the recipe's own rollout batch
        ref_batch = int(a.get("n", 256)) * int(a.get("prompts_per_step", 32))
    out = []
    root = Path(cfg.output_dir) / "runs"
    for seed in cfg.seeds:
        for n in cfg.ns:
            upd: dict = {
                "algorithm": {"n": n, "prompts_per_step": cfg.samples_per_step // n},
                "optim": {"lr_ref_batch": ref_batch},
                "run": {"seed": seed, "steps": cfg.steps, "output_dir": str(root), "name": run_name(n, seed),
                        "resume": False, "eval_before": False, "eval_after": False, "eval_every": 0,
                        "save_every": 0, "keep_checkpoints": 1, "progress": False},
            }
            if model_path is not None:
                upd["model"] = {"path": str(model_path)}
            d = _merge(base, upd)
            tc = validate(from_dict(d))
            out.append(RunSpec(n, seed, cfg.samples_per_step // n, effective_lr(tc), run_name(n, seed), d))
    return out
