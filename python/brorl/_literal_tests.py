"""HumanEval/MBPP tests that are only literal assertions, read as a list of calls.

Most HumanEval tests are a `check(candidate)` made of statements such as
``assert candidate([1, 2], k=3) == [2, 4]``: every argument and every expected value a
literal. Such a test needs no test process: :func:`literal_calls` reads it (here, in brorl's own
process; the test is trusted dataset code and is parsed, never run) into calls whose arguments
go to the program's process and whose returned values brorl compares itself, with Python's
``==`` on plain data. Anything else (imports, helpers, loops, ``abs(candidate(x) - y) < 1e-6``,
arguments that are not JSON data) returns None, and the test runs as before: in a process of its
own with a proxy ``candidate``.

Pure stdlib (``ast``, ``json``); the result is cached per (test source, entry point), since an RL
batch holds N samples of each test.
"""

from __future__ import annotations

import ast
import json
import math
from functools import lru_cache
from typing import Any

__all__ = ["literal_calls", "MAX_CALLS"]

MAX_CALLS = 10_000  # more asserts than this: the test process handles it
# A longer test source is not parsed here; with the cache's size this bounds what the cache
# holds (sources and their calls) to a few hundred MB in the worst case.
_SOURCE_LIMIT = 256 << 10
_EXPECT_OPS = ("eq", "is", "truthy", "falsy")


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _NotLiteral from None


def _json_exact(v: Any, depth: int = 0) -> bool:
    """Whether ``v`` survives a JSON round trip with its exact types (the arguments travel to
    the program's process as JSON): no tuples, sets, bytes, non-str keys or non-finite floats."""
    if depth > 100:
        return False
    t = type(v)
    if v is None or t is bool or t is str:
        return True
    if t is int:  # beyond 4300 digits `json` refuses it (`sys.int_info.default_max_str_digits`)
        return v.bit_length() <= 14000
    if t is float:
        return math.isfinite(v)
    if t is list:
        return all(_json_exact(x, depth + 1) for x in v)
    if t is dict:
        return all(type(k) is str and _json_exact(x, depth + 1) for k, x in v.items())
    return False


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _plain(v: Any, depth: int = 0) -> bool:
    """Whether ``v`` is plain data (what brorl can compare exactly): no complex, frozenset, ..."""
    if depth > 100:
        return False
    t = type(v)
    if t is str:
        return v.isascii() or _utf8(v)  # a lone surrogate is not a str brorl can hold
    if v is None or t in (bool, int, float, bytes):
        return True
    if t in (list, tuple, set):
        return all(_plain(x, depth + 1) for x in v)
    if t is dict:
        return all(_plain(k, depth + 1) and _plain(x, depth + 1) for k, x in v.items())
    return False


def _call(node: ast.AST, candidate: str) -> str:
    """The JSON text of the arguments of ``candidate(<literals>)`` (a list, or an object for
    keyword arguments only)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == candidate):
        raise _NotLiteral
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise _NotLiteral
    if node.args and node.keywords:
        raise _NotLiteral  # the call harness takes a list or an object, not both
    if node.keywords:
        args: Any = {k.arg: _literal(k.value) for k in node.keywords}
    else:
        args = [_literal(a) for a in node.args]
    # depth 1: the test process's proxy sends `(args, kwargs)`, each argument two levels down
    if not _json_exact(args, 1):
        raise _NotLiteral
    try:
        return json.dumps(args)
    except (ValueError, RecursionError):
        raise _NotLiteral from None


def _assertion(test: ast.AST, candidate: str) -> tuple[str, str, Any] | None:
    """(arguments JSON, check, expected) for one ``assert``; None for an assert of a true
    constant (nothing to run)."""
    if isinstance(test, ast.Constant):
        if test.value:
            return None
        raise _NotLiteral  # assert False: leave it to the test process
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _call(test.operand, candidate), "falsy", None
    if isinstance(test, ast.Call):
        return _call(test, candidate), "truthy", None
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq):
            if isinstance(right, ast.Call):  # `expected == candidate(...)`: the same for plain data
                left, right = right, left
            expected = _literal(right)
            if not _plain(expected):
                raise _NotLiteral
            return _call(left, candidate), "eq", expected
        if isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value in (None, True, False) \
                and type(right.value) in (type(None), bool):
            return _call(left, candidate), "is", right.value
    raise _NotLiteral


@lru_cache(maxsize=1024)
def literal_calls(source: str, entry_point: str, prompt: str | None = None) -> tuple[tuple[str, str, Any], ...] | None:
    """The calls of a test made only of literal assertions, in order, as
    ``(arguments JSON, check, expected)`` with check one of ``eq`` (``==``), ``is``
    (``is None/True/False``), ``truthy`` (``assert candidate(...)``), ``falsy``
    (``assert not candidate(...)``); None when the test is anything more.

    Accepted: at module level a docstring, assignments of literals (HumanEval's ``METADATA``)
    and one ``def check(candidate):`` whose body is a docstring and ``assert`` statements (their
    messages are ignored: they only matter once the test has failed).

    ``prompt`` (the trusted code the test process would run first) must at least compile: the
    test process fails every program on a prompt that does not, and so must this reading. A
    prompt that compiles but fails when run (a missing import) is not caught here."""
    if len(source) > _SOURCE_LIMIT or "." in entry_point:
        return None  # a method of a class: the test process builds the instance
    if prompt is not None:
        try:
            compile(prompt, "<prompt>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError):
            return None
    if entry_point == "check":
        return None  # the test process binds the proxy to that name, replacing `check`: it judges
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    checks = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if len(checks) != 1:
        return None
    check = checks[0]
    for s in tree.body:
        if s is check or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):
            continue
        if isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) and t.id != "check" for t in s.targets):
            try:
                _literal(s.value)
                continue
            except _NotLiteral:
                return None
        return None
    a = check.args
    if check.decorator_list or len(a.args) != 1 or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults:
        return None
    if check.returns is not None or a.args[0].annotation is not None:
        return None  # evaluated when `check` is defined: it may raise there
    candidate = a.args[0].arg
    calls = []
    try:
        for s in check.body:
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
                continue
            if not isinstance(s, ast.Assert):
                return None
            one = _assertion(s.test, candidate)
            if one is not None:
                calls.append(one)
    except _NotLiteral:
        return None
    if not calls or len(calls) > MAX_CALLS:
        return None  # no call at all: the test process decides (it may fail on the prompt)
    return tuple(calls)
