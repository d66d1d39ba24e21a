"""``brorl verify math``: one pair (``--gold G --response R``; exit status 0 when correct, 1 when
not) or a JSONL file of ``{"gold": ..., "response": ...}`` rows (``--jsonl FILE``; one JSON line
with the row's status per row, ``{"line": N, "status": ...}`` with N the row's line in the file
(from 1, as editors count), a summary on stderr, exit status 0; 2 on malformed input, with a
one-line message naming the line and field)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--gold", help="the reference answer (LaTeX, with or without \\boxed{})")
    src.add_argument("--jsonl", metavar="FILE", help="rows with `gold` and `response` fields")
    parser.add_argument("--response", help="a model response or a bare answer (with --gold)")
    parser.add_argument("--threads", type=int, default=None, help="threads for --jsonl (default: all cores)")
    parser.add_argument(
        "--no-last-number",
        action="store_true",
        help="do not fall back to the last number when a response has no marked answer",
    )


def _read_rows(path: str) -> tuple[list[str], list[str], list[int]]:
    """Golds, responses and each row's line number (from 1)."""
    golds, responses, lines = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"line {lineno}: not JSON ({e})") from None
            if not isinstance(row, dict):
                raise ValueError(f"line {lineno}: expected a JSON object, got {type(row).__name__}")
            for field in ("gold", "response"):
                if not isinstance(row.get(field), str):
                    raise ValueError(f"line {lineno}: field `{field}` must be a string, got {row.get(field)!r}")
            golds.append(row["gold"])
            responses.append(row["response"])
            lines.append(lineno)
    return golds, responses, lines


def run(args: argparse.Namespace) -> int:
    import brorl

    last_number = not args.no_last_number
    if args.gold is not None:
        if args.response is None:
            print("brorl verify math: --gold needs --response", file=sys.stderr)
            return 2
        status = brorl.verify_math_status(args.gold, args.response, last_number=last_number)
        print(status)
        return 0 if status == "correct" else 1
    try:
        golds, responses, lines = _read_rows(args.jsonl)
    except (OSError, ValueError) as e:
        print(f"brorl verify math: {args.jsonl}: {e}", file=sys.stderr)
        return 2
    try:
        codes = brorl.verify_math_batch_status(
            golds, responses, threads=args.threads, last_number=last_number
        )
    except brorl.BrorlError as e:
        # `golds[i]` / `responses[i]` in the message: say which line of the file that is
        msg = re.sub(r"(golds|responses)\[(\d+)\]", lambda m: f"line {lines[int(m.group(2))]}", str(e))
        print(f"brorl verify math: {args.jsonl}: {msg}", file=sys.stderr)
        return 2
    names = [brorl.MATH_STATUSES[c] for c in codes]
    for lineno, name in zip(lines, names):
        print(json.dumps({"line": lineno, "status": name}))
    counts = Counter(names)
    summary = ", ".join(f"{n} {counts[n]}" for n in brorl.MATH_STATUSES if counts[n])
    print(f"{len(names)} rows: {summary}", file=sys.stderr)
    return 0
