"""The math answer verifier: labelled pairs by category, a Fraction-based reference for numbers
and polynomials with property tests, fuzzing, the regression corpus of hostile inputs, the batch
API and the `brorl verify math` command."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import brorl
from brorl.cli import main as cli_main

DATA = Path(__file__).parent / "data"
PAIRS = [json.loads(line) for line in open(DATA / "math_pairs.jsonl", encoding="utf-8")]
STATUSES = set(brorl.MATH_STATUSES)


def corpus_rows() -> list[dict]:
    rows = []
    for line in open(DATA / "math_regression_corpus.jsonl", encoding="utf-8"):
        r = json.loads(line)
        if "response_parts" in r:
            r["response"] = "".join(t * n for t, n in r.pop("response_parts"))
        rows.append(r)
    return rows


# ---------------------------------------------------------------------------- labelled pairs


def test_labelled_set_is_large_and_balanced():
    cats = defaultdict(lambda: [0, 0])
    for p in PAIRS:
        cats[p["category"]][bool(p["label"])] += 1
    assert len(PAIRS) >= 400
    assert len(cats) >= 20
    # Every category has rejections to check as well as acceptances.
    assert all(neg > 0 and pos > 0 for neg, pos in cats.values()), dict(cats)


@pytest.mark.parametrize("category", sorted({p["category"] for p in PAIRS}))
def test_labelled_pairs(category):
    rows = [p for p in PAIRS if p["category"] == category]
    got = brorl.verify_math_batch([p["gold"] for p in rows], [p["response"] for p in rows])
    wrong = [
        (p["gold"], p["response"][:80], p["label"])
        for p, g in zip(rows, got)
        if bool(g) != bool(p["label"])
    ]
    assert not wrong, wrong


@pytest.mark.parametrize(
    "gold, response",
    [
        ("4", "4\\sqrt2"),
        ("(0,9)", "[0,9)"),
        ("x<1", "x>-1"),
        ("\\text{13}", "13"),
        ("7,425,000", "7,425"),
        ("\\frac13", "0.33"),
    ],
)
def test_issue_rejections(gold, response):
    assert brorl.verify_math(gold, response) is False
    assert brorl.verify_math_status(gold, response) == "wrong"


# Verdicts found by red-teaming the verifier as an RL reward: each row failed before the change
# that its reason names. A wrong answer accepted is a reward hack, a right one rejected a false
# negative.
RED_TEAM = [
    # Real odd roots: `(u)^{p/q}` with odd q is the real root, as `\sqrt[q]{u}` is, also where
    # u < 0 at an evaluation point (was the principal complex root there, so they differed).
    # From the examples at the end of Qwen2.5-Math evaluation/grader.py.
    (
        "-\\frac{2(x^2+6)}{9(x^2-2)\\sqrt[3]{x^2-2}^2}",
        "-\\frac{8x^2}{9(x^2-2)^{5/3}}+\\frac{2}{3(x^2-2)^{2/3}}",
        True,
    ),
    ("\\sqrt[3]{x^2-2}", "(x^2-2)^{1/3}", True),
    ("\\sqrt[3]{2-x}^2", "(2-x)^{2/3}", True),
    ("\\sqrt[3]{2-x}", "-(2-x)^{1/3}", False),
    # Past f64 the high-precision pass needs as many bits as the value has; capped at 4096 it
    # saw `1 + e^{e^8}` (e^{2981}) as equal to `e^{e^8}` (found by test_sympy_latex_forms_agree).
    ("e^{e^{8}}", "1 + e^{e^{8}}", False),
    ("e^{2981}", "e \\cdot e^{2980}", True),
    # Words beside a quantity were all dropped as annotations, so a boxed negation or bound
    # scored as the number itself.
    ("3", "\\boxed{\\text{not } 3}", False),
    ("3", "\\boxed{\\text{No solution, not } 3}", False),
    ("A", "\\boxed{\\text{not } A}", False),
    ("3", "\\boxed{\\text{at least } 3}", False),
    ("3", "\\boxed{\\text{less than } 3}", False),
    ("3", "\\boxed{3 \\text{ or more}}", False),
    ("3", "\\boxed{3 \\text{ is wrong}}", False),
    ("3", "\\boxed{\\text{any number but } 3}", False),
    ("12", "\\boxed{3 \\text{ apples and } 4}", False),
    ("3", "\\boxed{3 \\text{ more apples}}", True),
    ("3", "\\boxed{\\text{about } 3}", True),
    ("13", "\\boxed{10 \\text{ apples} + 3}", True),
    # An empty box was the last box, so it hid the answer (no answer, or "3, " from adjacency).
    ("3", "The answer is \\boxed{3}. \\boxed{}", True),
    ("3", "I am to put the answer in \\boxed{}. The answer is 3.", True),
    # A box drafted inside <think> outranked the answer given after the reasoning.
    ("4", "<think>maybe \\boxed{3}</think> The answer is 4.", True),
    ("3", "<think>maybe \\boxed{3}</think> The answer is 4.", False),
    ("3", "<think>The answer is 3</think>", True),
    # Repeating decimals and trailing ellipses in LaTeX spelling were unparseable.
    ("\\frac13", "\\boxed{0.333\\ldots}", True),
    ("\\frac13", "\\boxed{0.333\\dots}", True),
    ("\\frac13", "\\boxed{0.\\bar{3}}", True),
    ("\\frac16", "\\boxed{0.1\\bar{6}}", True),
    ("\\frac13", "\\boxed{0.33\\ldots}", False),
    # A leading \approx (nothing before it) was a relation without a left side: unparseable.
    ("\\sqrt2", "\\boxed{\\approx 1.414}", True),
    ("3", "\\boxed{\\approx 3}", True),
    ("\\sqrt2", "\\boxed{\\approx 1.42}", False),
    # Values of different unknowns matched bare values in any order (x and y swapped).
    ("x=3, y=4", "\\boxed{4, 3}", False),
    ("a=1,b=2", "\\boxed{2,1}", False),
    ("x=3, y=4", "\\boxed{3, 4}", True),
    ("x=3, x=4", "\\boxed{4, 3}", True),
    # A number word inside \text{} was text, though the bare word was a number.
    ("3", "\\boxed{\\text{three}}", True),
    ("4", "\\boxed{\\text{three}}", False),
    # Full-width digits and operators (a CJK input method's) were not numbers.
    ("42", "\\boxed{４２}", True),
    ("-3.5", "\\boxed{－３．５}", True),
    ("1", "\\boxed{（１＋２）／３}", True),
    ("43", "\\boxed{４２}", False),
    # Multiple choice stated in prose: "option is" / "choice is" (a choice label only).
    ("A", "The correct option is (A)", True),
    ("B", "The correct option is (A)", False),
    ("C", "So the best choice is C.", True),
    ("12", "So x = 12. Another option is to substitute back.", True),
    ("B", "The answer is (A). On reflection, the correct option is (B).", True),
    ("A", "The answer is (A). On reflection, the correct option is (B).", False),
    # Plain TeX's infix binomial was not read.
    ("6", "\\boxed{{4 \\choose 2}}", True),
    ("7", "\\boxed{{4 \\choose 2}}", False),
    ("\\frac{n(n-1)}{2}", "\\boxed{{n \\choose 2}}", True),
    ("3", "\\boxed{{3 \\choose}}", False),
    # Words that offer a second value, bound, scale or negate the quantity were dropped as
    # annotations, so these all scored as the bare number.
    ("3", "\\boxed{3 \\text{ (or 4)}}", False),
    ("5", "\\boxed{5 \\text{ million}}", False),
    ("5", "\\boxed{5 \\text{ thousand}}", False),
    ("5", "\\boxed{5 \\text{ and a half}}", False),
    ("5", "\\boxed{\\text{negative } 5}", False),
    ("5", "\\boxed{\\text{minus } 5}", False),
    ("5", "\\boxed{\\text{almost } 5}", False),
    ("5", "\\boxed{\\text{under } 5}", False),
    ("5", "\\boxed{\\text{over } 5}", False),
    ("5", "\\boxed{5 \\text{ units squared}}", True),
    ("5", "\\boxed{\\text{about } 5}", True),
    # A hedge over choices matched the gold choice it started with.
    ("A", "The answer is (A) or (B)", False),
    ("A", "\\boxed{(A)(B)}", False),
    ("A", "\\boxed{(A) 5}", True),
    # A script on \mathbb{R} names another set.
    ("\\mathbb{R}", "\\boxed{\\mathbb{R}^+}", False),
    ("\\mathbb{R}", "\\boxed{(-\\infty, \\infty)}", True),
    # A prime on a name was dropped like a prime after a number (feet, minutes).
    ("x'", "\\boxed{x}", False),
    ("f'(x)", "\\boxed{f(x)}", False),
    ("f'(x)", "\\boxed{f'(x)}", True),
    ("5", "\\boxed{5'}", True),
    # High precision saw a tiny value as rounding noise beside 0 when a huge value was computed
    # on the way (e^{100} for e^{-100}).
    ("0", "\\boxed{e^{-100}}", False),
    ("0", "\\boxed{\\pi \\cdot 10^{-50}}", False),
    ("0", "\\boxed{\\sin(\\pi)}", True),
    # The decimal rule ran in f64, which cannot tell the 17th digit: wrong digits were accepted
    # and long correct ones rejected.
    ("\\pi", "\\boxed{3.1415926535897933}", False),
    ("\\pi", "\\boxed{3.14159265358979323999}", False),
    ("\\pi", "\\boxed{3.1415926535897932}", True),
    ("\\pi", "\\boxed{3.14159265358979323846264338327950288}", True),
    ("\\frac13", "\\boxed{0.333333333333333333333333333333333333}", True),
    ("\\sin(\\pi/6)", "\\boxed{0.499}", False),
    # Unicode superscripts, vulgar fractions and zero-width spaces were unparseable, and
    # `x_{1}` did not name what `x_1` does.
    ("9", "\\boxed{3\u00b2}", True),
    ("32", "\\boxed{3\u00b2}", False),
    ("x^{-1}", "\\boxed{x\u207b\u00b9}", True),
    ("\\frac52", "\\boxed{2\u00bd}", True),
    ("34", "\\boxed{3\u200b4}", True),
    ("x_1", "\\boxed{x_{1}}", True),
    ("x_1", "\\boxed{x_{2}}", False),
    # Second round (answer formats of RL datasets and other graders).
    # GSM8K's `#### 42` line was no marker: "the answer is" before it, or a number written
    # after it, won; a GSM8K gold (the worked solution ending in `#### 72`) was unparseable.
    ("41", "The answer is 41.\n#### 42", False),
    ("42", "The answer is 41.\n#### 42", True),
    ("43", "#### 42\nNote that 43 is not possible.", False),
    ("42", "#### 42\nNote that 43 is not possible.", True),
    ("40", "\\boxed{40}\n#### 42", False),
    ("42", "\\boxed{40}\n#### 42", True),
    ("C", "#### C", True),
    ("5", "\\boxed{5}\n\n#### Verification\nCheck: 2+3=5.", True),
    ("48/2 = <<48/2=24>>24 clips in May.\n#### 72", "\\boxed{72}", True),
    ("48/2 = <<48/2=24>>24 clips in May.\n#### 72", "\\boxed{24}", False),
    # "Answer:" lines: a number mentioned after the answer won, and a letter had no answer.
    ("43", "Answer: 42. Note that 43 is not possible.", False),
    ("42", "Answer: 42. Note that 43 is not possible.", True),
    ("C", "Answer: C", True),
    ("C", "**Answer:** (C)", True),
    ("C", "**Answer: C**", True),
    ("C", "Answer: D", False),
    ("C", "Answer: C or D", False),
    ("42", "The answer is **42** apples.", True),
    ("42", "<answer> The answer is 42 </answer>", True),
    ("42", "<answer>It is not 42</answer>", False),
    # `0.(3)` (a period in parentheses) was the product 0 * 3.
    ("0", "\\boxed{0.(3)}", False),
    ("6", "\\boxed{1.(6)}", False),
    ("\\frac13", "\\boxed{0.(3)}", True),
    ("\\frac53", "\\boxed{1.(6)}", True),
    # f64 underflow read as 0: a tiny nonzero value equalled 0 and twice itself.
    ("0", "\\boxed{10^{-10^{10}}}", False),
    ("10^{-10^{10}}", "\\boxed{0}", False),
    ("10^{-10^{10}}", "\\boxed{2 \\cdot 10^{-10^{10}}}", False),
    ("2^{-2^{64}}", "\\boxed{0}", False),
    ("10^{-10^{10}}", "\\boxed{10^{-10^{10}}}", True),
    # Degrees in a trig argument were radians.
    ("\\frac{\\sqrt3}{2}", "\\boxed{\\sin 60^\\circ}", True),
    ("\\frac12", "\\boxed{\\cos(60°)}", True),
    ("1", "\\boxed{\\tan 45 \\text{ degrees}}", True),
    ("\\frac12", "\\boxed{\\sin 60^\\circ}", False),
    ("\\frac{\\pi}{6}", "\\boxed{30^\\circ}", False),
    # "No" was the product N * o.
    ("no", "\\boxed{No}", True),
    ("\\text{No}", "Answer: no", True),
    ("yes", "\\boxed{No}", False),
    ("no", "\\boxed{Yes}", False),
    # A number inside \text{} was a word: `\text{5}`, `\textbf{12}`, `\text{5 apples}` (as the
    # PRM800K, Hendrycks MATH and Qwen2.5-Math graders read them, which drop the \text wrapper).
    ("5", "\\boxed{\\text{5}}", True),
    ("5", "\\boxed{\\text{ 5 }}", True),
    ("12", "\\boxed{\\textbf{12}}", True),
    ("5", "\\boxed{\\textit{5}}", True),
    ("5", "\\boxed{\\text{5 apples}}", True),
    ("12", "\\boxed{\\text{12 inches}}", True),
    ("5", "\\boxed{\\text{5.}}", True),
    ("0.5", "\\boxed{\\text{.5}}", True),
    ("-5", "\\boxed{\\text{-5}}", True),
    ("5", "\\boxed{\\text{-5}}", False),
    ("\\frac12", "\\boxed{\\text{1/2}}", True),
    ("0.5", "\\boxed{\\text{50\\%}}", True),
    ("5000", "\\boxed{\\text{5,000}}", True),
    ("\\text{13}", "\\boxed{\\text{13}}", True),
    ("\\text{13}", "\\boxed{\\textbf{13}}", True),
    ("\\text{13}", "\\boxed{\\text{14}}", False),
    # ... and the words after it are read as after `5 \text{...}`: hedges and scales still fail.
    ("5", "\\boxed{\\text{5 or 6}}", False),
    ("6", "\\boxed{\\text{5 or 6}}", False),
    ("5", "\\boxed{\\text{5 million}}", False),
    ("5", "\\boxed{\\text{5 (or 6)}}", False),
    ("5", "\\boxed{\\text{5 or more}}", False),
    ("5", "\\boxed{\\text{5:30}}", False),
    ("5", "\\boxed{\\text{5-6}}", False),
    ("5", "\\boxed{\\text{5, 6}}", False),
    ("5", "\\boxed{\\text{5 6}}", False),
    ("5", "\\boxed{\\text{5e3}}", False),
    # Scale words that were read as annotations: 5 dozen is 60, 5 squared 25, 5 halves 2.5.
    ("5", "\\boxed{5 \\text{ dozen}}", False),
    ("5", "\\boxed{\\text{5 dozen}}", False),
    ("5", "\\boxed{5 \\text{ squared}}", False),
    ("5", "\\boxed{5 \\text{ cubed}}", False),
    ("5", "\\boxed{5 \\text{ halves}}", False),
    ("5", "\\boxed{5 \\text{ thirds}}", False),
    ("5", "\\boxed{5 \\text{ tenths}}", False),
    ("5", "\\boxed{5 \\text{ hundredths}}", False),
    ("5", "\\boxed{5 \\text{ pi}}", False),
    ("5", "\\boxed{5 \\text{ units squared}}", True),
    ("5", "\\boxed{5 \\text{ times}}", True),
    # Colour and underline markup, and a tie inside \mathrm before a unit.
    ("5", "\\boxed{\\color{red}5}", True),
    ("5", "\\boxed{\\textcolor{red}{5}}", True),
    ("5", "\\boxed{\\underline{5}}", True),
    ("5", "\\boxed{5 \\mathrm{~cm}}", True),
    ("6", "\\boxed{\\textcolor{red}{5}}", False),
    # A blank gold (a dataset row with `\\boxed{}` or `\\text{}` for its answer) matched an
    # empty box, so a policy would learn to answer `\\boxed{}` on such rows.
    ("\\boxed{}", "The answer is \\boxed{}.", False),
    ("\\text{}", "\\boxed{\\text{}}", False),
    ("{}", "\\boxed{{}}", False),
    ("\\boxed{ }", "\\boxed{ }", False),
    ("\\boxed{}", "\\boxed{42}", False),
    ("\\emptyset", "\\boxed{\\varnothing}", True),
    ("\\{\\}", "\\boxed{\\emptyset}", True),
    # Plain TeX's infix fraction was unparseable.
    ("\\frac12", "\\boxed{1 \\over 2}", True),
    ("\\frac{x+1}{2}", "\\boxed{{x+1 \\over 2}}", True),
    ("\\frac12", "\\boxed{2 \\over 1}", False),
]


@pytest.mark.parametrize("gold, response, expected", RED_TEAM)
def test_red_team_verdicts(gold, response, expected):
    assert brorl.verify_math(gold, response) is expected


def test_statuses_name_what_happened():
    assert brorl.MATH_STATUSES == [
        "correct",
        "wrong",
        "no_answer",
        "unparseable",
        "budget_exceeded",
    ]
    assert brorl.verify_math_status("5", "I could not solve it.") == "no_answer"
    assert brorl.verify_math_status("5", "I could not solve it.", last_number=False) == "no_answer"
    assert brorl.verify_math_status("5", "\\boxed{\\frac{}{}}") == "unparseable"
    deep = "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}"
    assert brorl.verify_math_status("1", deep) == "budget_exceeded"
    assert brorl.verify_math_status("1", "1" * (2 << 20)) == "budget_exceeded"


def test_last_number_fallback_is_optional():
    r = "We count 3 groups of 4 and get 12 in total"
    assert brorl.verify_math("12", r)
    assert not brorl.verify_math("12", r, last_number=False)


# ---------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "response, expected",
    [
        ("so \\boxed{1} then \\boxed{\\frac{a}{b}}.", "\\frac{a}{b}"),
        ("$\\boxed{1}$ and $\\boxed{2}$", "1, 2"),
        ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "1, 2, 3"),
        ("\\boxed{1} is wrong; it is \\boxed{2}", "2"),
        ("\\fbox{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("<think>a</think><answer> 7 </answer>", "7"),
        ("<answer>so \\boxed{8}</answer>", "8"),
        ("Thus the final answer is $x = 3$. Done.", "x = 3"),
        ("Final Answer: 12", "12"),
        ("I get -3/4, I think.", "-3/4"),
        ("total 1,234.5.", "1,234.5"),
        ("no digits", None),
        ("\\boxed{unclosed", None),
    ],
)
def test_extract_answer(response, expected):
    assert brorl.extract_answer(response) == expected


def ref_boxes(s: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of each complete \\boxed{...}/\\fbox{...}, scanning left to right
    and skipping what a box encloses; escaped braces do not count."""
    out, i = [], 0
    while True:
        starts = [k for k in (s.find("\\boxed", i), s.find("\\fbox", i)) if k >= 0]
        if not starts:
            return out
        k = min(starts)
        j = k + (6 if s.startswith("\\boxed", k) else 5)
        while j < len(s) and s[j] == " ":
            j += 1
        if j >= len(s) or s[j] != "{":
            i = j if j > k + 1 else k + 1
            continue
        depth, m = 0, j
        while m < len(s):
            c = s[m]
            if c == "\\":
                m += 2
                continue
            depth += (c == "{") - (c == "}")
            if depth == 0:
                break
            m += 1
        if m >= len(s):
            i = j + 1
            continue
        if s[j + 1 : m].strip():  # an empty box holds no answer
            out.append((k, m + 1, s[j + 1 : m].strip()))
        i = m + 1


