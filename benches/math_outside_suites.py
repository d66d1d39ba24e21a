"""brorl's math verifier and Math-Verify on other projects' own labelled grader tests.

The cases (tests/data/math_outside_suites.jsonl, converted by scripts/convert_math_outside_suites.py)
come from the test suites of Math-Verify, NeMo-Skills, hendrycks/math and MindSpeed-RL, with their
labels and the commit they were taken from. Per suite this prints the number of cases and how many
verdicts of each verifier match the suite's label, the wrong answers each one accepted (false
positives), and every case where a verifier misses the label.

    .venv/bin/python benches/math_outside_suites.py [--json] [--cases FILE] [--show-misses]

brorl is called as a user would: `brorl.verify_math(gold, response)`. Math-Verify is called the way
its README shows, with its defaults: `verify(parse(gold), parse(response))` (column `mv`); the
column `mv_cfg` runs it with the options each case's test used (extraction targets, precision,
strict, allow_set_relation_comp), which is what its own labels were written for.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import brorl

DEFAULT_CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "math_outside_suites.jsonl"


def load_cases(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def math_verify_fns():
    """(default, configured) Math-Verify verdict functions, or None when it is not installed."""
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except ImportError:
        return None
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    def default(case: dict) -> bool:
        try:
            return bool(verify(parse(case["gold"]), parse(case["response"])))
        except Exception:  # noqa: BLE001 - a crash is a "no" verdict, as in its own wrappers
            return False

    def configured(case: dict) -> bool:
        opts = case.get("options") or {}
        targets = []
        for t in opts.get("match_types", ["latex", "expr"]):
            if t == "latex":
                targets.append(LatexExtractionConfig(boxed_match_priority=0))
            else:
                targets.append(ExprExtractionConfig())
        if "match_types" not in opts:
            targets = [LatexExtractionConfig(), ExprExtractionConfig()]
        try:
            g = parse(case["gold"], targets)
            p = parse(case["response"], targets)
            return bool(
                verify(
                    g,
                    p,
                    float_rounding=opts.get("precision", 6),
                    strict=opts.get("strict", True),
                    allow_set_relation_comp=opts.get("allow_set_relation_comp", False),
                )
            )
        except Exception:  # noqa: BLE001
            return False

    return default, configured


def evaluate(cases: list[dict], with_math_verify: bool = True) -> dict:
    fns = math_verify_fns() if with_math_verify else None
    per_suite: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    misses: list[dict] = []
    for case in cases:
        s = per_suite[case["suite"]]
        label = bool(case["label"])
        verdicts = {"brorl": brorl.verify_math(case["gold"], case["response"])}
        if fns is not None:
            verdicts["mv"] = fns[0](case)
            verdicts["mv_cfg"] = fns[1](case)
        s["cases"] += 1
        s["positive"] += label
        for name, v in verdicts.items():
            s[name] += v == label
            s[name + "_fp"] += v and not label
        if any(v != label for v in verdicts.values()):
            misses.append({**{k: case[k] for k in ("suite", "test", "gold", "response", "label")},
                           **verdicts, "label_note": case.get("label_note", "")})
    total: dict[str, int] = defaultdict(int)
    for s in per_suite.values():
        for k, v in s.items():
            total[k] += v
    return {"suites": {k: dict(v) for k, v in per_suite.items()}, "total": dict(total), "misses": misses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show-misses", action="store_true")
    ap.add_argument("--no-math-verify", action="store_true")
    args = ap.parse_args(argv)
    res = evaluate(load_cases(args.cases), with_math_verify=not args.no_math_verify)
    if args.json:
        print(json.dumps(res, indent=1, ensure_ascii=False))
        return 0
    cols = ["brorl", "mv", "mv_cfg"] if not args.no_math_verify else ["brorl"]
    print(f"{'suite':16} {'cases':>5} " + " ".join(f"{c:>8} {c + ' FP':>9}" for c in cols))
    rows = list(res["suites"].items()) + [("total", res["total"])]
    for name, s in rows:
        print(f"{name:16} {s['cases']:5d} "
              + " ".join(f"{s.get(c, 0):8d} {s.get(c + '_fp', 0):9d}" for c in cols))
    if args.show_misses:
        for m in res["misses"]:
            print(json.dumps(m, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
