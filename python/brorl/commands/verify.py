"""``brorl verify KIND``: check model answers against references from the command line.

Each kind lives in its own module, imported only when it runs. To add one (e.g. ``code``), add a
line to ``KINDS``; the module defines ``add_arguments(parser)`` and ``run(args) -> int``, the same
protocol as the top-level commands in ``brorl.cli``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# kind -> (module, help)
KINDS: dict[str, tuple[str, str]] = {
    "math": ("brorl.commands.verify_math", "is a math answer equivalent to the reference answer?"),
    "code": ("brorl.commands.verify_code", "does a program pass its unit tests in brorl's sandbox?"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    chosen = _chosen_kind(sys.argv)
    for kind, (module, help_text) in KINDS.items():
        p = sub.add_parser(kind, help=help_text, description=help_text)
        p.set_defaults(_kind_module=module)
        if chosen in (None, kind):
            importlib.import_module(module).add_arguments(p)


def _chosen_kind(argv: list[str]) -> str | None:
    """The kind named on the command line, so only its module is imported (None: unknown)."""
    for a in argv:
        if a in KINDS:
            return a
    return None


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._kind_module).run(args) or 0)
