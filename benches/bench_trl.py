"""Time per 1,000 rollouts of RL training: brorl (vLLM rollouts + DeepSpeed updates) vs TRL's
GRPOTrainer, same tiny model, task, samples per step and machine, in one run.

    .venv/bin/python benches/bench_trl.py [--json] [--n 256] [--prompts 4] [--steps 4]

Both train the built-in tiny model (after its cached warm-up) on the default's Reasoning Gym task with
N rollouts for each of P prompts per step (dynamic sampling off in brorl so both consume
exactly N*P samples per step), the default's max new tokens (brorl stops at `</answer>`, TRL at the EOS the warm-up taught right after it), temperature 1, one optimizer step per
training step. The first step of each is a warm-up and is not timed; the timed part is the
wall time of the remaining steps (generation + reward + update + weight sync), divided by the
rollouts they made. Start-up (engine/model load) is reported separately. TRL runs with its
default transformers ``generate`` (its vLLM modes need a GPU server or colocated GPU engine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def run_brorl(model_dir: str, n: int, prompts: int, steps: int, out: Path) -> dict:
    from brorl.train.config import load_config
    from brorl.train.loop import Trainer

    cfg = load_config(overrides=[
        f"algorithm.n={n}", f"algorithm.prompts_per_step={prompts}", "algorithm.dynamic_sampling=false",
        "algorithm.oversample=1.0", "algorithm.max_gen_rounds=1", f"run.steps={steps}", "run.save_every=0",
        "run.eval_before=false", "run.eval_after=false", "run.plots=false", "run.tensorboard=false",
        "run.progress=false", f"run.output_dir={out}", "run.name=brorl", "optim.lr=1e-4",
        # one optimizer step per generation, as TRL's GRPO default takes
        "algorithm.mini_batches=1",
    ])
    t0 = time.perf_counter()
    res = Trainer(cfg, log=lambda s: None).run()
    total = time.perf_counter() - t0
    rows = res.metrics
    timed = rows[1:]
    secs = sum(r["time/step"] for r in timed)
    rollouts = sum(r["groups_generated"] * n for r in timed)
    return {"seconds_timed": secs, "rollouts_timed": rollouts, "seconds_total": total,
            "s_per_1000_rollouts": 1000 * secs / rollouts,
            "reward_mean_by_step": [r["reward_mean"] for r in rows]}


def run_trl(model_dir: str, n: int, prompts: int, steps: int, out: Path) -> dict:
    import reasoning_gym as rg
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from brorl.train.data import render_prompt

    from brorl.train.config import load_config

    # the same task as brorl's run: the default config's Reasoning Gym source
    default = load_config()
    src = default.data.sources[0]
    ds = rg.create_dataset(src.task, size=prompts * steps * 2, seed=src.seed, **src.task_kwargs)
    rows = [{"prompt": render_prompt(None, e["question"], False), "entry": json.dumps(e)} for e in ds]

    def reward(completions: list[str], entry: list[str], **_: object) -> list[float]:
        from reasoning_gym.utils import extract_answer

        out_ = []
        for c, e in zip(completions, entry):
            a = extract_answer(c)
            # 1 when right, as brorl's default reward (no partial credit for containing the answer)
            out_.append(float(ds.score_answer(a, json.loads(e)) >= 1.0) if a is not None else 0.0)
        return out_

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = GRPOConfig(
        output_dir=str(out / "trl"), num_generations=n, per_device_train_batch_size=n * prompts,
        steps_per_generation=1, max_completion_length=default.generation.max_tokens, temperature=1.0, top_k=0, learning_rate=1e-4,
        max_steps=steps, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, bf16=False,
        beta=1e-4, epsilon=0.2, epsilon_high=0.28, loss_type="dapo", scale_rewards="batch", seed=0,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *a: object, **k: object) -> None:
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tok, callbacks=[Stamp()])
    t_start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    secs = stamps[-1] - stamps[0]
    rollouts = (len(stamps) - 1) * n * prompts
    return {"seconds_timed": secs, "rollouts_timed": rollouts, "seconds_total": total,
            "seconds_startup": t_start - t0, "s_per_1000_rollouts": 1000 * secs / rollouts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--n", type=int, default=256, help="rollouts per prompt")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("--steps", type=int, default=4, help="training steps (the first is not timed)")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is a warm-up)")
    from brorl.train.config import load_config
    from brorl.train.loop import resolve_model

    model_dir = str(resolve_model(load_config(), None, lambda s: print(s, file=sys.stderr)))
    with tempfile.TemporaryDirectory() as tmp:
        b = run_brorl(model_dir, args.n, args.prompts, args.steps, Path(tmp))
        t = run_trl(model_dir, args.n, args.prompts, args.steps, Path(tmp))
    out = {"model": "builtin:tiny (warmed up)", "n": args.n, "prompts_per_step": args.prompts,
           "samples_per_step": args.n * args.prompts, "steps": args.steps, "brorl": b, "trl": t,
           "speedup_trl_over_brorl": t["s_per_1000_rollouts"] / b["s_per_1000_rollouts"], "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"samples per step: {args.n} x {args.prompts} = {args.n * args.prompts}; timed steps: {args.steps - 1}")
        print(f"brorl: {b['s_per_1000_rollouts']:8.2f} s per 1,000 rollouts (total run {b['seconds_total']:.0f}s incl. start-up)")
        print(f"TRL:   {t['s_per_1000_rollouts']:8.2f} s per 1,000 rollouts (total run {t['seconds_total']:.0f}s incl. start-up)")
        print(f"brorl is {out['speedup_trl_over_brorl']:.2f}x faster per rollout (targets: >= 2x at first, >= 5x for the loop-speed work)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
