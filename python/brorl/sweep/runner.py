"""Running the grid: each run is the real ``brorl train`` loop (:class:`brorl.train.loop.Trainer`)
with measurements taken through the loop's own engine between steps.

The measurements use the engine that is already loaded with the current weights (after the
step's weight sync), so they cost generation time only; that time is kept out of the runs'
wall-time axis. Per measurement: every held-out prompt's number of correct samples (pass@k
for k = 1, 2, 4, ... up to ``eval_samples``, unbiased estimator) and every probe prompt's.

The wide measurement (``sweep.wide_samples`` > 0): the first ``wide_prompts`` held-out prompts
x ``wide_samples`` samples each, through the run's engine, giving unbiased pass@k for k up to
``wide_samples``. It is taken once for the common starting model (by the first run of the
sweep's output directory that finds no ``wide_start.json``; its seed does not depend on the
run, so every run would draw the identical samples) and at the end of every run. It is
generated in chunks of at most ``samples_per_step`` samples (the size the training steps
already generate), and its time is kept out of the training wall time like the other
measurements.

A finished run leaves ``sweep_run.json`` in its directory; running the sweep again skips it
(so the grid can be run in chunks, e.g. one ``--only`` run per command) and an unfinished one
starts over.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brorl.sweep.config import RunSpec, SweepConfig, load_sweep_config, run_configs
from brorl.train.interfaces import Prompt

__all__ = ["sweep", "per_prompt_correct", "pass_at_ks", "ks_up_to", "run_one", "DONE_FILE", "WIDE_START_FILE"]

DONE_FILE = "sweep_run.json"
WIDE_START_FILE = "wide_start.json"



def step_samples(row: dict, n: int) -> int:
    """Samples a step generated: ``alloc/samples`` where the loop counted them (adaptive N gives
    groups of different sizes), else groups x N."""
    counted = row.get("alloc/samples")
    if counted is not None and math.isfinite(float(counted)):
        return int(counted)
    return int(float(row.get("groups_generated") or 0)) * n


def ks_up_to(samples: int) -> list[int]:
    """1, 2, 4, ... below ``samples``, then ``samples``."""
    ks, k = [], 1
    while k < samples:
        ks.append(k)
        k *= 2
    return ks + [samples]


def pass_at_ks(correct: np.ndarray, samples: int) -> dict[str, float]:
    """Mean unbiased pass@k over prompts, each with ``samples`` samples of which ``correct[i]``
    are right, for k in :func:`ks_up_to`."""
    from brorl import pass_at_k

    c = np.asarray(correct, dtype=np.int64)
    sizes = np.full(len(c), samples, dtype=np.int64)
    return {str(k): float(np.mean(pass_at_k(sizes, c, k))) for k in ks_up_to(samples)}


def per_prompt_correct(generator: Any, reward_fn: Any, prompts: Sequence[Prompt], samples: int, spec: Any,
                       seed: int) -> np.ndarray:
    """How many of ``samples`` sampled responses to each prompt are correct (reward >= 1)."""
    ro = generator.generate([p.token_ids for p in prompts], samples, spec, seed)
    ok = np.asarray(reward_fn(ro, list(prompts))) >= 1.0
    return np.bincount(ro.batch.prompt_index, weights=ok, minlength=len(prompts)).round().astype(np.int64)


def _trainer_class() -> type:
    from brorl.train.loop import Trainer, _seed

    class ProbedTrainer(Trainer):
        """The training loop unchanged, plus a measurement before the first step and after
        every ``eval_every``-th step and the last."""

        def __init__(self, cfg: Any, sw: SweepConfig, log: Callable[[str], None], wide_start: bool = False) -> None:
            super().__init__(cfg, log)
            self.sw = sw
            self.want_wide_start = wide_start and sw.wide_samples > 0
            self.wide_start: dict | None = None
            self.wide_end: dict | None = None
            self.wide_seconds = 0.0
            self.evals: list[dict] = []
            self.samples = 0
            self.train_seconds = 0.0
            self.eval_seconds = 0.0

        def _measure(self, done: int, generator: Any, reward_fn: Any, sampler: Any, spec: Any) -> None:
            if generator is None:  # not the engine's rank
                return
            t0 = time.perf_counter()
            held = [p for s in sampler.sources for p in s.eval][: self.sw.eval_prompts]
            probe = [p for s in sampler.sources for p in s.train][: self.sw.probe_prompts]
            # the same measurement seeds for every N: at step 0 all N see identical samples
            seed = self.cfg.run.seed
            hc = per_prompt_correct(generator, reward_fn, held, self.sw.eval_samples, spec, _seed(seed, 4241, done))
            pc = per_prompt_correct(generator, reward_fn, probe, self.sw.probe_samples, spec, _seed(seed, 4243, done))
            dt = time.perf_counter() - t0
            self.eval_seconds += dt
            self.evals.append({
                "step": done, "samples_generated": self.samples, "train_seconds": self.train_seconds,
                "heldout_pass_at_k": pass_at_ks(hc, self.sw.eval_samples),
                "heldout_correct": hc.tolist(), "probe_correct": pc.tolist(),
                "probe_uids": [p.uid for p in probe], "heldout_uids": [p.uid for p in held],
                "eval_seconds": dt,
            })
            self.log(f"[sweep] {self.cfg.run.name} step {done}: held-out pass@1 "
                     f"{self.evals[-1]['heldout_pass_at_k']['1']:.3f}, probe pass rate {pc.mean() / self.sw.probe_samples:.3f}")

        def _measure_wide(self, done: int, generator: Any, reward_fn: Any, sampler: Any, spec: Any,
                          seed: int) -> dict | None:
            if generator is None or self.sw.wide_samples == 0:
                return None
            t0 = time.perf_counter()
            held = [p for s in sampler.sources for p in s.eval][: self.sw.wide_prompts]
            chunk = max(1, self.sw.samples_per_step // self.sw.wide_samples)
            correct = [per_prompt_correct(generator, reward_fn, held[i:i + chunk], self.sw.wide_samples, spec,
                                          _seed(seed, 4247, done, i))
                       for i in range(0, len(held), chunk)]
            c = np.concatenate(correct) if correct else np.zeros(0, dtype=np.int64)
            dt = time.perf_counter() - t0
            self.wide_seconds += dt
            rec = {"step": done, "samples": self.sw.wide_samples, "correct": c.tolist(),
                   "uids": [p.uid for p in held], "pass_at_k": pass_at_ks(c, self.sw.wide_samples), "seconds": dt}
            self.log(f"[sweep] {self.cfg.run.name} step {done}: wide pass@1 {rec['pass_at_k']['1']:.3f}, "
                     f"pass@{self.sw.wide_samples} {rec['pass_at_k'][str(self.sw.wide_samples)]:.3f} ({dt:.0f}s)")
            return rec

        def _step(self, step: int, generator: Any, learner: Any, reward_fn: Any, sampler: Any, tracker: Any,
                  spec: Any, rank: int, world: int) -> dict:
            if not self.evals:
                self._measure(0, generator, reward_fn, sampler, spec)
                if self.want_wide_start:  # the common starting model: a seed of its own, not the run's
                    self.wide_start = self._measure_wide(0, generator, reward_fn, sampler, spec, 0)
            row = super()._step(step, generator, learner, reward_fn, sampler, tracker, spec, rank, world)
            self.samples += step_samples(row, self.cfg.algorithm.n)
            self.train_seconds += float(row["time/step"])
            row["sweep/samples_generated"] = float(self.samples)
            row["sweep/train_seconds"] = self.train_seconds
            done = step + 1
            if done % self.sw.eval_every == 0 or done == self.cfg.run.steps:
                self._measure(done, generator, reward_fn, sampler, spec)
            if done == self.cfg.run.steps:
                self.wide_end = self._measure_wide(done, generator, reward_fn, sampler, spec, self.cfg.run.seed)
            return row

    return ProbedTrainer


def run_one(spec: RunSpec, sw: SweepConfig, log: Callable[[str], None], wide_start: bool = False) -> dict:
    """Train one (N, seed) run and write its ``sweep_run.json``; returns that record.
    ``wide_start``: also take the wide measurement of the starting model (before step 1)."""
    from brorl.train.config import from_dict, validate

    cfg = validate(from_dict(spec.train))
    run_dir = Path(cfg.run.output_dir) / spec.name
    if run_dir.exists():  # an unfinished earlier attempt: start over
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    trainer = _trainer_class()(cfg, sw, log, wide_start=wide_start)
    res = trainer.run()
    rec = {
        "n": spec.n, "seed": spec.seed, "prompts_per_step": spec.prompts_per_step, "lr": spec.lr,
        "steps": res.steps_done, "samples_per_step": sw.samples_per_step,
        "samples_generated": trainer.samples, "train_seconds": trainer.train_seconds,
        "eval_seconds": trainer.eval_seconds, "wall_seconds": time.perf_counter() - t0,
        "eval_samples": sw.eval_samples, "probe_samples": sw.probe_samples,
        "evals": trainer.evals, "wide_start": trainer.wide_start, "wide_end": trainer.wide_end,
        "wide_seconds": trainer.wide_seconds, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (run_dir / DONE_FILE).write_text(json.dumps(rec))
    return rec


def resolve_start_model(train: dict, log: Callable[[str], None]) -> str:
    """The model every run starts from: the configured directory, or the built-in model after
    its cached warm-up (built once, with the recipe's run.seed)."""
    from brorl.sweep.config import base_train_dict
    from brorl.train.config import from_dict
    from brorl.train.loop import resolve_model

    cfg = from_dict(base_train_dict(train))
    return str(resolve_model(cfg, None, log))


def sweep(config: str | Path | None = None, overrides: list[str] | None = None, only: Sequence[tuple[int, int]] = (),
          report_only: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Run ``brorl sweep`` from Python; returns the report directory.

    ``only``: (N, seed) pairs to run now (default: every run of the grid not yet finished);
    ``report_only``: skip training and rebuild the report from the finished runs."""
    from brorl.errors import ConfigError
    from brorl.sweep.report import write_report

    log = log or (lambda s: print(s, flush=True))
    sw, train = load_sweep_config(config, overrides)
    out = Path(sw.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = run_configs(sw, train)  # validates every run's config before anything loads
    grid = {(s.n, s.seed) for s in specs}
    for pair in only:
        if tuple(pair) not in grid:
            raise ConfigError(f"--only {pair[0]},{pair[1]}: not in the grid (ns={sw.ns}, seeds={sw.seeds})")
    if not report_only:
        model = resolve_start_model(train, log)
        specs = run_configs(sw, train, model_path=model)
        todo = [s for s in specs if (not only or (s.n, s.seed) in set(map(tuple, only)))]
        for s in todo:
            if (out / "runs" / s.name / DONE_FILE).is_file():
                log(f"[sweep] {s.name}: finished earlier, skipped")
                continue
            log(f"[sweep] {s.name}: N={s.n} x {s.prompts_per_step} prompts/step, lr {s.lr:.3g}, {sw.steps} steps")
            wide_file = out / WIDE_START_FILE
            rec = run_one(s, sw, log, wide_start=sw.wide_samples > 0 and not wide_file.is_file())
            if rec.get("wide_start") is not None:
                wide_file.write_text(json.dumps({**rec["wide_start"], "measured_in": s.name}))
            log(f"[sweep] {s.name}: done in {rec['wall_seconds']:.0f}s "
                f"(train {rec['train_seconds']:.0f}s, measurements {rec['eval_seconds']:.0f}s)")
            write_report(out, sw, train)
    write_report(out, sw, train)
    return out
