"""The built-in tiny model: a few-million-parameter Llama-style model and a small byte-level BPE
tokenizer that brorl builds itself, so the default job needs nothing from a model hub.

:func:`build_tiny_model` writes a normal Hugging Face directory (``config.json``,
``model.safetensors``, ``tokenizer.json`` + config) that transformers and vLLM load as is.
The tokenizer is trained on text of the task family; digits stay single tokens (so arithmetic
is learnable), ``<answer>``/``</answer>`` are single tokens, and merges may cross spaces so the
task family's fixed phrases become single tokens (short prompts make training cheap). Attention head_dim is 64
because vLLM's CPU attention backend rejects 16.

:func:`warm_up` is the short supervised warm-up that teaches the answer format (prompt ->
``<answer>...</answer>``); its result is cached under ``~/.cache/brorl`` keyed by everything
that determines it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "build_tiny_model", "build_tokenizer", "warm_up", "cache_dir", "worked_steps", "TINY_ARCH", "ANSWER_OPEN",
    "ANSWER_CLOSE",
]

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
EOS = "<|eos|>"
PAD = "<|pad|>"
BOS = "<|bos|>"

# 4 layers x 256 hidden (4 heads of 64) x 512 MLP: ~2.9M parameters with the small vocabulary.
TINY_ARCH: dict[str, Any] = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "max_position_embeddings": 256,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
VOCAB_SIZE = 384
BUILD_VERSION = 2  # 2: the warm-up packs several sequences per row. Bump when the recipe changes so caches are rebuilt


def cache_dir() -> Path:
    """``$BRORL_CACHE`` or ``~/.cache/brorl``."""
    return Path(os.environ.get("BRORL_CACHE", Path.home() / ".cache" / "brorl"))


def _default_corpus() -> list[str]:
    """Text of the default task family (Reasoning Gym arithmetic) for the tokenizer."""
    import reasoning_gym as rg

    out = []
    for task, kw in [
        ("chain_sum", {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 3}),
        ("basic_arithmetic", {}),
    ]:
        for item in rg.create_dataset(task, size=500, seed=12345, **kw):
            out.append(item["question"] + "\n" + ANSWER_OPEN + str(item["answer"]) + ANSWER_CLOSE)
    return out


def worked_steps(expression: str) -> str:
    """A running-total worked solution of a chain of additions/subtractions:
    ``"8 + 0 - 7"`` -> ``"8+0=8, 8-7=1. "``.

    A few-million-parameter model cannot add three numbers in one forward pass after a
    short warm-up, but it learns the ~200 single-step facts quickly; written out step by step
    the task becomes a chain of facts it mostly knows, which is the regime where RL's
    sharpening shows (sampling at temperature 1 still makes slips that RL removes).
    """
    parts = expression.split()
    if len(parts) < 3 or len(parts) % 2 == 0 or any(op not in "+-" for op in parts[1::2]):
        raise ValueError(f"worked_steps: expected 'a + b - c ...', got {expression!r}")
    total = int(parts[0])
    steps = []
    for op, v in zip(parts[1::2], parts[2::2]):
        new = total + int(v) if op == "+" else total - int(v)
        steps.append(f"{total}{op}{v}={new}")
        total = new
    return ", ".join(steps) + ". "


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE ``transformers.PreTrainedTokenizerFast`` trained on ``corpus``
    (default: arithmetic task text). Digits are split one per token; the answer tags are
    atomic added tokens; ``<|eos|>`` ends responses."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(corpus) if corpus is not None else _default_corpus()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=TINY_ARCH["max_position_embeddings"]
    )
    fast.add_tokens([ANSWER_OPEN, ANSWER_CLOSE])
    return fast


def build_tiny_model(path: str | Path, seed: int = 0, corpus: Iterable[str] | None = None, arch: dict | None = None) -> Path:
    """Write a freshly initialised tiny Llama-style model + tokenizer to ``path`` (an HF
    directory with safetensors) and return the path. Deterministic for a given ``seed``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(corpus)
    a = dict(TINY_ARCH, **(arch or {}))
    cfg = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
        **a,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def _key(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` packed into rows of at most ``capacity`` tokens, first-fit over
    the lengths in decreasing order (each index once; a length over capacity gets a row alone)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def packed_batch(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, rows_of: int = 2) -> tuple[Any, Any, Any]:
    """``(prompt ids, response ids)`` pairs packed several to a row, rows ``rows_of`` times as
    wide as the longest pair: (input ids, labels with -100 outside the responses, position ids
    restarting at 0 for each pair). The same tokens and loss as one padded row per pair, with
    ~25% fewer positions to compute at the warm-up's lengths (padding to the longest pair costs
    ~1.4x the real tokens); padding at a row's end continues the last pair's positions, and no
    pair's token attends to it."""
    import torch

    lengths = [len(p) + len(r) for p, r in pairs]
    width = rows_of * max(lengths)
    rows = pack_rows(lengths, width)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        at = 0
        for i in row:
            p, r = pairs[i]
            n = len(p) + len(r)
            ids[b, at:at + n] = torch.tensor(p + r)
            labels[b, at + len(p):at + n] = torch.tensor(r)
            pos[b, at:at + n] = torch.arange(n)
            at += n
        pos[b, at:] = torch.arange(pos[b, at - 1] + 1, pos[b, at - 1] + 1 + width - at)
    return ids, labels, pos


def warm_up(
    base_dir: str | Path,
    out_dir: str | Path,
    pairs: Sequence[tuple[str, str]],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    log: Any = print,
) -> Path:
    """Supervised warm-up: teach ``prompt -> response`` (loss on response tokens + EOS only)
    with AdamW for ``steps`` steps, then save to ``out_dir``. Returns ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.train()
    enc = []
    for prompt, response in pairs:
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        enc.append((p, r))
    # foreach: one multi-tensor kernel per update instead of one small op per tensor; the
    # same arithmetic (bit-identical parameters), ~4x less time in the optimizer on a CPU
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.1, 1 - s / max(steps, 1)))
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(enc), (batch_size,), generator=g).tolist()
        ids, labels, pos = packed_batch([enc[i] for i in idx], tok.pad_token_id)
        # no attention mask and no cache: transformers then reads the packing from the position
        # ids (each sequence restarts at 0) and keeps every sequence's attention to itself
        loss = model(input_ids=ids, position_ids=pos, labels=labels, use_cache=False).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        sched.step()
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"[warm-up] step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s)")
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def cached_warm_model(
    pairs_fn: Any, key_parts: dict, steps: int, batch_size: int, lr: float, seed: int = 0, log: Any = print
) -> Path:
    """The built-in model after its warm-up, built once and cached under
    ``cache_dir()/tiny-<key>``. ``pairs_fn()`` makes the (prompt, response) warm-up pairs
    (only called on a cache miss); ``key_parts`` describes them for the cache key."""
    from filelock import FileLock

    key = _key({"v": BUILD_VERSION, "arch": TINY_ARCH, "vocab": VOCAB_SIZE, "steps": steps,
                "bs": batch_size, "lr": lr, "seed": seed, **key_parts})
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    out = root / f"tiny-{key}"
    if (out / "model.safetensors").is_file():  # built before: no need to wait for the lock
        return out
    with FileLock(str(root / f"tiny-{key}.lock")):
        if (out / "model.safetensors").is_file():
            return out
        base = root / f"tiny-base-{key}"
        t0 = time.time()
        build_tiny_model(base, seed=seed)
        if steps > 0:
            log(f"[warm-up] teaching the answer format: {steps} steps (cached in {out})")
            warm_up(base, out, pairs_fn(), steps, batch_size, lr, seed=seed, log=log)
            shutil.rmtree(base, ignore_errors=True)
        else:
            base.rename(out)
        log(f"[warm-up] built in {time.time() - t0:.0f}s")
    return out
