"""``brorl verify math``: one pair (``--gold G --response R``; exit status 0 when correct, 1 when
not) or a JSONL file of ``{"gold": ..., "response": ...}`` rows (``--jsonl FILE``; one JSON line
with the row's status per row, a summary on stderr, exit status 0; 2 on malformed input)."""

from __future__ import annotations

import argparse
import json
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


def _read_rows(path: str) -> tuple[list[str], list[str]]:
    golds, responses = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(l for l in f if l.strip()):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"row {i}: not JSON ({e})") from None
            for field in ("gold", "response"):
                if not isinstance(row.get(field), str):
                    raise ValueError(f"row {i}: field `{field}` must be a string, got {row.get(field)!r}")
            golds.append(row["gold"])
            responses.append(row["response"])
    return golds, responses


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
        golds, responses = _read_rows(args.jsonl)
    except (OSError, ValueError) as e:
        print(f"brorl verify math: {args.jsonl}: {e}", file=sys.stderr)
        return 2
    try:
        codes = brorl.verify_math_batch_status(
            golds, responses, threads=args.threads, last_number=last_number
        )
    except brorl.BrorlError as e:
        print(f"brorl verify math: {e}", file=sys.stderr)
        return 2
    names = [brorl.MATH_STATUSES[c] for c in codes]
    for i, name in enumerate(names):
        print(json.dumps({"row": i, "status": name}))
    counts = Counter(names)
    summary = ", ".join(f"{n} {counts[n]}" for n in brorl.MATH_STATUSES if counts[n])
    print(f"{len(names)} rows: {summary}", file=sys.stderr)
    return 0