def ref_extract_boxed(s: str) -> str | None:
    """The last box, joined with the boxes right before it that only separators divide."""
    bs = ref_boxes(s)
    if not bs:
        return None
    first = len(bs) - 1
    while first > 0:
        gap = s[bs[first - 1][1] : bs[first][0]]
        words = gap.replace(",", " ").replace("$", " ").replace(";", " ").split()
        if not all(w in ("and", "or") for w in words):
            break
        first -= 1
    return ", ".join(b[2] for b in bs[first:])


BOX_PIECES = ["\\boxed{", "\\fbox{", "{", "}", "\\{", "\\}", "1", "x", " ", ",", "$", " and ", "so "]


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.sampled_from(BOX_PIECES), max_size=30))
def test_box_extraction_agrees_with_reference(pieces):
    s = "".join(pieces)
    want = ref_extract_boxed(s)
    assert brorl.extract_answer(s, last_number=False) == want, s


def test_extract_answer_without_last_number():
    assert brorl.extract_answer("it is 7", last_number=False) is None
    assert brorl.extract_answer("it is \\boxed{7}", last_number=False) == "7"


# ---------------------------------------------------------------------------- batch API


def test_batch_matches_single_calls_and_threads_agree():
    golds = [p["gold"] for p in PAIRS]
    responses = [p["response"] for p in PAIRS]
    single = np.array([brorl.verify_math(g, r) for g, r in zip(golds, responses)])
    for threads in (None, 1, 2, 3):
        got = brorl.verify_math_batch(golds, responses, threads=threads)
        assert got.dtype == np.bool_ and got.shape == (len(PAIRS),)
        np.testing.assert_array_equal(got, single)
    codes = brorl.verify_math_batch_status(golds, responses, threads=2)
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes == 0, single)
    names = [brorl.verify_math_status(g, r) for g, r in zip(golds, responses)]
    assert [brorl.MATH_STATUSES[c] for c in codes] == names


