"""Generation inside the training loop vs the same engine alone, and today's engine settings vs
the new ones, on the default job's batch (its prompts, N, sampling), in one run.

    .venv/bin/python benches/bench_loop_generation.py [--calls 3] [--prompts 36] [--n 256]
        [--variants today new] [--loop new] [--json]

For each variant in --variants a standalone engine (``make_generator`` from the default config
with the variant's overrides) generates the same prompts --calls + 1 times (different seeds);
the first call pays one-off costs and is reported apart. For each variant in --loop the
trainer's pieces are built as ``brorl train`` builds them (DeepSpeed learner first, then the
engine) and every generate call is followed by a real learner step on its rollouts and a weight
sync, so each timed call is a "first call after a sync". The learning rate is 0 by default so
the policy, and hence the response lengths, stay those of the standalone runs (--lr to change).

Prints samples/s and tokens/s per call and the ratios: in-loop / standalone (same settings) and
new / today (standalone). The default model is the built-in one after its cached warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# Engine settings as of before this benchmark existed, and the new defaults.
VARIANTS: dict[str, list[str]] = {
    "today": ["generation.enforce_eager=true", "generation.fast_stop=false"],
    "new": [],
    # single knobs over today's, to see what each is worth
    "fast_stop": ["generation.enforce_eager=true", "generation.fast_stop=true"],
    "compiled": ["generation.enforce_eager=false", "generation.fast_stop=false"],
    "seqs4k": ["generation.enforce_eager=true", "generation.fast_stop=false", "generation.max_num_seqs=4096",
               "generation.kv_cache_gib=2"],
}


def _rates(calls: list[dict]) -> dict:
    steady = calls[1:] or calls
    s = sum(c["samples"] for c in steady)
    t = sum(c["seconds"] for c in steady)
    tok = sum(c["tokens"] for c in steady)
    return {"samples_per_s": s / t, "tokens_per_s": tok / t, "first_call_samples_per_s": calls[0]["samples"] / calls[0]["seconds"]}


def _call(gen, prompts, n, spec, seed) -> tuple[dict, object]:
    t0 = time.perf_counter()
    ro = gen.generate(prompts, n, spec, seed)
    dt = time.perf_counter() - t0
    b = ro.batch
    row = {"seconds": dt, "samples": int(b.n_rollouts), "tokens": int(b.n_tokens),
           "mean_len": float(b.response_lengths.mean())}
    row.update({f"engine/{k}": v for k, v in getattr(gen, "last_timing", {}).items()})
    return row, ro


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=3, help="timed calls after the first one")
    ap.add_argument("--prompts", type=int, default=36, help="prompts per call (default: the default job's first round)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--variants", nargs="*", default=["today", "new"], choices=sorted(VARIANTS))
    ap.add_argument("--loop", nargs="*", default=["new"], choices=sorted(VARIANTS))
    ap.add_argument("--lr", type=float, default=0.0)
    ap.add_argument("--set", nargs="*", default=[], metavar="key=value", help="extra config overrides for every variant")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import numpy as np
    from transformers import AutoTokenizer

    from brorl.train.config import load_config
    from brorl.train.data import load_sources
    from brorl.train.engines import make_generator
    from brorl.train.interfaces import SamplingSpec, TrainBatch
    from brorl.train.loop import resolve_model

    def say(msg: str) -> None:
        if not args.json:
            print(msg, flush=True)

    base = load_config(overrides=args.set)
    model = resolve_model(base, None, say)
    tok = AutoTokenizer.from_pretrained(model)
    sources = load_sources(base.data, tok, base.model.chat_template, lambda s: None)
    prompts = [p.token_ids for p in sources[0].train[: args.prompts]]
    max_len = max(len(p.token_ids) for s in sources for p in s.train + s.eval) + base.generation.max_tokens + 8
    out: dict = {"prompts": len(prompts), "n": args.n, "calls": args.calls, "standalone": {}, "loop": {}}

    def cfg_of(variant: str):
        return load_config(overrides=args.set + VARIANTS[variant])

    def spec_of(cfg) -> SamplingSpec:
        g = cfg.generation
        return SamplingSpec(temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens, stop=tuple(g.stop))

    for v in args.variants:
        cfg = cfg_of(v)
        t0 = time.perf_counter()
        gen = make_generator(model, cfg.generation, cfg.model.dtype, max_len, seed=0)
        start = time.perf_counter() - t0
        calls = []
        for i in range(args.calls + 1):
            row, _ = _call(gen, prompts, args.n, spec_of(cfg), seed=1000 + i)
            calls.append(row)
            say(f"standalone {v:6s} call {i}: {row['samples']} samples in {row['seconds']:.2f}s "
                f"({row['samples'] / row['seconds']:.0f}/s, mean length {row['mean_len']:.1f})")
        gen.close()
        out["standalone"][v] = {"engine_start_s": start, "calls": calls, **_rates(calls)}

    for v in args.loop:
        from brorl.train.learner import DeepSpeedLearner, release_distributed

        cfg = cfg_of(v)
        learner = DeepSpeedLearner(model, cfg, args.lr, 10 * (args.calls + 1), seed=0)
        gen = make_generator(model, cfg.generation, cfg.model.dtype, max_len, seed=0)
        rng = np.random.default_rng(0)
        calls = []
        for i in range(args.calls + 1):
            row, ro = _call(gen, prompts, args.n, spec_of(cfg), seed=1000 + i)
            b = ro.batch
            b.set_rewards(rng.integers(0, 2, b.n_rollouts).astype(np.float32))
            t0 = time.perf_counter()
            learner.train_step(TrainBatch(rollouts=b, prompt_token_ids=prompts, advantages=b.advantages(cfg.algorithm.estimator)))
            row["train_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            gen.update_weights(learner.named_weights())
            row["sync_s"] = time.perf_counter() - t0
            calls.append(row)
            say(f"in-loop    {v:6s} call {i}: {row['samples']} samples in {row['seconds']:.2f}s "
                f"({row['samples'] / row['seconds']:.0f}/s, mean length {row['mean_len']:.1f}); "
                f"then learner step {row['train_s']:.1f}s, sync {row['sync_s']:.2f}s")
        gen.close()
        learner.close()
        release_distributed()
        out["loop"][v] = {"calls": calls, **_rates(calls)}

    ratios = {}
    for v, r in out["loop"].items():
        if v in out["standalone"]:
            ratios[f"loop_over_standalone/{v}"] = r["samples_per_s"] / out["standalone"][v]["samples_per_s"]
    if "today" in out["standalone"]:
        for v, r in out["standalone"].items():
            if v != "today":
                ratios[f"standalone_{v}_over_today"] = r["samples_per_s"] / out["standalone"]["today"]["samples_per_s"]
        for v, r in out["loop"].items():
            ratios[f"loop_{v}_over_standalone_today"] = r["samples_per_s"] / out["standalone"]["today"]["samples_per_s"]
    out["ratios"] = ratios
    if args.json:
        print(json.dumps(out))
    else:
        for v, r in out["standalone"].items():
            say(f"standalone {v}: {r['samples_per_s']:.0f} samples/s, {r['tokens_per_s']:.0f} tokens/s "
                f"(first call {r['first_call_samples_per_s']:.0f}/s, engine start {r['engine_start_s']:.0f}s)")
        for v, r in out["loop"].items():
            say(f"in-loop    {v}: {r['samples_per_s']:.0f} samples/s, {r['tokens_per_s']:.0f} tokens/s")
        for k, x in ratios.items():
            say(f"{k}: {x:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
