"""LoRA vs full fine-tuning of the learner: peak memory and update time on one model.

    python benches/bench_lora.py --model models/smollm2-135m-instruct --n 32 --prompts 2 \\
        --prompt-tokens 96 --response-tokens 64 --steps 3 --rank 16

Runs each setting in its own process (peak RSS is per process): the DeepSpeed learner (ZeRO-2,
gloo, world size 1) takes ``--steps`` PPO updates on a fixed synthetic rollout batch of the
given shape (N rollouts x prompts, random tokens). Reports the learner's trainable parameters,
the process's peak RSS (model + reference + optimizer + activations) and the mean update time
over the steps after the first. The settings are fixed here, before any result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def worker(args: argparse.Namespace) -> dict:
    import resource

    import numpy as np

    import brorl
    from brorl.train.config import from_dict
    from brorl.train.interfaces import TrainBatch
    from brorl.train.learner import DeepSpeedLearner, release_distributed
    from brorl.train.lora import trainable_counts

    over = {
        "model": {"lora": {"rank": args.rank, "alpha": 2.0 * max(args.rank, 1)}},
        "algorithm": {"n": args.n, "prompts_per_step": args.prompts, "ref_reset_every": 0, "mini_batches": 1},
        "deepspeed": {"micro_batch_tokens": args.micro_batch_tokens, "zero_stage": 2},
        "generation": {"max_tokens": args.response_tokens},
    }
    cfg = from_dict(over)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    learner = DeepSpeedLearner(args.model, cfg, lr=1e-5, total_optimizer_steps=args.steps, seed=0)
    rss_init = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import json as _json
    from pathlib import Path

    vocab = int(_json.loads((Path(args.model) / "config.json").read_text())["vocab_size"])
    rng = np.random.default_rng(0)
    rows = args.n * args.prompts
    pidx = np.repeat(np.arange(args.prompts), args.n)
    toks = [rng.integers(10, vocab, size=args.response_tokens).tolist() for _ in range(rows)]
    lps = [(-rng.random(args.response_tokens) * 2).tolist() for _ in range(rows)]
    b = brorl.RolloutBatch.from_lists(pidx, toks, lps)
    b.set_rewards(rng.integers(0, 2, rows).astype(np.float32))
    prompts = [rng.integers(10, vocab, size=args.prompt_tokens).tolist() for _ in range(args.prompts)]
    batch = TrainBatch(b, prompts, b.advantages())
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        learner.train_step(batch)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    learner.named_weights()
    t_weights = time.perf_counter() - t0
    train, total = trainable_counts(learner.engine.module)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    learner.close()
    release_distributed()
    return {
        "rank": args.rank, "trainable_params": train, "all_params": total,
        "peak_rss_mib": peak / 1024, "rss_before_learner_mib": rss0 / 1024, "rss_after_init_mib": rss_init / 1024,
        "update_s": float(np.mean(times[1:])) if len(times) > 1 else times[0], "update_s_all": times,
        "named_weights_s": t_weights,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=96)
    p.add_argument("--response-tokens", type=int, default=64)
    p.add_argument("--micro-batch-tokens", type=int, default=4096)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    results = []
    for rank in (0, args.rank):
        cmd = [sys.executable, __file__, "--worker", "--rank", str(rank)] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("worker", "rank")]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"worker failed (rank {rank}):\n{out.stderr[-3000:]}")
        results.append(json.loads(line[7:]))
    full, lo = results
    print(json.dumps(results, indent=1))
    print(f"| setting | trainable params | peak RSS (MiB) | update (s) |")
    print("|---|---|---|---|")
    for name, r in (("full fine-tuning", full), (f"LoRA r={args.rank}", lo)):
        print(f"| {name} | {r['trainable_params']:,} | {r['peak_rss_mib']:.0f} | {r['update_s']:.2f} |")
    print(f"LoRA / full: peak RSS {lo['peak_rss_mib'] / full['peak_rss_mib']:.2f}x, "
          f"update time {lo['update_s'] / full['update_s']:.2f}x")


if __name__ == "__main__":
    main()
