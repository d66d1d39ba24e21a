"""The ``brorl`` command line. Each subcommand lives in its own module and is imported only
when it runs, so ``brorl --help`` stays fast and needs no heavy dependency."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). The module defines `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("brorl.bench.bookkeeping", "time the per-step rollout bookkeeping against plain NumPy"),
    "simulate": ("brorl.simulate", "reproduce the paper's toy mass-balance experiment (Fig. 3): CSV + PNG"),
    "plot": ("brorl.plot", "plot training curves of one or more run directories side by side"),
    "eval": ("brorl.eval.cli", "pass@k of a model on math, HumanEval and Reasoning Gym task sets"),
    "sweep": ("brorl.sweep.cli", "N at equal samples per step over seeds: does broadening N pay? (report + plots)"),
    "train": ("brorl.train.cli", "train a model with BroRL/ProRL (no arguments: the built-in CPU default)"),
    "verify": ("brorl.commands.verify", "check model answers against references (brorl verify math ...)"),
    "export": ("brorl.train.export", "write a Hugging Face model directory from a `brorl train` checkpoint"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brorl", description=__doc__)
    from brorl import __version__

    parser.add_argument("--version", action="version", version=f"brorl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are declared by the command's module; load it lazily only for that parser.
        if argv and argv[0] == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else "?"
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        module = importlib.import_module(args._module)
        return int(module.run(args) or 0)
    except ImportError as e:
        # A package of an optional extra is missing: say which extra, in one line.
        from brorl.errors import MissingExtraError
        from brorl.extras import missing_extra

        err = e if isinstance(e, MissingExtraError) else None
        if err is None and isinstance(e, ModuleNotFoundError) and e.name:
            err = missing_extra(command, e.name)
        if err is None:
            raise
        print(err, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
