"""The hook between the training loop and the cluster: ``brorl train ... cluster.address=...``.

:func:`place_parts` builds the same three parts the loop builds on one machine (the vLLM
generator, the reward router, the DeepSpeed learner), from the same config, but inside Ray
actors and tasks; the loop then runs unchanged on the driver. Paths handed to remote workers are
made absolute (their working directory is not the driver's); on a cluster of several nodes the
model directory and ``run.output_dir`` must be on a filesystem every node sees (checkpoints are
written by every rank).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shlex
from pathlib import Path
from typing import Any

from brorl.distributed.parts import DistributedParts
from brorl.train.checkpoints import latest_checkpoint

__all__ = ["place_parts", "resume_command"]


def resume_command(run_dir: Path, address: str) -> str:
    """The command that continues the run in ``run_dir`` from its latest checkpoint."""
    run_dir = Path(run_dir).resolve()
    return " ".join(
        [
            "brorl train --config",
            shlex.quote(str(run_dir / "config.yaml")),
            shlex.quote(f"run.output_dir={run_dir.parent}"),
            shlex.quote(f"run.name={run_dir.name}"),
            "run.resume=true",
            shlex.quote(f"cluster.address={address}"),
        ]
    )


def place_parts(cfg: Any, model_path: Path, max_model_len: int, lr: float, run_dir: Path,
                reward_fns: Any = ()) -> DistributedParts:
    """Engines, reward pool and trainer ranks for ``cfg`` (a ``TrainConfig`` whose
    ``cluster.address`` is set), built from the single-machine classes. ``reward_fns``: custom
    reward callables from ``brorl.train(reward_fn=...)``; they travel to the reward workers
    pickled (by value when defined in ``__main__``), the config's ``'module:function'`` names
    are imported there."""
    from brorl.train.engines import make_generator
    from brorl.train.learner import DeepSpeedLearner
    from brorl.train.rewards import make_reward_fn

    model_path = Path(model_path).resolve()
    c = cfg.cluster

    def hint() -> str:
        ck = latest_checkpoint(Path(run_dir))
        where = (
            f"The last complete checkpoint is {ck}."
            if ck is not None
            else "No checkpoint was completed yet; the resumed run starts from step 0."
        )
        return f"{where} Resume with: {resume_command(run_dir, c.address)}"

    # A reward task reserves a fraction of a CPU; its verifiers get one thread per reserved CPU.
    threads = max(1, math.floor(c.cpus_per_reward_task))
    return DistributedParts(
        c,
        generator_factory=functools.partial(
            # a cluster's engines are cluster.num_engines actors, each one vLLM engine
            make_generator, model_path, dataclasses.replace(cfg.generation, local_engines=1), cfg.model.dtype,
            max_model_len, cfg.run.seed
        ),
        reward_factory=functools.partial(make_reward_fn, cfg.reward, tuple(reward_fns), threads=threads, workers=threads),
        learner_factory=functools.partial(
            DeepSpeedLearner,
            model_path,
            cfg,
            lr,
            cfg.run.steps * cfg.algorithm.mini_batches,
            seed=cfg.run.seed,
        ),
        resume_hint=hint,
    )