def test_safe_from_python_threads():
    # Math-Verify's SIGALRM timeouts fail off the main thread; ours has no signals at all.
    from concurrent.futures import ThreadPoolExecutor

    golds = [p["gold"] for p in PAIRS]
    responses = [p["response"] for p in PAIRS]
    want = brorl.verify_math_batch(golds, responses, threads=1)
    with ThreadPoolExecutor(4) as ex:
        singles = list(ex.map(brorl.verify_math, golds, responses))
        batches = list(ex.map(lambda _: brorl.verify_math_batch(golds, responses, threads=2), range(4)))
    np.testing.assert_array_equal(singles, want)
    for b in batches:
        np.testing.assert_array_equal(b, want)


def test_batch_accepts_any_sequence_of_str():
    got = brorl.verify_math_batch(("1", "2"), iter(["1", "3"]))
    np.testing.assert_array_equal(got, [True, False])
    assert brorl.verify_math_batch([], []).shape == (0,)


def test_batch_rejects_bad_arguments():
    with pytest.raises(brorl.InvalidArgumentError, match="`golds` has 2 items but `responses` has 1"):
        brorl.verify_math_batch(["1", "2"], ["1"])
    with pytest.raises(brorl.InvalidArgumentError, match="`threads` must be at least 1"):
        brorl.verify_math_batch(["1"], ["1"], threads=0)
    with pytest.raises(brorl.BrorlTypeError, match=r"`golds\[1\]` must be str, got int"):
        brorl.verify_math_batch(["1", 2], ["1", "2"])
    with pytest.raises(brorl.BrorlTypeError, match="`responses` must be a sequence of str, not a single str"):
        brorl.verify_math_batch(["1"], "1")
    with pytest.raises(TypeError):
        brorl.verify_math_batch(["1"], 5)


