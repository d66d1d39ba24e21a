"""The BroRL training loop (ProRLv2's recipe with N scaled up, arXiv 2510.01180).

One step:
1. generate N rollouts for each of ``ceil(oversample * prompts_per_step)`` prompts (one
   request per prompt with n=N; ``algorithm.allocation = 'adaptive'`` shares the same
   N x prompts samples out per prompt instead, see :mod:`brorl.train.allocation`);
2. score them (rewards routed by domain);
3. DAPO dynamic sampling: drop groups whose rollouts all scored the same (their advantages are
   zero, they only dilute the batch) and generate for fresh prompts until the batch holds
   ``prompts_per_step`` groups, at most ``max_gen_rounds`` rounds;
4. advantages from the Rust core (REINFORCE++-baseline by default);
5. PPO update on the learner (clip-higher, k2 KL, truncated IS, token-mean);
6. push the new weights into the running engine and reset its prefix cache.

Under ``torchrun --nproc_per_node K`` (K > 1) rank 0 owns the engine (in a child process, see
:class:`brorl.train.engines.EngineProcess`) and does steps 1-3; the step's batch is broadcast, all
ranks compute advantages and take part in the DeepSpeed update, rank 0 syncs its engine, writes
metrics, plots and the run state; every rank writes its part of each checkpoint.

The loop only talks to a Generator, a RewardFn and a Learner (brorl.train.interfaces), so
placing them elsewhere (Ray actors) does not change it. Everything random derives from
(seed, step, round), and the sampler/tracker/RNG states go into checkpoints, so a resumed run
continues as if it had not stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brorl._core import RolloutBatch
from brorl.train.config import BUILTIN_MODEL, TrainConfig, effective_lr, to_dict, validate
from brorl.train.advantages import step_advantages
from brorl.train.checkpoints import latest_checkpoint
from brorl.train.interfaces import Generator, Learner, Prompt, RewardFn, Rollouts, SamplingSpec, TrainBatch

__all__ = ["train", "TrainResult", "Trainer", "evaluate_pass1", "collect_step", "METRIC_FIELDS"]

# Every line of metrics.jsonl has these keys (plus learner and theory extras).
METRIC_FIELDS = (
    "step", "reward_mean", "pass_rate", "kept_group_share", "gen_rounds", "gen_rounds_capped",
    "groups_generated", "groups_kept", "rollouts_trained", "gen_samples_per_s", "gen_tokens_per_s",
    "time/generate", "time/verify", "time/advantages", "time/train", "time/weight_sync", "time/step",
    "kl", "clip_frac", "entropy", "grad_norm", "lr", "loss", "response_len_mean", "response_len_max",
    "truncation_rate", "theory/unsampled_m2", "shrink/fell_share", "shrink/lost_share", "shrink/revisited",
)


@dataclass
class TrainResult:
    run_dir: Path
    steps_done: int
    pass1_before: float | None = None
    pass1_after: float | None = None
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    metrics: list[dict] = field(default_factory=list)
    rank: int = 0  # this process's rank (torchrun); only rank 0 writes the run directory's files
    world_size: int = 1
    log_path: Path | None = None  # the run's log file (library messages, brorl's lines)
    log_hidden: int = 0  # library messages written to the log file only


def _seed(*parts: int) -> int:
    return int(np.random.default_rng(list(parts)).integers(0, 2**31 - 1))


def _with_offset(b: RolloutBatch, offset: int) -> RolloutBatch:
    """The same rollouts with prompt indices shifted by ``offset`` (so batches of several
    generation rounds can be concatenated)."""
    return RolloutBatch(b.prompt_index + offset, b.token_ids, b.offsets, b.logprobs, b.rewards, b.truncated)


def collect_step(
    generator: Generator,
    reward_fn: RewardFn,
    take_prompts: Callable[[int], list[Prompt]],
    *,
    n: int,
    groups_wanted: int,
    sampling: SamplingSpec,
    dynamic_sampling: bool,
    max_rounds: int,
    oversample: float,
    seed: int,
    on_groups: Callable[[list[Prompt], np.ndarray], None] | None = None,
    allocator: Any = None,
) -> tuple[RolloutBatch | None, list[Prompt], dict[str, float]]:
    """Generate, score and filter until ``groups_wanted`` groups are kept (DAPO dynamic
    sampling with refill). Returns the kept batch (its ``prompt_index`` indexes the returned
    prompt list; None if nothing was kept), the prompts of all rounds, and metrics.

    ``allocator`` (a :class:`brorl.train.allocation.AdaptiveAllocator`, for
    ``algorithm.allocation = 'adaptive'``) shares each round's ``n * prompts`` samples out per
    prompt instead of giving every prompt ``n``; prompts it skips leave the round."""
    prompts_all: list[Prompt] = []
    kept: list[RolloutBatch] = []
    have = 0
    t_gen = t_ver = 0.0
    samples = tokens = 0
    rewards_all, lengths_all, trunc_all = [], [], []
    rounds = 0
    groups_gen = 0
    n_passing = 0  # groups dynamic sampling would keep (some may exceed what the step needs)
    budget = wasted = 0  # samples the rounds could spend (n per prompt) / spent on zero-advantage groups
    sizes_all: list[np.ndarray] = []
    while have < groups_wanted and rounds < max_rounds:
        k = math.ceil(oversample * (groups_wanted - have))
        prompts = take_prompts(k)
        budget += n * k
        # -- adaptive N per prompt (brorl.train.allocation) --------------------------------
        if allocator is not None:
            rr = allocator.collect_round(generator, reward_fn, prompts, n, sampling, _seed(seed, rounds))
            t_gen += rr.gen_seconds
            t_ver += rr.verify_seconds
            if rr.batch is None:  # every prompt of the round was skipped as solved
                rounds += 1
                continue
            b, prompts, r = rr.batch, rr.prompts, rr.batch.rewards
        # -----------------------------------------------------------------------------------
        else:
            ro: Rollouts = generator.generate([p.token_ids for p in prompts], n, sampling, _seed(seed, rounds))
            t_gen += ro.seconds
            t0 = time.perf_counter()
            r = reward_fn(ro, prompts)
            t_ver += time.perf_counter() - t0
            b = ro.batch
            b.set_rewards(r)
        varied = b.varied_groups()
        wasted += int(b.group_sizes[~varied].sum())
        sizes_all.append(b.group_sizes)
        samples += b.n_rollouts
        tokens += b.n_tokens
        rewards_all.append(np.asarray(r, dtype=np.float32))
        lengths_all.append(b.response_lengths)
        trunc_all.append(b.truncated)
        groups_gen += b.n_groups
        if on_groups is not None:
            on_groups(prompts, b.group_stats()["pass_rate"])
        mask = varied if dynamic_sampling else np.ones(b.n_groups, dtype=bool)
        n_passing += int(mask.sum())
        # never keep more groups than the step wants
        idx = np.flatnonzero(mask)[: groups_wanted - have]
        mask = np.zeros(b.n_groups, dtype=bool)
        mask[idx] = True
        if mask.any():
            kept.append(_with_offset(b.filter_groups(mask), len(prompts_all)))
            have += int(mask.sum())
        prompts_all.extend(prompts)
        rounds += 1
    if not rewards_all:  # adaptive allocation skipped every prompt of every round
        rewards_all, lengths_all, trunc_all = [np.full(1, np.nan)], [np.full(1, np.nan)], [np.full(1, np.nan)]
    rew = np.concatenate(rewards_all)
    lens = np.concatenate(lengths_all)
    metrics = {
        "reward_mean": float(rew.mean()),
        "pass_rate": float((rew >= 1.0).mean()),
        "kept_group_share": n_passing / max(groups_gen, 1),
        "gen_rounds": float(rounds),
        "gen_rounds_capped": float(have < groups_wanted),
        "groups_generated": float(groups_gen),
        "groups_kept": float(have),
        "gen_samples_per_s": samples / max(t_gen, 1e-9),
        "gen_tokens_per_s": tokens / max(t_gen, 1e-9),
        "time/generate": t_gen,
        "time/verify": t_ver,
        "response_len_mean": float(lens.mean()),
        "response_len_max": float(lens.max()),
        "truncation_rate": float(np.concatenate(trunc_all).mean()),
    }
    from brorl.train.allocation import group_size_metrics

    metrics.update(group_size_metrics(np.concatenate(sizes_all) if sizes_all else np.zeros(0), wasted, samples, budget))
    if allocator is not None:
        metrics.update(allocator.pop_metrics())
    batch = RolloutBatch.concat(kept) if kept else None
    return batch, prompts_all, metrics


def evaluate_pass1(generator: Generator, reward_fn: RewardFn, prompts: Sequence[Prompt], samples: int,
                   sampling: SamplingSpec, seed: int) -> float:
    """Held-out pass@1: the mean correctness of ``samples`` sampled responses per prompt (the
    unbiased pass@1 estimate)."""
    if not prompts:
        return float("nan")
    ro = generator.generate([p.token_ids for p in prompts], samples, sampling, seed)
    r = reward_fn(ro, list(prompts))
    return float((np.asarray(r) >= 1.0).mean())


class _Log:
    """metrics.jsonl (always) + the configured loggers (TensorBoard, Weights & Biases)."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, rank: int) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.rank = rank
        self.tb = None
        self.wandb = None
        if rank != 0:
            return
        r = cfg.run
        if "tensorboard" in r.loggers and r.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard missing: metrics.jsonl still has everything
                self.tb = None
        if "wandb" in r.loggers:
            self.wandb = _start_wandb(run_dir, cfg)

    def write(self, row: dict) -> None:
        if self.rank != 0:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        scalars = {k: v for k, v in row.items()
                   if isinstance(v, (int, float)) and k != "step" and math.isfinite(v)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, row["step"])
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=int(row["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def _start_wandb(run_dir: Path, cfg: TrainConfig) -> Any:
    """A W&B run for this run directory; a resumed run continues the same W&B run (its id is
    kept in ``<run>/wandb_id``). Offline mode writes under ``<run>/wandb``."""
    import uuid

    import wandb

    w = cfg.run.wandb
    id_file = run_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
    id_file.write_text(run_id)
    return wandb.init(
        project=w.project, name=w.name or run_dir.name, tags=list(w.tags) or None, entity=w.entity,
        mode=w.mode, dir=str(run_dir), id=run_id, resume="allow", config=to_dict(cfg),
    )


def _read_metrics(path: Path, upto: int | None = None) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if upto is None or r["step"] <= upto]


def write_plots(run_dir: Path, rows: list[dict], evals: dict[str, float]) -> list[Path]:
    """PNG curves of the main metrics (rewritten as the run goes)."""
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("reward_mean", "mean reward"), ("pass_rate", "pass rate (training rollouts)"),
        ("kept_group_share", "groups kept by dynamic sampling"), ("entropy", "entropy"),
        ("kl", "KL to reference"), ("gen_samples_per_s", "generation samples/s"),
        ("time/step", "step time (s)"), ("theory/unsampled_m2", "unsampled 2nd moment"),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    steps = [r["step"] for r in rows]
    for ax, (key, title) in zip(axes.flat, panels):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], marker=".")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if evals:
        fig.suptitle("held-out pass@1: " + ", ".join(f"{k} {v:.3f}" for k, v in evals.items()))
    fig.tight_layout()
    out = run_dir / "curves.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return [out]


