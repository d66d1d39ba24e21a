"""``brorl sweep``: does broadening N pay in brorl's own training loop?

Runs the real trainer (vLLM engine, DeepSpeed learner, the recipe as configured) over a grid of
N at an equal number of generated samples per step (prompts per step = budget / N) and several
seeds, measures held-out pass@k and per-prompt pass rates on a fixed probe set of training
prompts as it goes, and writes one report directory (tables, plots, every run's metrics).
See ``docs/n_sweep.md``.
"""

from __future__ import annotations

from brorl.sweep.config import SweepConfig, load_sweep_config, run_configs
from brorl.sweep.runner import sweep

__all__ = ["SweepConfig", "load_sweep_config", "run_configs", "sweep"]