# ---------------------------------------------------------------------------- reference + properties
#
# The reference decides numeric answers with Python's exact Fractions, including the documented
# precision rule: a decimal with at least 3 significant digits matches an exact value that has
# no exact decimal of that length when it is that value rounded (half away from zero) or
# truncated to its number of decimals.


def ref_round_half_away(x: Fraction) -> int:
    n = abs(x)
    r = int(n + Fraction(1, 2)) if (n - int(n)) >= Fraction(1, 2) else int(n)
    return r if x >= 0 else -r


def terminates(v: Fraction) -> bool:
    """Whether v has a finite decimal expansion (such a value must be written exactly)."""
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def ref_decimal_matches(text: str, v: Fraction) -> bool:
    digits = text.lstrip("-").replace(".", "").lstrip("0")
    d = len(text.split(".")[1]) if "." in text else 0
    if d == 0 or len(digits) < 3:
        return False
    t = v * 10**d
    if t.denominator == 1 or terminates(v):
        return False
    m = Fraction(text) * 10**d
    return m in (int(t), ref_round_half_away(t))


def ref_equal(a: tuple[Fraction, str], b: tuple[Fraction, str]) -> bool:
    (va, ta), (vb, tb) = a, b
    if va == vb:
        return True
    return (ta.startswith("dec") and ref_decimal_matches(ta[4:], vb)) or (
        tb.startswith("dec") and ref_decimal_matches(tb[4:], va)
    )


