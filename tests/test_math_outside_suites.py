"""The math verifier on other projects' own grader tests (tests/data/math_outside_suites.jsonl),
each issue class found on them as a unit case, and a property test that wrong answers never
verify."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import brorl

DATA = Path(__file__).parent / "data"
CASES = [json.loads(line) for line in open(DATA / "math_outside_suites.jsonl", encoding="utf-8")]

# Cases brorl does not yet decide as labelled (none of them a wrong answer accepted), by
# (test, gold): a gold chain with an unknown command (`\\zzz`) and a gold whose box is never
# closed.
KNOWN_MISSES = {
    ("test_relations_math", "$1 = \\zzz = x = 0$"),
    ("test_numina_cases", "\\\\boxed{W(n) = 1 \\\\text{ and } W(n) = -1"),
}


def test_cases_are_attributed_and_labelled():
    assert len(CASES) >= 393
    suites = {c["suite"] for c in CASES}
    assert {"math_verify", "nemo_skills", "hendrycks_math", "mindspeed_rl", "qwen25_math", "verl", "rllm"} <= suites
    for c in CASES:
        assert c["repo"] and c["path"] and len(c["commit"]) == 40
        assert c["label"] in (0, 1)


def test_outside_suites_follow_labels_except_documented():
    wrong = []
    for c in CASES:
        got = brorl.verify_math(c["gold"], c["response"])
        if got == bool(c["label"]):
            continue
        if c.get("label_note") or (c["test"], c["gold"]) in KNOWN_MISSES:
            continue
        wrong.append((c["suite"], c["test"], c["gold"], c["response"][-80:], c["label"], got))
    assert not wrong, wrong


def test_false_positives_are_only_documented_readings():
    fps = [
        c
        for c in CASES
        if not c["label"] and brorl.verify_math(c["gold"], c["response"])
    ]
    # Unordered bare comma lists (2 hendrycks cases) and x \in [a,b] == a <= x <= b when the
    # suite turned that comparison off (1 case); all carry a label_note.
    assert len(fps) == 3
    assert all(c.get("label_note") for c in fps)


@pytest.mark.parametrize(
    "gold,response,ok",
    [
        # extraction from prose
        ("2", "AZYUK2A", False),
        ("10", "Answer \\( (9+1) \\)", True),
        ("5", "so $x \\geq 5$ here", False),
        ("x \\ge 5", "Therefore $x \\geq 5$ is the solution.", True),
        ("10/9", "Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $", True),
        ("6", "the pair is $(7, 6)$.", False),
        ("(7,6)", "the pair is $(7, 6)$. <|im_start|>user", True),
        ("34", "Final Answer: The largest $n$ is 34.", True),
        ("10455", "so $10,200 + $255 = $10,455. Final Answer: The final answer is $10,455$. I hope it is correct.", True),
        ("10455", "$\\boxed{200}$ and $\\boxed{255}$. Final Answer: The final answer is $10,455$.", True),
        ("9", "Answer $ \n 9 \n $", False),
        ("12", "We have $x = 3$, so the total is 12 apples.", True),
        # thousands and decimal commas
        ("10000", "\\boxed{10,\\!000}", True),
        ("11111111100", "\\boxed{11,\\! 111,\\! 111,\\! 100}", True),
        ("1,22", "1.22", True),
        ("1,22", "1.23", False),
        ("0,111", "0.111", True),
        ("1,000", "1.000", False),
        # false positives that must stay rejected
        ("12:00", "1:00", False),
        ("12:00", "12:00", True),
        ("a + 3z = 0", "0", False),
        ("2x + z = 1", "1", False),
        ("a^2 + b = 0", "0", False),
        ("m + n = 7", "7", True),
        ("1.414", "1.41", False),
        ("12.34", "12.3", False),
        ("10.3", "10.33", False),
        ("\\sqrt2", "1.414", True),
        ("\\frac13", "0.333", True),
        ("\\frac13", "0.33", False),
        # relations and sets
        ("x \\in [-2,7]", "-2 \\le x \\le 7", True),
        ("-2 \\le x \\le 7", "x \\in [-2,7]", True),
        ("x \\in [-2,7]", "-2 < x \\le 7", False),
        ("0<f(x)<1", "(0,1)", True),
        ("0<f(x)<1", "[0,1)", False),
        ("1\\leq|z|\\leq \\frac{3}{2}", "z \\in [-\\frac32, -1] \\cup [1, \\frac32]", True),
        ("1\\leq|z|\\leq \\frac{3}{2}", "z \\in [1, \\frac32]", False),
        ("p=5,q=2;p=7,q=2", "(5,2),(7,2)", True),
        ("p=5,q=2;p=7,q=2", "(2,5),(7,2)", False),
        # forms
        ("V_{1}:V_{2}=11:21", "11:21", True),
        ("V_{1}:V_{2}=11:21", "21:11", False),
        ("x = 5", "\\boxed{x = 2+3 = 5}", True),
        ("x = 6", "\\boxed{x = 2+3 = 5}", False),
        ("\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}",
         "$\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}$", True),
        ("\\begin{pmatrix}19 & 22 \\\\ 43 & 50\\end{pmatrix}",
         "$\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}$", True),
        ("\\begin{pmatrix}23 & 34 \\\\ 31 & 46\\end{pmatrix}",
         "$\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}$", False),
        ("(3, 3), (1, 1)", "$\\boxed{(3, 3)} \\text{ for part (a) and } \\boxed{(1, 1)}$", True),
        ("(3, 3), (1, 2)", "$\\boxed{(3, 3)} \\text{ for part (a) and } \\boxed{(1, 1)}$", False),
        ("\\boxed{1} papers and \\boxed{2} bins", "\\boxed{1,2}", True),
        ("\\boxed{1} no no no no no \\boxed{2}", "\\boxed{1,2}", False),
        # sums
        ("F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", "F_n = \\sum_{k=0}^{n-1} F_{n-k-1} F_k", True),
        ("F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", "F_n = \\sum_{k=0}^{n-2} F_k F_{n-k-2}", False),
        ("F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", "F_n = n F_k F_{n-k-1}", False),
        ("\\sum_{k=1}^{10} k^2", "385", True),
        ("\\sum_{k=1}^{10} k^2", "386", False),
    ],
)
def test_issue_classes(gold, response, ok):
    assert brorl.verify_math(gold, response) == ok


# ------------------------------------------------------- wrong answers never verify (property)


def _perturb_digit(text: str, rnd: random.Random) -> str | None:
    idx = [k for k, c in enumerate(text) if c.isdigit()]
    if not idx:
        return None
    k = rnd.choice(idx)
    new = str((int(text[k]) + rnd.randint(1, 9)) % 10)
    out = text[:k] + new + text[k + 1 :]
    return out


def _gold_and_wrongs(kind: str, rnd: random.Random) -> tuple[str, list[str]]:
    """A gold of one category and answers that are wrong for it."""
    a, b, c = (rnd.randint(1, 99) for _ in range(3))
    if kind == "int":
        g = str(a * 37 + b)
        return g, [str(int(g) + rnd.choice([-1, 1, 10, 100])), _perturb_digit(g, rnd)]
    if kind == "decimal":
        g = f"{a}.{b:02d}{c % 9 + 1}"
        return g, [g[:-1], _perturb_digit(g, rnd), f"{a}.{b:02d}"]
    if kind == "fraction":
        p, q = a, b + 100
        if Fraction(p, q).denominator == 1:
            q += 1
        g = f"\\frac{{{p}}}{{{q}}}"
        return g, [f"\\frac{{{p + 1}}}{{{q}}}", f"\\frac{{{q}}}{{{p}}}", f"{p}/{q + 1}"]
    if kind == "tuple":
        if a == b:
            b += 1
        g = f"({a}, {b}, {c})"
        return g, [f"({b}, {a}, {c})", f"({a}, {b})", f"({a}, {b}, {c + 1})"]
    if kind == "interval":
        lo, hi = min(a, b), max(a, b) + 1
        g = f"[{lo}, {hi})"
        return g, [f"({lo}, {hi})", f"[{lo}, {hi}]", f"[{lo}, {hi + 1})", f"[{lo - 1}, {hi})"]
    if kind == "expression":
        if a == b:
            b += 1
        g = f"{a}x^2 + {b}x + {c}"
        return g, [f"{a}x^2 + {b}x", f"{a}x^2 + {b + 1}x + {c}", f"{a}x^2 - {b}x + {c}", f"{a}x + {b}x^2 + {c}"]
    if kind == "sqrt":
        n = rnd.choice([2, 3, 5, 6, 7, 10, 11])
        g = f"{a}\\sqrt{{{n}}}"
        v = a * n**0.5
        # A decimal off by more than its rounding, and one with too few significant digits.
        return g, [f"{a}", f"{v + 0.05:.2f}", f"{v:.0f}" if v < 100 else f"{v:.0f}0", f"{a + 1}\\sqrt{{{n}}}"]
    if kind == "equation":
        g = f"{a}x + {b}y = {c}"
        return g, [str(c), f"{a}x + {b}y = {c + 1}", f"{a}x - {b}y = {c}"]
    if kind == "set":
        g = f"\\{{{a}, {a + b}, {a + b + c}\\}}"
        return g, [f"\\{{{a}, {a + b}\\}}", f"\\{{{a}, {a + b}, {a + b + c + 1}\\}}"]
    raise ValueError(kind)


KINDS = ["int", "decimal", "fraction", "tuple", "interval", "expression", "sqrt", "equation", "set"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1), boxed=st.booleans())
def test_wrong_answers_never_verify(kind, seed, boxed):
    rnd = random.Random(seed)
    gold, wrongs = _gold_and_wrongs(kind, rnd)
    assert brorl.verify_math(gold, f"\\boxed{{{gold}}}" if boxed else gold)
    for w in wrongs:
        if w is None or w == gold:
            continue
        resp = f"So the answer is $\\boxed{{{w}}}$." if boxed else f"Thus the result is ${w}$."
        assert not brorl.verify_math(gold, resp), (kind, gold, w)
