"""``brorl eval``: pass@k of a model on math, HumanEval and Reasoning Gym task sets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="Hugging Face model directory, or a `brorl train` run or checkpoints/step_* directory (its newest checkpoint, exported once to <step>/hf)")
    p.add_argument(
        "--data", required=True, nargs="+", metavar="SPEC",
        help="task sets: a .jsonl math file, 'humaneval', or rg:<task>[,<task>...] (Reasoning Gym tasks or categories; a task may carry its config: rg:chain_sum[min_terms=2])",
    )
    p.add_argument("--samples", type=int, default=16, help="responses per problem (paper: 16)")
    p.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (paper: 0.6)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (paper: 0.95)")
    p.add_argument("--max-tokens", type=int, default=1024, help="new tokens per response; longer ones count as truncated")
    p.add_argument("--k", type=int, nargs="+", default=None, help="pass@k values to report (default 1, 2, 4, ... up to --samples)")
    p.add_argument("--engine", choices=("auto", "vllm", "hf"), default="auto", help="vllm (default when installed) or Hugging Face generate")
    p.add_argument("--chat-template", choices=("auto", "on", "off"), default="auto", help="format prompts with the tokenizer's chat template (auto: when it has one)")
    p.add_argument("--rg-seed", type=int, default=42, help="seed of the Reasoning Gym problems (fixed so runs compare)")
    p.add_argument("--rg-size", type=int, default=50, help="problems per Reasoning Gym task")
    p.add_argument("--limit", type=int, default=None, help="use only the first N problems of each task set (of each task for Reasoning Gym; quick runs)")
    p.add_argument(
        "--system-prompt", default=None,
        help="system prompt for every task set, '' for none (default: Reasoning Gym's own <answer>-format prompt for rg sets, none for the others)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--dtype", default="auto", help="model dtype for the engine (auto, float32, bfloat16, ...)")
    p.add_argument("--enforce-eager", action="store_true", help="vLLM: skip graph compilation (faster start, slower decode)")
    p.add_argument("--kv-cache-gib", type=int, default=2, help="vLLM on CPU: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE wins when set)")
    p.add_argument("--workers", type=int, default=None, help="threads/processes for the verifiers (default: all cores)")
    p.add_argument("--out", default=None, help="directory for results.json, results.md and samples.jsonl (default eval_results/<model>-<time>)")
    p.add_argument("--json", action="store_true", help="print the results JSON (without samples) instead of the table")


def run(args: argparse.Namespace) -> int:
    import json

    from brorl.errors import BrorlError
    from brorl.eval import report
    from brorl.eval.runner import evaluate

    try:
        result = evaluate(
            args.model, args.data, samples=args.samples, temperature=args.temperature, top_p=args.top_p,
            max_tokens=args.max_tokens, engine=args.engine, chat_template=args.chat_template,
            rg_seed=args.rg_seed, rg_size=args.rg_size, limit=args.limit, seed=args.seed, dtype=args.dtype,
            enforce_eager=args.enforce_eager, kv_cache_gib=args.kv_cache_gib, workers=args.workers, ks=args.k,
            system_prompt=args.system_prompt,
        )
    except BrorlError as e:
        print(f"brorl eval: error: {e}", file=sys.stderr)
        return 2
    out = args.out or str(Path("eval_results") / f"{Path(args.model).resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}")
    paths = report.write(result, out)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    else:
        print(report.table(result))
        print(f"\nwrote {paths['json']}, {paths['markdown']} and {paths['samples']}")
    return 0