def spell(q: Fraction, style: str, decimals: int) -> tuple[str, str]:
    """A LaTeX spelling of q, and a tag telling the reference how it was written."""
    sign = "-" if q < 0 else ""
    n, d = abs(q.numerator), q.denominator
    if style == "decimal":
        text = f"{float(q):.{decimals}f}"
        return text, "dec:" + text
    if d == 1:
        return {"int": f"{sign}{n}", "frac": f"{sign}\\frac{{{n}}}{{1}}"}.get(style, f"{sign}{n}"), "exact"
    if style == "mixed" and n > d:
        return f"{sign}{n // d}\\frac{{{n % d}}}{{{d}}}", "exact"
    if style == "slash":
        return f"{sign}{n}/{d}", "exact"
    if style == "dfrac":
        return f"{sign}\\dfrac{{{n}}}{{{d}}}", "exact"
    return f"{sign}\\frac{{{n}}}{{{d}}}", "exact"


fractions = st.builds(Fraction, st.integers(-400, 400), st.integers(1, 40))
styles = st.sampled_from(["int", "frac", "dfrac", "slash", "mixed", "decimal"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=fractions, q=fractions, s1=styles, s2=styles, d1=st.integers(1, 6), d2=st.integers(1, 6), same=st.booleans())
def test_numbers_agree_with_fraction_reference(p, q, s1, s2, d1, d2, same):
    if same:
        q = p
    g_text, g_tag = spell(p, s1, d1)
    r_text, r_tag = spell(q, s2, d2)
    gv = Fraction(g_text) if g_tag.startswith("dec") else p
    rv = Fraction(r_text) if r_tag.startswith("dec") else q
    want = ref_equal((gv, g_tag), (rv, r_tag))
    assert brorl.verify_math(g_text, r_text) == want, (g_text, r_text)


def poly_text(coeffs: list[int], rng: random.Random) -> str:
    """Σ c_k x^k with the terms in random order."""
    terms = [(c, k) for k, c in enumerate(coeffs) if c != 0]
    rng.shuffle(terms)
    out = ""
    for c, k in terms:
        mono = "" if k == 0 else ("x" if k == 1 else f"x^{{{k}}}")
        mag = abs(c)
        body = f"{mag}{mono}" if (mag != 1 or k == 0) else mono
        out += (" - " if c < 0 else (" + " if out else "")) + body
    return out.strip() or "0"


@settings(max_examples=150, deadline=None)
@given(
    coeffs=st.lists(st.integers(-9, 9), min_size=1, max_size=5),
    delta=st.lists(st.integers(-2, 2), min_size=1, max_size=5),
    seed=st.integers(0, 10**6),
    factor=st.integers(1, 4),
)
def test_polynomials_agree_with_coefficient_reference(coeffs, delta, seed, factor):
    rng = random.Random(seed)
    other = [c + (delta[k] if k < len(delta) else 0) for k, c in enumerate(coeffs)]
    other += delta[len(coeffs):]
    # The response factors out an integer: factor·(other / factor) when it divides evenly.
    if all(c % factor == 0 for c in other) and any(other):
        resp = f"{factor}\\left({poly_text([c // factor for c in other], rng)}\\right)"
    else:
        resp = poly_text(other, rng)
    gold = poly_text(coeffs, rng)
    strip = lambda v: [c for c in (v + [0] * 8)[:8]]  # noqa: E731
    want = strip(coeffs) == strip(other)
    assert brorl.verify_math(gold, resp) == want, (gold, resp)


@st.composite
def sympy_exprs(draw, depth=3):
    """Random expressions in x and y (SymPy is the reference: it knows their value exactly)."""
    sp = pytest.importorskip("sympy")
    x, y = sp.symbols("x y")
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([x, y, sp.Integer(draw(st.integers(-5, 5))), sp.Rational(1, 3), sp.sqrt(2)]))
    op = draw(st.sampled_from(["add", "mul", "sub", "pow", "sin", "cos", "exp"]))
    a = draw(sympy_exprs(depth=depth - 1))
    if op in ("add", "mul", "sub"):
        b = draw(sympy_exprs(depth=depth - 1))
        return {"add": a + b, "mul": a * b, "sub": a - b}[op]
    if op == "pow":
        return a ** draw(st.integers(2, 3))
    return {"sin": sp.sin, "cos": sp.cos, "exp": sp.exp}[op](a)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(e=sympy_exprs(), k=st.integers(1, 3))
