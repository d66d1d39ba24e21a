"""``brorl train``: run BroRL (or ProRL) training.

    brorl train                                  # the built-in default (tiny model, CPU, minutes)
    brorl train --config configs/x.yaml algorithm.n=512 run.steps=100
    brorl train --config smollm2_135m_cpu        # a shipped example config, by name
    brorl train preset=prorl data.sources=[...]  # a preset plus overrides
    brorl train --help-config                    # every config field with its help
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__
    from brorl.train.config_files import shipped_configs

    p.add_argument("--config", help="YAML config file (may start from 'preset: brorl|prorl|default'), or the name "
                   f"of a shipped example: {', '.join(shipped_configs())}")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, values parsed as YAML")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--help-config", action="store_true", help="list every config field with its help and exit")


def help_config() -> str:
    """Every config field with its help: the field's default and, where it differs, the value
    the default job (``brorl train`` with no ``--config``) runs with; then every field of a data
    source (an item of ``data.sources``)."""
    from brorl.train.config import DataSource, field_help, load_config, to_dict

    job = to_dict(load_config())

    def job_value(name: str):
        node = job
        for part in name.split("."):
            node = node[part]
        return node

    out = [
        "Each field: `name = default` (a --config file without `preset:` starts from these), then, where",
        "it differs, [default job: value], what `brorl train` with no --config runs (preset: default).",
        "",
    ]
    for name, help_text, default in field_help():
        shown = f"{name} = {default!r}"
        try:
            used = job_value(name)
        except (KeyError, TypeError):
            used = default
        if used != default:
            shown += f"   [default job: {used!r}]"
        out += [shown, f"    {help_text}"]
    out += ["", "Fields of each item of data.sources (a data source):", ""]
    for name, help_text, default in field_help(DataSource, "data.sources[]."):
        out += [f"{name} = {default!r}", f"    {help_text}"]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    import yaml

    from brorl.errors import ConfigError
    from brorl.train.config import load_config, to_dict

    if args.help_config:
        print(help_config())
        return 0
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"brorl train: config error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    from brorl.train.loop import Trainer

    # under torchrun every rank runs this; rank 0 speaks for the job
    lead = os.environ.get("RANK", "0") == "0"
    t_model = f"{cfg.model.path}"
    if lead:
        print(f"[brorl] training {t_model}: N={cfg.algorithm.n} rollouts x {cfg.algorithm.prompts_per_step} prompts/step, "
              f"{cfg.run.steps} steps, engine={cfg.generation.engine}, ZeRO-{cfg.deepspeed.zero_stage}"
              + (f", {os.environ['WORLD_SIZE']} ranks" if os.environ.get("WORLD_SIZE", "1") != "1" else ""), flush=True)
    from brorl.errors import WorkerLostError

    try:
        res = Trainer(cfg).run()
    except WorkerLostError as e:
        # A distributed run lost a worker beyond repair (e.g. a trainer rank): the message says
        # which, where the last complete checkpoint is and how to resume.
        print(f"brorl train: {e}", file=sys.stderr)
        return 3
    if res.rank != 0:
        return 0
    print()
    print(f"[brorl] done: {res.steps_done} steps in {res.seconds:.0f}s")
    # the held-out numbers were printed as they came (before training, after training)
    print(f"[brorl] run directory: {res.run_dir.resolve()}")
    print(f"[brorl]   metrics: {(res.run_dir / 'metrics.jsonl').resolve()}")
    if res.log_path is not None:
        print(f"[brorl]   log:     {res.log_path.resolve()} ({res.log_hidden} library messages kept out of the console)")
    for p in res.plots:
        print(f"[brorl]   curves:  {p.resolve()}")
    if (res.run_dir / "tensorboard").is_dir():
        print(f"[brorl]   tensorboard --logdir {(res.run_dir / 'tensorboard').resolve()}")
    return 0
