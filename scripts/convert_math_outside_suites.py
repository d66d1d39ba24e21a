"""Converts other projects' labelled math-grader test cases into tests/data/math_outside_suites.jsonl.

The cases are data (gold, response, label) with attribution; nothing of the graders' code is used.
Inputs are checkouts of the source repositories at the commits recorded below:

    python scripts/convert_math_outside_suites.py --math-verify DIR --nemo-skills DIR \
        --hendrycks DIR --out tests/data/math_outside_suites.jsonl

Each row: suite, repo, path, commit, test (function), options (non-default grader options the
case was written for), gold, response, label (1 = the suite says equivalent), and label_note where
the label is judged wrong or holds only under a non-default option (see LABEL_NOTES).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
from pathlib import Path

MATH_VERIFY = ("huggingface/Math-Verify", "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a")
NEMO = ("NVIDIA/NeMo-Skills", "0b012df8a09cd4730d31b16e90a0d8f13d145fb8")
HENDRYCKS = ("hendrycks/math", "985bdc1696e88e8643f081a0ff4719da39f2ae2a")
MINDSPEED = ("codemayq/MindSpeed-RL", "9312f4f8902d7e892b6c19a60eafe596eb830118")

# Math-Verify test files holding (gold, pred, expected[, option]) parametrized cases.
MV_FILES = [
    "tests/test_all.py",
    "tests/test_boxed.py",
    "tests/test_numina_cases.py",
    "tests/test_open_thoughts.py",
    "tests/test_strict.py",
    "tests/test_yujianll.py",
]

# MindSpeed-RL tests/ut/utils/test_grader.py: math_equal(pred, gt) asserts (pred, gt, expected).
MINDSPEED_CASES = [
    ("x+1", "x+2n+1", 0),
    ("x+1", "x+1", 1),
    ("x+2", "x+1", 0),
    ("1.0", "1", 1),
    ("1.0001", "1", 1),
    ("1.1", "1", 0),
]


def _eval_node(node: ast.AST) -> object:
    """Literal value of a parametrize element (one f-string case uses math.sqrt)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        code = compile(ast.Expression(node), "<case>", "eval")
        return eval(code, {"math": math, "__builtins__": {}})  # noqa: S307 - our own input files


def _call_options(fn: ast.FunctionDef) -> dict[str, ast.AST]:
    for sub in ast.walk(fn):
        if isinstance(sub, ast.Call) and getattr(sub.func, "id", "") == "compare_strings":
            return {k.arg: k.value for k in sub.keywords if k.arg}
    return {}


def math_verify_cases(root: Path) -> list[dict]:
    rows = []
    for rel in MV_FILES:
        tree = ast.parse((root / rel).read_text())
        for fn in tree.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            for dec in fn.decorator_list:
                if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                    continue
                names = [n.strip() for n in _eval_node(dec.args[0]).split(",")]
                opts_nodes = _call_options(fn)
                for elt in dec.args[1].elts:
                    vals = dict(zip(names, [_eval_node(e) for e in elt.elts]))
                    gold, pred = vals["gold"], vals["pred"]
                    label = vals.get("expected", vals.get("result"))
                    options = {}
                    for key, node in opts_nodes.items():
                        value = vals[node.id] if isinstance(node, ast.Name) else _eval_node(node)
                        options[key] = value
                    rows.append(_row("math_verify", MATH_VERIFY, rel, fn.name, options, gold, pred, label))
            if fn.name == "test_precision":
                # The one string case of this test (the rest call sympy directly).
                rows.append(
                    _row("math_verify", MATH_VERIFY, rel, fn.name,
                         {"match_types": ["latex", "expr"], "precision": 4},
                         "$\\frac{1}{3}$", "0.3333$", 1)
                )
    return rows


def nemo_cases(root: Path) -> list[dict]:
    rel = "tests/test_math_equal.py"
    tree = ast.parse((root / rel).read_text())
    rows = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        label = 1 if fn.name == "test_correct_examples" else 0
        for dec in fn.decorator_list:
            if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize":
                for elt in dec.args[1].elts:
                    a, b = (_eval_node(e) for e in elt.elts)
                    # The test asserts both argument orders; None is an absent answer.
                    for gold, pred in ((a, b), (b, a)):
                        if gold is None:
                            continue
                        rows.append(_row("nemo_skills", NEMO, rel, fn.name, {},
                                         str(gold), "" if pred is None else str(pred), label))
    return rows


def hendrycks_cases(root: Path) -> list[dict]:
    rel = "modeling/math_equivalence_test.py"
    tree = ast.parse((root / rel).read_text())
    rows = []
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            env = {}
            for st in fn.body:
                if isinstance(st, ast.Assign):
                    env[st.targets[0].id] = _eval_node(st.value)
                elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
                    label = 1 if st.value.func.attr == "assertTrue" else 0
                    rows.append(_row("hendrycks_math", HENDRYCKS, rel, fn.name, {},
                                     env["test_in"], env["test_out"], label))
    return rows


def mindspeed_cases() -> list[dict]:
    rel = "tests/ut/utils/test_grader.py"
    return [_row("mindspeed_rl", MINDSPEED, rel, "test_math_equal", {}, gt, pred, lab)
            for pred, gt, lab in MINDSPEED_CASES]


def _row(suite, src, path, test, options, gold, pred, label) -> dict:
    return {
        "suite": suite, "repo": src[0], "path": path, "commit": src[1], "test": test,
        "options": options, "gold": gold, "response": pred, "label": int(label),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--math-verify", type=Path, required=True)
    ap.add_argument("--nemo-skills", type=Path, required=True)
    ap.add_argument("--hendrycks", type=Path, required=True)
    ap.add_argument("--notes", type=Path, default=None, help="JSON {suite|test|gold|response: note}")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = (math_verify_cases(args.math_verify) + nemo_cases(args.nemo_skills)
            + hendrycks_cases(args.hendrycks) + mindspeed_cases())
    notes = json.loads(args.notes.read_text()) if args.notes else {}
    for r in rows:
        key = "|".join([r["suite"], r["test"], r["gold"], r["response"]])
        if key in notes:
            r["label_note"] = notes[key]
    # Rows of suites this script does not convert (added by hand with their attribution, e.g.
    # qwen25_math, verl, rllm) are kept from the existing file, after the converted ones.
    converted = {r["suite"] for r in rows}
    if args.out.is_file():
        for line in args.out.read_text(encoding="utf-8").splitlines():
            if line.strip() and json.loads(line)["suite"] not in converted:
                rows.append(json.loads(line))
    with args.out.open("w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases -> {args.out}")


if __name__ == "__main__":
    main()