def test_sympy_latex_forms_agree(e, k):
    """SymPy's LaTeX of an expression and of its expansion are the same function; adding a
    nonzero constant makes a different one."""
    sp = pytest.importorskip("sympy")
    same = sp.latex(sp.expand(e))
    assert brorl.verify_math(sp.latex(e), same), (sp.latex(e), same)
    other = sp.latex(e + k)
    assert not brorl.verify_math(sp.latex(e), other), (sp.latex(e), other)


# ---------------------------------------------------------------------------- never hangs, never crashes

SNIPPETS = [
    "\\frac", "\\sqrt", "{", "}", "(", ")", "[", "]", "\\{", "\\}", "^", "_", "1", "23", "0.5", ",",
    "x", "y", "\\pi", "e", "i", "+", "-", "\\pm", "\\cdot", "/", "=", "<", "\\leq", "\\infty", "\\cup",
    "\\text{", "\\left(", "\\right)", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "!", "\\%",
    "\\sin", "\\log_", "|", ":", " ", "\\boxed{", "$", "\\binom", "\\circ", "204_5", "\u00e9", "\\",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gold=st.lists(st.sampled_from(SNIPPETS), max_size=25), resp=st.lists(st.sampled_from(SNIPPETS), max_size=40))
def test_fuzz_token_soup(gold, resp):
    g, r = "".join(gold), "".join(resp)
    assert brorl.verify_math_status(g, r) in STATUSES
    assert brorl.verify_math_status(r, g) in STATUSES
    # A boxed answer always verifies against itself as gold (first check: equal strings).
    if any(c.isalnum() for c in r) and not r.endswith("\\") and not any(c in r for c in "{}") and "boxed" not in r:
        assert brorl.verify_math_status(r, "\\boxed{" + r + "}") == "correct"


