"""Sampling N responses per prompt for ``brorl eval``: vLLM (the default) or Hugging Face
``generate`` (the fallback, slower but needs only transformers).

Both engines get the same token ids (rendered here with the model's own tokenizer and chat
template), so a prompt is the same whichever engine runs it. torch, transformers and vLLM are
imported inside the functions that use them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brorl.errors import InvalidArgumentError

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass
class SamplingSpec:
    samples: int = 16
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int = 0

    def check(self) -> None:
        if self.samples < 1:
            raise InvalidArgumentError(f"invalid value for `--samples`: {self.samples} (must be >= 1)")
        if not self.temperature >= 0.0:
            raise InvalidArgumentError(f"invalid value for `--temperature`: {self.temperature} (must be >= 0)")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidArgumentError(f"invalid value for `--top-p`: {self.top_p} (must be in (0, 1])")
        if self.max_tokens < 1:
            raise InvalidArgumentError(f"invalid value for `--max-tokens`: {self.max_tokens} (must be >= 1)")


@dataclass
class Completions:
    """The samples of one prompt: text, response length in tokens (end-of-sequence token
    included, as the engine counts it) and whether the token limit cut it off."""

    texts: list[str]
    lengths: np.ndarray
    truncated: np.ndarray


def _is_model_dir(d: Path) -> bool:
    return (d / "config.json").is_file() and (
        any((d / f).is_file() for f in _WEIGHT_FILES) or any(d.glob("*.safetensors"))
    )


def _step_of(path: Path) -> int:
    """The largest number in a checkpoint path (step_000040, checkpoint-40, global_step40)."""
    nums = [int(n) for part in path.parts for n in re.findall(r"\d+", part)]
    return max(nums) if nums else -1


def resolve_model_dir(path: str) -> Path:
    """A Hugging Face model directory: the one given; for a ``brorl train`` run or checkpoint
    directory, its (newest) checkpoint exported to Hugging Face format; otherwise the newest
    model directory found up to three levels below."""
    p = Path(path)
    if not p.exists():
        from brorl.train.hub import is_hub_id, resolve_hub_snapshot

        if is_hub_id(path):  # a Hub id such as 'Qwen/Qwen2.5-0.5B', through the HF cache
            return resolve_hub_snapshot(path, "invalid value for `--model`", error=InvalidArgumentError)
        raise InvalidArgumentError(f"invalid value for `--model`: {path!r} does not exist")
    if not p.is_dir():
        raise InvalidArgumentError(f"invalid value for `--model`: {path!r} is not a directory")
    if _is_model_dir(p):
        return p
    from brorl.eval import checkpoint

    found = checkpoint.locate(p)
    if found is not None:
        return checkpoint.export(*found)
    candidates = [d for pattern in ("*", "*/*", "*/*/*") for d in p.glob(pattern) if d.is_dir() and _is_model_dir(d)]
    if not candidates:
        raise InvalidArgumentError(
            f"invalid value for `--model`: {path!r} holds no model (looked for config.json with "
            "safetensors/bin weights in it and up to three levels below)"
        )
    candidates.sort(key=lambda d: (_step_of(d.relative_to(p)), d.stat().st_mtime))
    return candidates[-1]


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as e:
        raise InvalidArgumentError(
            f"invalid value for `--model`: no usable tokenizer in {str(model_dir)!r} ({type(e).__name__}: {e})"
        ) from e


def render_prompt(tokenizer, user: str, raw: str, system: str | None, chat: bool) -> list[int]:
    """Token ids of one prompt: through the chat template when ``chat``, else the raw text with
    the tokenizer's own special tokens (BOS where it adds one), ending with a line break so the
    response starts on its own line (as ``brorl train`` renders raw prompts)."""
    if chat:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The template already holds BOS and friends.
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(raw if raw.endswith("\n") else raw + "\n")["input_ids"])


def model_max_len(model_dir: Path) -> int | None:
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    v = cfg.get("max_position_embeddings")
    return int(v) if v else None


def check_context(model_dir: Path, prompts: list[list[int]], max_tokens: int) -> int:
    """Longest prompt + max_tokens, checked against the model's context length."""
    longest = max(len(p) for p in prompts)
    need = longest + max_tokens
    limit = model_max_len(model_dir)
    if limit is not None and need > limit:
        raise InvalidArgumentError(
            f"invalid value for `--max-tokens`: {max_tokens} plus the longest prompt ({longest} tokens) "
            f"exceeds the model's context of {limit} tokens"
        )
    return need


