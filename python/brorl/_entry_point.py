"""Why a code verdict failed when the program does not define the function under test.

The sandbox harness only sees a failed lookup of ``entry_point`` (a runtime error with no
message); this reads the program's top-level statements to say what it defines instead. It is
consulted only after a run failed, so a guess that misses (a name made by ``exec``) costs
nothing but a message."""

from __future__ import annotations

import ast

__all__ = ["entry_point_problem"]


def _bound_names(body: list[ast.stmt]) -> dict[str, ast.AST] | None:
    """Names bound by ``body``'s statements (descending into if/try/with/for, not into
    function or class bodies); None when unknowable (``import *``, ``exec``, ``globals()``)."""
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
            continue
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return None
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                names[(a.asname or a.name).split(".")[0]] = node
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in (
                "exec", "globals", "setattr", "vars", "locals"
            ):
                return None
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names[sub.id] = sub
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                more = _bound_names(inner)
                if more is None:
                    return None
                names.update(more)
            elif isinstance(inner, list):
                for h in inner:
                    if isinstance(h, ast.ExceptHandler):
                        more = _bound_names(h.body)
                        if more is None:
                            return None
                        names.update(more)
    return names


def entry_point_problem(program: str, entry_point: str) -> str | None:
    """A message saying that ``program`` does not define ``entry_point`` (``name`` or
    ``Class.method``), or None when it does, when it cannot be told, or when it does not parse."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return None
    top = _bound_names(tree.body)
    if top is None:
        return None
    head, _, method = entry_point.partition(".")
    listed = ", ".join(sorted(top)) or "nothing"
    if head not in top:
        return f"entry_point {entry_point!r}: the program defines no {head!r} at top level (it defines: {listed})"
    node = top[head]
    if method and isinstance(node, ast.ClassDef):
        members = _bound_names(node.body)
        if members is not None and method not in members:
            has = ", ".join(sorted(members)) or "nothing"
            return f"entry_point {entry_point!r}: class {head!r} has no {method!r} (it has: {has})"
    return None