@settings(max_examples=200, deadline=None)
@given(gold=st.text(max_size=60), resp=st.text(max_size=200))
def test_fuzz_arbitrary_text(gold, resp):
    assert brorl.verify_math_status(gold, resp) in STATUSES
    assert isinstance(brorl.extract_answer(resp), (str, type(None)))


# A guard against hangs (each row takes milliseconds), not a performance assertion.
@pytest.mark.timeout(30)
@pytest.mark.parametrize("row", corpus_rows(), ids=lambda r: r["note"])
def test_regression_corpus(row):
    status = brorl.verify_math_status(row["gold"], row["response"])
    assert status in row["expect"], (row["note"], status)
    assert brorl.verify_math_batch_status([row["gold"]], [row["response"]])[0] == brorl.MATH_STATUSES.index(status)


# ---------------------------------------------------------------------------- the CLI


def test_cli_single_pair(capsys):
    assert cli_main(["verify", "math", "--gold", "\\frac12", "--response", "The answer is \\boxed{0.5}"]) == 0
    assert capsys.readouterr().out.strip() == "correct"
    assert cli_main(["verify", "math", "--gold", "4", "--response", "4\\sqrt2"]) == 1
    assert capsys.readouterr().out.strip() == "wrong"


def test_cli_jsonl(tmp_path, capsys):
    f = tmp_path / "pairs.jsonl"
    rows = [{"gold": "1", "response": "\\boxed{1}"}, {"gold": "2", "response": "no idea"}, {"gold": "3", "response": "4"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert cli_main(["verify", "math", "--jsonl", str(f), "--threads", "2"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["status"] for o in out] == ["correct", "no_answer", "wrong"]
    assert [o["line"] for o in out] == [1, 2, 3]  # file lines, from 1


def test_cli_rejects_bad_jsonl(tmp_path, capsys):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"gold": "1"}) + "\n")
    assert cli_main(["verify", "math", "--jsonl", str(f)]) == 2
    assert "line 1: field `response` must be a string" in capsys.readouterr().err
    f.write_text(json.dumps({"gold": "1", "response": "1"}) + "\n")
    assert cli_main(["verify", "math", "--jsonl", str(f), "--threads", "0"]) == 2
    assert "`threads` must be at least 1" in capsys.readouterr().err
    assert cli_main(["verify", "math", "--gold", "1"]) == 2
    assert "--gold needs --response" in capsys.readouterr().err