def generate_vllm(
    model_dir: Path,
    prompts: list[list[int]],
    stops: list[tuple[str, ...]],
    spec: SamplingSpec,
    dtype: str = "auto",
    enforce_eager: bool = False,
    kv_cache_gib: int = 2,
) -> list[Completions]:
    """All prompts in one ``generate`` call (vLLM batches and prefix-caches them), ``n=samples``
    per prompt. On CPU the engine runs in this process with a bounded KV cache."""
    # In-process engine: no worker process to spawn (callers need no __main__ guard for it) and
    # the KV cache size must be set before vLLM reads its environment.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        from brorl.train.engines import inspect_model_in_process

        inspect_model_in_process(model_dir)  # no describe-the-model subprocess at the first start
    need = check_context(model_dir, prompts, spec.max_tokens)
    llm = LLM(
        model=str(model_dir),
        dtype=dtype,  # type: ignore[arg-type]  # checked by vLLM, which names the bad value
        seed=spec.seed,
        max_model_len=need,
        enable_prefix_caching=True,
        enforce_eager=enforce_eager,
    )
    params = [
        SamplingParams(
            n=spec.samples,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_tokens=spec.max_tokens,
            # No per-request seed: the engine's seed makes runs repeatable, and vLLM-cpu 0.32
            # fails on seeded requests whose prefill is split into chunks ("CPU Generator does
            # not use offset").
            stop=list(stop) or None,
        )
        for stop in stops
    ]
    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
    result = []
    for out in outs:
        cs = sorted(out.outputs, key=lambda c: c.index)
        result.append(
            Completions(
                texts=[c.text for c in cs],
                lengths=np.array([len(c.token_ids) for c in cs], dtype=np.int64),
                truncated=np.array([c.finish_reason == "length" for c in cs], dtype=bool),
            )
        )
    del llm
    return result


def generate_hf(
    model_dir: Path,
    tokenizer,
    prompts: list[list[int]],
    stops: list[tuple[str, ...]],
    spec: SamplingSpec,
    dtype: str = "auto",
) -> list[Completions]:
    """Hugging Face ``generate``, one prompt at a time with ``num_return_sequences=samples``
    (no padding between prompts, so each prompt sees exactly the ids vLLM would)."""
    check_context(model_dir, prompts, spec.max_tokens)
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype)
    model.eval()
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    eos_ids = set([eos] if isinstance(eos, int) else list(eos or []))
    if not eos_ids:
        raise InvalidArgumentError(f"invalid value for `--model`: {str(model_dir)!r} defines no end-of-sequence token")
    pad = min(eos_ids)
    sample = spec.temperature > 0
    result = []
    for i, (ids, stop) in enumerate(zip(prompts, stops)):
        torch.manual_seed(spec.seed + i)
        kwargs = dict(
            do_sample=sample,
            max_new_tokens=spec.max_tokens,
            num_return_sequences=spec.samples,
            pad_token_id=pad,
            eos_token_id=sorted(eos_ids),
        )
        if sample:
            kwargs.update(temperature=spec.temperature, top_p=spec.top_p)
        else:  # greedy: the model's generation config must not switch sampling back on
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        x = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), **kwargs)  # type: ignore[misc]
        texts, lengths, truncated = [], [], []
        for row in out[:, len(ids):].tolist():
            end = next((j for j, t in enumerate(row) if t in eos_ids), None)
            toks = row if end is None else row[: end + 1]
            text = tokenizer.decode(toks if end is None else toks[:-1], skip_special_tokens=True)
            hit = [text.find(s) for s in stop if s in text]
            if hit:  # vLLM leaves the stop string out of the text; do the same
                text = text[: min(hit)]
            texts.append(text)
            lengths.append(len(toks))
            truncated.append(end is None and not hit and len(toks) >= spec.max_tokens)
        result.append(Completions(texts, np.array(lengths, dtype=np.int64), np.array(truncated, dtype=bool)))
    return result
