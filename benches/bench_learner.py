"""The DeepSpeed learner alone: one update's time, tokens/s, MFU and peak memory on a synthetic
batch, with and without chunked log-probs (deepspeed.logits_chunk_tokens).

    python benches/bench_learner.py --shape 0.5b --dtype bfloat16 --chunks 0 1024     # a GPU
    python benches/bench_learner.py --shape tiny --dtype float32 --chunks 0 1024      # CPU check
    python benches/bench_learner.py --model models/smollm2-135m-instruct --n 64 --groups 4 ...

The model is a randomly initialised Llama of the named shape (``0.5b``: Qwen2.5-0.5B's widths,
24 layers, 896 hidden, 4864 MLP, 14 heads / 2 KV heads, 151,936 vocabulary, tied embeddings;
``tiny``: 2 layers, 64 hidden, 8,000 vocabulary) or an existing directory (--model). The batch
has --groups prompts of --prompt-len random tokens and --n responses each, of random lengths
up to --response-len (all distinct, so no copies are merged). Each setting runs in a process
of its own (clean peak memory, its own process group): a warm-up step, then --steps timed steps.

Tokens/s counts prompt + response tokens of every sequence. MFU = model FLOPs / (seconds x
peak): model FLOPs = 8 x parameters x tokens (policy forward 2 + backward 4, reference forward
2; embedding lookups excluded, the LM head included) - the recomputation of chunked logits in
the backward pass is not counted as useful work. The peak is --peak-tflops, or looked up from
the GPU's name.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    "0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
             "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 151936, "tie_word_embeddings": True,
             "max_position_embeddings": 4096, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
             "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 8000, "tie_word_embeddings": False,
             "max_position_embeddings": 1024},
}
# Dense bf16 tensor-core peaks (TFLOP/s) by a substring of torch.cuda.get_device_name().
PEAKS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "L4": 121.0,
         "A10": 125.0, "4090": 165.0, "3090": 71.0, "V100": 125.0}


def peak_tflops(name: str) -> float | None:
    for k, v in PEAKS.items():
        if k in name:
            return v
    return None


def build_model(shape: str, path: Path) -> Path:
    """A randomly initialised Llama of ``shape`` with the built-in tokenizer (only its pad id
    matters: the batch is random token ids below the model's vocabulary)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from brorl.train.tiny import build_tokenizer

    tok = build_tokenizer(corpus=["1 + 2 = 3", "<answer>3</answer>"] * 50, vocab_size=300)
    cfg = LlamaConfig(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                      **SHAPES[shape])
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def worker(args: argparse.Namespace) -> dict:
    """One setting, in this process."""
    import numpy as np
    import torch

    import brorl
    from brorl.train.config import load_config
    from brorl.train.interfaces import TrainBatch
    from brorl.train.learner import DeepSpeedLearner, release_distributed

    on_gpu = torch.cuda.is_available() and not args.cpu
    if not on_gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    cfg = load_config(overrides=[
        f"model.dtype={args.dtype}", f"deepspeed.zero_stage={args.zero_stage}",
        f"deepspeed.backend={'nccl' if on_gpu else 'gloo'}", f"deepspeed.logits_chunk_tokens={args.chunk}",
        f"deepspeed.micro_batch_tokens={args.micro_batch_tokens}", f"generation.max_tokens={args.response_len}",
        "deepspeed.merge_duplicates=false", f"model.gradient_checkpointing={str(args.grad_ckpt).lower()}",
    ])
    learner = DeepSpeedLearner(args.model, cfg, lr=1e-6, total_optimizer_steps=args.steps + 1, seed=0)
    vocab = learner.engine.module.config.vocab_size
    params = sum(p.numel() for n, p in learner.engine.module.named_parameters() if "embed_tokens" not in n)
    if getattr(learner.engine.module.config, "tie_word_embeddings", False):
        params += learner.engine.module.get_output_embeddings().weight.numel()  # the head's matmul still runs
    rng = np.random.default_rng(0)
    pidx = np.repeat(np.arange(args.groups), args.n)
    toks = [rng.integers(3, vocab, size=int(rng.integers(max(1, args.response_len // 2), args.response_len + 1))).tolist()
            for _ in range(args.groups * args.n)]
    lps = [(-rng.random(len(t))).tolist() for t in toks]
    prompts = [rng.integers(3, vocab, size=args.prompt_len).tolist() for _ in range(args.groups)]
    tokens = sum(len(t) + args.prompt_len for t in toks)

    def step() -> float:
        b = brorl.RolloutBatch.from_lists(pidx, toks, lps)
        b.set_rewards(rng.integers(0, 2, len(toks)).astype(np.float32))
        if on_gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        learner.train_step(TrainBatch(b, prompts, b.advantages()))
        if on_gpu:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    step()  # warm-up: allocator, kernels, DeepSpeed buffers
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    times = [step() for _ in range(args.steps)]
    sec = float(np.median(times))
    out = {"chunk": args.chunk, "device": torch.cuda.get_device_name() if on_gpu else "cpu", "dtype": args.dtype,
           "zero_stage": args.zero_stage, "params": params, "vocab": vocab, "sequences": len(toks),
           "tokens": tokens, "step_s": sec, "tokens_per_s": tokens / sec}
    if on_gpu:
        out["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        peak = args.peak_tflops or peak_tflops(out["device"])
        if peak:
            out["peak_tflops"] = peak
            out["mfu"] = 8.0 * params * tokens / sec / (peak * 1e12)
    import resource

    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    learner.close()
    release_distributed()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="0.5b")
    ap.add_argument("--model", help="an existing HF model directory instead of --shape")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    ap.add_argument("--zero-stage", type=int, default=2)
    ap.add_argument("--chunks", type=int, nargs="+", default=[0, 1024], help="logits_chunk_tokens settings (0 = full logits)")
    ap.add_argument("--n", type=int, default=16, help="responses per prompt")
    ap.add_argument("--groups", type=int, default=4, help="prompts")
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--response-len", type=int, default=512)
    ap.add_argument("--micro-batch-tokens", type=int, default=16384)
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing")
    ap.add_argument("--steps", type=int, default=2, help="timed steps (median reported)")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--cpu", action="store_true", help="run on CPU (gloo) even if a GPU is present")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)  # worker mode
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.chunk is not None:  # one setting, in this process
        res = worker(args)
        Path(args.out).write_text(json.dumps(res))
        return 0

    tmp = tempfile.TemporaryDirectory()
    if args.model is None:
        args.model = str(build_model(args.shape, Path(tmp.name) / args.shape))
    results = []
    for chunk in args.chunks:
        out = Path(tmp.name) / f"r{chunk}.json"
        cmd = [sys.executable, __file__, "--chunk", str(chunk), "--out", str(out), "--model", args.model]
        for k in ("dtype", "zero_stage", "n", "groups", "prompt_len", "response_len", "micro_batch_tokens", "steps"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
        cmd += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
        cmd += ["--cpu"] if args.cpu else []
        cmd += ["--grad-ckpt"] if args.grad_ckpt else []
        env = dict(os.environ)
        for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
            env.pop(var, None)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0 or not out.is_file():
            res = {"chunk": chunk, "error": (r.stderr or r.stdout)[-2000:]}
        else:
            res = json.loads(out.read_text())
        results.append(res)
        if not args.json:
            if "error" in res:
                print(f"logits_chunk_tokens={chunk}: FAILED\n{res['error']}", flush=True)
            else:
                mem = f", peak GPU memory {res['peak_gpu_mem_gib']:.2f} GiB" if "peak_gpu_mem_gib" in res else ""
                mfu = f", MFU {100 * res['mfu']:.1f}%" if "mfu" in res else ""
                print(f"logits_chunk_tokens={chunk}: {res['sequences']} sequences, {res['tokens']} tokens, "
                      f"{res['params'] / 1e6:.0f}M params, vocab {res['vocab']}, {res['dtype']} ZeRO-{res['zero_stage']} on "
                      f"{res['device']}: step {res['step_s']:.2f}s, {res['tokens_per_s']:.0f} tokens/s{mfu}{mem}, "
                      f"peak RSS {res['peak_rss_gib']:.2f} GiB", flush=True)
    if args.json:
        print(json.dumps({"results": results}))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