# Ways a response can offer two values at once. A reward that accepts one of them for either
# gold pays a policy for hedging; each template may match at most one of the two values.
HEDGES = [
    r"\boxed{{{x} \text{{ or }} {y}}}", r"\boxed{{{x}}} or \boxed{{{y}}}", r"\boxed{{{x}}}, \boxed{{{y}}}",
    "The answer is {x} or {y}.", r"\boxed{{{x} \lor {y}}}", r"\boxed{{{x}, {y}}}", r"\boxed{{\{{{x}, {y}\}}}}",
    r"\boxed{{{x} \text{{ (or }} {y})}}", "Answer: {x}\nAnswer: {y}", "#### {x}\n#### {y}", "<answer>{x} or {y}</answer>",
    r"\boxed{{{x}}}" + "\n\nFinal Answer: {y}", r"\boxed{{x = {x} \text{{ or }} x = {y}}}", r"\boxed{{{x} \text{{ and }} {y}}}",
    "{x} {y}", "{x}, {y}", r"\boxed{{\text{{{x} or {y}}}}}", r"\boxed{{\textbf{{{x}}} \text{{ or }} \textbf{{{y}}}}}",
    r"\boxed{{{x}}}\boxed{{{y}}}", r"$\boxed{{{x}}}$ and $\boxed{{{y}}}$", r"\boxed{{{x} \text{{ or maybe }} {y}}}",
    r"\boxed{{{x}\ \mathrm{{or}}\ {y}}}", r"\boxed{{{x} \; \text{{or}} \; {y}}}", r"\boxed{{{x} | {y}}}", r"\boxed{{{x} \vee {y}}}",
    r"\boxed{{{x};{y}}}", r"\boxed{{{x} \quad {y}}}", r"\boxed{{{x}\\{y}}}", r"\boxed{{\begin{{cases}} {x} \\ {y} \end{{cases}}}}",
    r"\boxed{{{x} \text{{ to }} {y}}}", r"\boxed{{[{x}, {y}]}}", r"\boxed{{{x} \sim {y}}}", r"\boxed{{{x} \approx {y}}}",
    r"\boxed{{{x} = {y}}}", r"\boxed{{{x} \ne {y}}}", r"\boxed{{{x}\text{{ }}{y}}}", r"\boxed{{{x}\text{{, }}{y}}}",
    r"\boxed{{{x}\text{{/}}{y}}}", r"\boxed{{{x} \pm ({y} - {x})}}",
]


def _value(rnd: random.Random) -> str:
    kind = rnd.randrange(4)
    if kind == 0:
        return str(rnd.randint(-50, 200))
    if kind == 1:
        return f"{rnd.randint(0, 99)}.{rnd.randint(0, 99):02d}"
    if kind == 2:
        return f"\\frac{{{rnd.randint(1, 30)}}}{{{rnd.randint(2, 30)}}}"
    return f"{rnd.randint(1, 9)}\\sqrt{{{rnd.choice([2, 3, 5, 7])}}}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), template=st.sampled_from(HEDGES))
def test_no_response_matches_two_different_values(seed, template):
    rnd = random.Random(seed)
    x, y = _value(rnd), _value(rnd)
    if brorl.verify_math(x, f"\\boxed{{{y}}}"):
        return  # the same value twice (e.g. 2/4 and 1/2): no hedge
    response = template.format(x=x, y=y)
    assert not (brorl.verify_math(x, response) and brorl.verify_math(y, response)), response