# the warm-up data comes from its own seed, disjoint from the RL and held-out seeds
WARMUP_SEED = 7919


def warmup_pairs(cfg: TrainConfig) -> list[tuple[str, str]]:
    """(prompt, response) examples of the built-in model's supervised warm-up."""
    import reasoning_gym as rg

    from brorl.train import tiny
    from brorl.train.data import render_prompt

    w = cfg.warmup
    ds = rg.create_dataset(w.task, size=w.size, seed=WARMUP_SEED, **w.task_kwargs)
    # which examples end with the answer tag: a fixed draw, so the cache key determines it
    rng = random.Random(WARMUP_SEED)
    tagged = [rng.random() < w.tag_share for _ in range(len(ds))]

    def response(e: dict, tag: bool) -> str:
        steps = tiny.worked_steps(e["metadata"]["expression"]) if w.worked else ""
        if not tag:
            return steps.rstrip() if steps else str(e["answer"])
        return f"{steps}{tiny.ANSWER_OPEN}{e['answer']}{tiny.ANSWER_CLOSE}"

    return [
        (render_prompt(None, e["question"] + cfg.data.instruction, False, few_shot=cfg.data.few_shot), response(e, t))
        for e, t in zip(ds, tagged)
    ]


def resolve_model(cfg: TrainConfig, sources: Any, log: Callable[[str], None]) -> Path:
    """The model directory: the configured one (a Hub id: its snapshot in the Hugging Face
    cache), or the built-in tiny model after its cached supervised warm-up on the first
    source's task family."""
    if cfg.model.path != BUILTIN_MODEL:
        if Path(cfg.model.path).is_dir():
            return Path(cfg.model.path)
        from brorl.train.hub import resolve_hub_snapshot

        return resolve_hub_snapshot(cfg.model.path, "model.path")
    from brorl.train import tiny

    w = cfg.warmup
    key = {"task": w.task, "kw": w.task_kwargs, "seed": WARMUP_SEED, "size": w.size, "instr": cfg.data.instruction}
    if w.worked:
        key["worked"] = 1
    if w.tag_share != 1.0:
        key["tag_share"] = w.tag_share
    if cfg.data.few_shot:  # the warm-up's prompts are rendered like the RL prompts
        key["few_shot"] = cfg.data.few_shot
    return tiny.cached_warm_model(lambda: warmup_pairs(cfg), key, w.steps, w.batch_size, w.lr, seed=cfg.run.seed, log=log)


