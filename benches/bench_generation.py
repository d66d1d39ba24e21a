"""Generation throughput at small vs large N with the same total number of samples, through
the real vLLM engine brorl trains with (the paper's claim: 36.5 samples/s at N=16 vs 72.4 at
N=512 on 64 H100s, because 512 samples of one prompt share its prefix and decode as one
compute-bound batch).

    .venv/bin/python benches/bench_generation.py [--json] [--n 16 64 256 512] [--samples 4096]
        [--prompt-len 64] [--max-tokens 32] [--model DIR] [--train]

Every N gets samples/N prompts (distinct random token prompts of --prompt-len tokens) and
generates exactly --max-tokens tokens per sample (the tiny random-init model rarely stops
early; the lengths are reported). Each N runs once after a warm-up call. The peak resident
memory of the process is sampled while each N runs; with --train the N=max batch also goes
through one DeepSpeed learner step (micro-batches packed under the token budget), and the
peak RSS of that step is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time


class PeakRSS:
    """Samples this process's resident memory every 20 ms while active."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        self.peak = self.proc.memory_info().rss
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._t is not None:
            self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON line with the results")
    ap.add_argument("--n", type=int, nargs="+", default=[16, 512], help="rollouts per prompt to compare")
    ap.add_argument("--samples", type=int, default=4096, help="total samples per N (samples/N prompts)")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--model", help="HF model directory (default: the built-in tiny model, freshly built)")
    ap.add_argument("--kv-cache-gib", type=float, default=2.0)
    ap.add_argument("--max-num-seqs", type=int, default=1024)
    ap.add_argument("--train", action="store_true", help="also run one learner step on the largest-N batch")
    args = ap.parse_args()
    for n in args.n:
        if n < 1 or args.samples % n:
            ap.error(f"--samples {args.samples} must be a multiple of every N (got N={n})")

    import numpy as np

    from brorl.train.engines import VLLMGenerator
    from brorl.train.interfaces import SamplingSpec

    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        from brorl.train.tiny import build_tiny_model

        model = str(build_tiny_model(os.path.join(tmp.name, "tiny")))
    gen = VLLMGenerator(model, kv_cache_gib=args.kv_cache_gib, max_num_seqs=args.max_num_seqs,
                        max_model_len=args.prompt_len + args.max_tokens + 8)
    vocab = len(gen.tokenizer)
    rng = np.random.default_rng(0)
    spec = SamplingSpec(temperature=1.0, top_p=1.0, max_tokens=args.max_tokens)
    # warm-up: first calls pay one-off costs (allocations, kernel selection)
    gen.generate([rng.integers(5, vocab - 5, args.prompt_len).tolist() for _ in range(4)], 16, spec, seed=0)
    results = {}
    last = None
    for n in args.n:
        prompts = [rng.integers(5, vocab - 5, args.prompt_len).tolist() for _ in range(args.samples // n)]
        gen.reset()
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            ro = gen.generate(prompts, n, spec, seed=n)
            dt = time.perf_counter() - t0
        b = ro.batch
        results[str(n)] = {
            "prompts": len(prompts), "samples": b.n_rollouts, "seconds": dt,
            "samples_per_s": b.n_rollouts / dt, "tokens_per_s": b.n_tokens / dt,
            "mean_response_tokens": float(b.response_lengths.mean()), "peak_rss_gib": mem.peak / 2**30,
        }
        last = (n, prompts, b)
        if not args.json:
            r = results[str(n)]
            print(f"N={n:4d}: {r['prompts']:5d} prompts x {n} = {r['samples']} samples in {dt:6.2f}s "
                  f"-> {r['samples_per_s']:8.1f} samples/s, {r['tokens_per_s']:9.0f} tokens/s, peak RSS {r['peak_rss_gib']:.2f} GiB",
                  flush=True)
    out: dict = {"model": model if args.model else "builtin:tiny (random init)", "samples_per_n": args.samples,
                 "prompt_len": args.prompt_len, "max_tokens": args.max_tokens, "by_n": results}
    lo, hi = str(min(args.n)), str(max(args.n))
    out["ratio_samples_per_s_max_n_over_min_n"] = results[hi]["samples_per_s"] / results[lo]["samples_per_s"]
    gen.close()
    if args.train and last is not None:
        from brorl.train.config import load_config
        from brorl.train.interfaces import TrainBatch
        from brorl.train.learner import DeepSpeedLearner

        n, prompts, b = last
        b.set_rewards(rng.integers(0, 2, b.n_rollouts).astype(np.float32))
        cfg = load_config(overrides=["deepspeed.micro_batch_tokens=8192", f"generation.max_tokens={args.max_tokens}"])
        learner = DeepSpeedLearner(model, cfg, lr=1e-4, total_optimizer_steps=1)
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            m = learner.train_step(TrainBatch(b, prompts, b.advantages()))
            dt = time.perf_counter() - t0
        out["train_step"] = {"n": n, "rollouts": b.n_rollouts, "tokens": int(b.n_tokens + len(prompts[0]) * b.n_rollouts),
                             "seconds": dt, "micro_batches": m["micro_batches"], "peak_rss_gib": mem.peak / 2**30}
        learner.close()
    if args.json:
        print(json.dumps(out))
    else:
        print(f"samples/s ratio N={hi} / N={lo}: {out['ratio_samples_per_s_max_n_over_min_n']:.2f}x "
              f"(paper, 64 H100s, 1.5B model: 72.4 / 36.5 = 1.98x)")
        if "train_step" in out:
            t = out["train_step"]
            print(f"learner step on the N={t['n']} batch ({t['rollouts']} rollouts, {t['tokens']} tokens, "
                  f"{t['micro_batches']:.0f} micro-batches): {t['seconds']:.1f}s, peak RSS {t['peak_rss_gib']:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