class Trainer:
    """Wires config -> data, engines, learner and runs the loop (see module docstring)."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] | None = None,
                 reward_fns: Sequence[Callable] = ()) -> None:
        self.cfg = validate(cfg)
        self._own_log = log is None
        self.log = log or (lambda s: print(s, flush=True))
        self.console: Any = None
        self.allocator: Any = None  # algorithm.allocation = 'adaptive': set by run()
        # custom reward functions given from Python (beside cfg.reward.functions)
        self.reward_fns = list(reward_fns)

    def run(self) -> TrainResult:
        """Train (see :meth:`_run`); while it runs, library logs go to the run directory's
        ``train.log`` and the console shows progress, results and new warnings only."""
        from brorl.train.console import RunConsole

        self.console = RunConsole().install()
        if self._own_log:
            self.log = self.console.info
        try:
            res = self._run()
            res.log_path = self.console.path
            res.log_hidden = self.console.hidden
            return res
        finally:
            self.console.uninstall()

    def _run(self) -> TrainResult:
        cfg = self.cfg
        t_start = time.perf_counter()
        import yaml
        from transformers import AutoTokenizer

        from brorl.theory import ShrinkageTracker
        from brorl.train.data import PromptSampler, load_sources
        from brorl.train.engines import make_generator, wait_started
        from brorl.train.learner import DeepSpeedLearner, init_distributed
        from brorl.train.rewards import make_reward_fn

        # On a Ray cluster this process only drives: the learner's ranks are actors.
        rank, world = (0, 1) if cfg.cluster.enabled else init_distributed(cfg.deepspeed.backend)
        name = cfg.run.name or time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(cfg.run.output_dir) / name
        run_dir.mkdir(parents=True, exist_ok=True)
        self.console.attach(run_dir / ("train.log" if rank == 0 else f"train.rank{rank}.log"))
        if rank == 0:
            (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        if world > 1 and rank != 0:
            import torch.distributed as dist

            dist.barrier()  # rank 0 builds (or finds) the cached built-in model first
        model_path = resolve_model(cfg, None, self.log)
        if world > 1 and rank == 0:
            import torch.distributed as dist

            dist.barrier()
        # The model directory holding the tokenizer (the built-in one is rendered without a
        # chat template: it was warmed up on raw prompts).
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        sources = load_sources(cfg.data, tokenizer, cfg.model.chat_template, self.log)
        eval_prompts = [p for s in sources for p in s.eval][: cfg.data.eval_size]
        sampler = PromptSampler(sources, cfg.run.seed)
        tracker = ShrinkageTracker()
        a, g = cfg.algorithm, cfg.generation
        if a.allocation == "adaptive":  # per-prompt N; its pass-rate history goes into checkpoints
            from brorl.train.allocation import AdaptiveAllocator

            self.allocator = AdaptiveAllocator(a.adaptive, a.n)
        spec = SamplingSpec(temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens, stop=tuple(g.stop))
        max_prompt = max(len(p.token_ids) for s in sources for p in s.train + s.eval)
        lr = effective_lr(cfg)
        parts = None
        if cfg.cluster.enabled:
            from brorl.distributed.train import place_parts

            parts = place_parts(cfg, model_path, max_prompt + g.max_tokens + 8, lr, run_dir, reward_fns=self.reward_fns)
            learner, generator, reward_fn = parts.learner, parts.generator, parts.reward_fn
        else:
            def build_generator() -> Any:
                # beside other ranks, vLLM must not see their process group: its own process
                return make_generator(model_path, g, cfg.model.dtype, max_prompt + g.max_tokens + 8, cfg.run.seed,
                                      own_process=world > 1, wait=False)

            generator = None
            # Engines in child processes start while this process builds the learner; an engine
            # in this process comes after the learner, as it always did (vLLM seeds the global
            # generators when it starts).
            in_children = g.engine == "vllm" and (world > 1 or g.local_engines > 1)
            if rank == 0 and in_children:
                generator = build_generator()
            try:
                learner = DeepSpeedLearner(model_path, cfg, lr, cfg.run.steps * a.mini_batches, seed=cfg.run.seed)
                if rank == 0 and generator is None:
                    generator = build_generator()
                wait_started(generator)
            except BaseException:
                if generator is not None:
                    generator.close()
                raise
            reward_fn = make_reward_fn(cfg.reward, self.reward_fns)
        logger = _Log(run_dir, cfg, rank)
        result = TrainResult(run_dir=run_dir, steps_done=0, rank=rank, world_size=world)
        evals: dict[str, float] = {}
        start = 0
        try:
            ck = latest_checkpoint(run_dir) if cfg.run.resume else None
            if ck is not None:
                start = self._load(ck, learner, sampler, tracker)
                self._push_weights(generator, learner, world)
                evals = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").is_file() else {}
                # metrics of steps after the checkpoint are recomputed: drop them
                if rank == 0:
                    kept_rows = _read_metrics(logger.path, upto=start)
                    logger.path.write_text("".join(json.dumps(r) + "\n" for r in kept_rows))
                self.log(f"[brorl] resumed {run_dir} at step {start} from {ck.name}")
            elif rank == 0 and logger.path.exists():
                logger.path.unlink()
            eval_samples = cfg.run.eval_samples
            if cfg.run.eval_before and start == 0 and eval_prompts and generator is not None:
                t0 = time.perf_counter()
                evals["pass1_before"] = evaluate_pass1(generator, reward_fn, eval_prompts, eval_samples, spec, _seed(cfg.run.seed, 99991))
                self.log(f"[brorl] held-out pass@1 before training: {evals['pass1_before']:.3f} "
                         f"({len(eval_prompts)} prompts x {eval_samples} samples, {time.perf_counter() - t0:.0f}s)")
                if rank == 0:
                    (run_dir / "eval.json").write_text(json.dumps(evals))
            bar = None
            if cfg.run.progress and rank == 0:
                from tqdm import tqdm

                bar = tqdm(total=cfg.run.steps, initial=start, desc="brorl train", unit="step", file=sys.stderr, dynamic_ncols=True)
            for step in range(start, cfg.run.steps):
                row = self._step(step, generator, learner, reward_fn, sampler, tracker, spec, rank, world)
                logger.write(row)
                result.metrics.append(row)
                if a.ref_reset_every and (step + 1) % a.ref_reset_every == 0:
                    # before the checkpoint below, so a resumed run starts from the reset state
                    learner.reset_reference(reset_optimizer=a.ref_reset_optimizer)
                done = step + 1
                if (cfg.run.save_every and done % cfg.run.save_every == 0) or done == cfg.run.steps:
                    self._save(run_dir, done, learner, sampler, tracker, rank)
                if cfg.run.save_hf and (done in cfg.run.save_hf_steps or done == cfg.run.steps):
                    self._save_hf(run_dir, done, learner, model_path, rank, world)
                if cfg.run.eval_every and done % cfg.run.eval_every == 0 and generator is not None and done < cfg.run.steps:
                    evals[f"pass1_step{done}"] = evaluate_pass1(generator, reward_fn, eval_prompts, eval_samples, spec, _seed(cfg.run.seed, 99991))
                if cfg.run.plots and rank == 0:
                    write_plots(run_dir, _read_metrics(logger.path), evals)
                if bar is not None:
                    bar.set_postfix(reward=f"{row['reward_mean']:.3f}", kept=f"{row['kept_group_share']:.2f}")
                    bar.update(1)
                result.steps_done = done
            if bar is not None:
                bar.close()
            if cfg.run.eval_after and eval_prompts and generator is not None:
                evals["pass1_after"] = evaluate_pass1(generator, reward_fn, eval_prompts, eval_samples, spec, _seed(cfg.run.seed, 99991))
                before = f" (before: {evals['pass1_before']:.3f})" if "pass1_before" in evals else ""
                self.log(f"[brorl] held-out pass@1 after training:  {evals['pass1_after']:.3f}{before}")
            if world > 1:
                import torch.distributed as dist

                box = [evals]  # evaluated on rank 0 (the engine's); every rank returns the result
                dist.broadcast_object_list(box, src=0)
                evals = box[0]
            if rank == 0:
                (run_dir / "eval.json").write_text(json.dumps(evals))
                if cfg.run.plots:
                    result.plots = write_plots(run_dir, _read_metrics(logger.path), evals)
        finally:
            logger.close()
            if generator is not None:
                generator.close()
            learner.close()
            from brorl.train.learner import release_distributed

            release_distributed()
            if parts is not None:
                parts.close()
        result.pass1_before = evals.get("pass1_before")
        result.pass1_after = evals.get("pass1_after")
        result.seconds = time.perf_counter() - t_start
        return result

    # -- one step ---------------------------------------------------------------------------

    def _step(self, step: int, generator: Any, learner: Any, reward_fn: RewardFn, sampler: Any, tracker: Any,
              spec: SamplingSpec, rank: int, world: int) -> dict:
        cfg, a = self.cfg, self.cfg.algorithm
        t_step = time.perf_counter()
        seen_uids: list[int] = []
        seen_rates: list[float] = []

        def on_groups(prompts: list[Prompt], pass_rates: np.ndarray) -> None:
            seen_uids.extend(p.uid for p in prompts)
            seen_rates.extend(pass_rates.tolist())

        payload = None
        shrink: dict[str, float] = {}
        if rank == 0:
            batch, prompts, m = collect_step(
                generator, reward_fn, sampler.take, n=a.n, groups_wanted=a.prompts_per_step, sampling=spec,
                dynamic_sampling=a.dynamic_sampling, max_rounds=a.max_gen_rounds, oversample=a.oversample,
                seed=_seed(cfg.run.seed, step), on_groups=on_groups, allocator=self.allocator,
            )
            # knowledge shrinkage over every group generated this step (kept or not)
            shrink = tracker.update(seen_uids, seen_rates)
            payload = (batch, [p.token_ids for p in prompts], m, shrink, sampler.state_dict())
        if world > 1:
            import torch.distributed as dist

            box = [payload]
            dist.broadcast_object_list(box, src=0)
            payload = box[0]
            if rank != 0:
                sampler.load_state_dict(payload[4])
        batch, prompt_ids, m, shrink, _ = payload
        row: dict[str, Any] = {"step": step + 1, **m, **shrink, "world_size": world}
        if batch is not None and batch.n_groups > 0:
            t0 = time.perf_counter()
            adv = step_advantages(batch, a.estimator, a.advantage_whiten)
            row["time/advantages"] = time.perf_counter() - t0
            if cfg.generation.release_kv_cache and hasattr(generator, "release_kv_cache"):
                # the engine idles during the update: its KV cache need not be resident
                t0 = time.perf_counter()
                row["mem/kv_released_gib"] = generator.release_kv_cache() / 2**30
                row["time/kv_release"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            lm = learner.train_step(TrainBatch(rollouts=batch, prompt_token_ids=prompt_ids, advantages=adv))
            row["time/train"] = time.perf_counter() - t0
            row.update(lm)
            row["rollouts_trained"] = float(batch.n_rollouts)
            t0 = time.perf_counter()
            if hasattr(generator, "sync_from"):
                # distributed: trainer rank 0 sends to the engines directly, in buckets
                row.update(generator.sync_from(learner))
            else:
                self._push_weights(generator, learner, world)
            row["time/weight_sync"] = time.perf_counter() - t0
        else:
            # every group was solved or failed in all rounds: nothing to learn from this step
            row.update({"time/advantages": 0.0, "time/train": 0.0, "time/weight_sync": 0.0, "rollouts_trained": 0.0,
                        "skipped": 1.0})
        for part in (generator, reward_fn):
            # distributed: restarted engines / re-issued reward tasks since the last step
            if hasattr(part, "pop_metrics"):
                row.update(part.pop_metrics())
        row["time/step"] = time.perf_counter() - t_step
        for k in METRIC_FIELDS:
            row.setdefault(k, float("nan"))
        return row

    def _push_weights(self, generator: Any, learner: Any, world: int) -> None:
        """The learner's weights into the engine (rank 0's). Under ZeRO-3 gathering them is a
        collective, so every rank takes part even though only rank 0 has an engine."""
        if generator is None and not (world > 1 and self.cfg.deepspeed.zero_stage == 3):
            return
        weights = learner.named_weights()
        if generator is not None:
            generator.update_weights(weights)

    # -- checkpoints --------------------------------------------------------------------------

    def _save(self, run_dir: Path, step: int, learner: Any, sampler: Any, tracker: Any, rank: int) -> None:
        import torch

        ck_root = run_dir / "checkpoints"
        path = ck_root / f"step_{step:06d}"
        path.mkdir(parents=True, exist_ok=True)
        learner.save_checkpoint(path)
        if rank == 0:
            state = {
                "step": step,
                "sampler": sampler.state_dict(),
                "shrinkage": tracker.state_dict(),
                "python_random": repr(random.getstate()),
            }
            if self.allocator is not None:
                state["allocation"] = self.allocator.state_dict()
            torch.save({"torch": torch.get_rng_state(), "numpy": np.random.get_state()}, path / "rng.pt")
            (path / "state.json").write_text(json.dumps(state))
            tmp = ck_root / "latest.tmp"
            tmp.write_text(path.name)
            os.replace(tmp, ck_root / "latest")
            old = sorted(p for p in ck_root.glob("step_*") if p.is_dir())
            for p in old[: -self.cfg.run.keep_checkpoints]:
                shutil.rmtree(p, ignore_errors=True)

    def _save_hf(self, run_dir: Path, step: int, learner: Any, model_path: Path, rank: int, world: int) -> None:
        """A Hugging Face model directory of the current weights (every rank takes part: under
        ZeRO-3 gathering them is a collective; rank 0 writes)."""
        from brorl.train.export import hf_dir, save_hf_model

        weights = learner.named_weights()
        if rank == 0:
            out = save_hf_model(weights, model_path, hf_dir(run_dir, step))
            self.log(f"[brorl] Hugging Face model of step {step}: {out}")

    def _load(self, path: Path, learner: Any, sampler: Any, tracker: Any) -> int:
        import ast

        import torch

        learner.load_checkpoint(path)
        state = json.loads((path / "state.json").read_text())
        sampler.load_state_dict(state["sampler"])
        tracker.load_state_dict(state["shrinkage"])
        if self.allocator is not None and "allocation" in state:
            self.allocator.load_state_dict(state["allocation"])
        random.setstate(ast.literal_eval(state["python_random"]))
        rng = torch.load(path / "rng.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        return int(state["step"])


def train(config: TrainConfig | dict | str | Path | None = None, overrides: list[str] | None = None,
          reward_fn: Callable | Sequence[Callable] | None = None) -> TrainResult:
    """Run ``brorl train`` from Python.

    ``config``: a TrainConfig, a nested dict (merged over the built-in default), a YAML path,
    or None for the built-in default; ``overrides``: ``key=value`` strings; ``reward_fn``: one
    custom reward function or a list, ``fn(prompts, responses, metadata) -> one float per
    response``, combined with the built-in rewards as ``reward.combine``/``reward.domains`` say
    (see :mod:`brorl.train.rewards`).
    """
    from brorl.train.config import apply_overrides, from_dict, load_config, preset

    if isinstance(config, TrainConfig):
        cfg = config
        if overrides:
            cfg = from_dict(apply_overrides(to_dict(cfg), overrides))
    elif isinstance(config, dict):
        from brorl.train.config import _merge

        cfg = from_dict(apply_overrides(_merge(preset("default"), config), overrides or []))
    else:
        cfg = load_config(config, overrides)
    validate(cfg)
    if reward_fn is None:
        fns: list[Callable] = []
    elif callable(reward_fn):
        fns = [reward_fn]
    else:
        fns = list(reward_fn)
    from brorl.errors import BrorlTypeError

    for i, fn in enumerate(fns):
        if not callable(fn):
            raise BrorlTypeError(f"reward_fn[{i}] = {fn!r}: expected a function fn(prompts, responses, metadata)")
    return Trainer(cfg, reward_fns=fns).run()
