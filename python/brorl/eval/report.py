"""The three views of an evaluation: a terminal table, a Markdown file and a JSON file (plus the
responses themselves, one JSON line each)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    ks = result["config"]["ks"]
    header = ["task set", "problems"] + [f"pass@{k}" for k in ks] + ["mean score", "mean tokens", "truncated"]

    def row(name: str, m: dict[str, Any]) -> list[str]:
        return (
            [name, str(m["problems"])]
            + [f"{100 * m['pass_at_k'][str(k)]:.2f}" for k in ks]
            + [f"{100 * m['mean_score']:.2f}", f"{m['mean_response_tokens']:.1f}", f"{100 * m['truncation_rate']:.1f}%"]
        )

    rows = [row(ts["name"], ts) for ts in result["task_sets"]]
    rows.append(row("overall", result["overall"]))
    return header, rows


def table(result: dict[str, Any]) -> str:
    header, rows = _rows(result)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows[:-1]] + ["  ".join("-" * w for w in widths), fmt(rows[-1])]
    return "\n".join(lines)


def _settings(c: dict[str, Any]) -> str:
    return (
        f"engine {c['engine']}, {c['samples']} samples per problem, temperature {c['temperature']}, "
        f"top-p {c['top_p']}, max {c['max_tokens']} new tokens, seed {c['seed']}, "
        f"chat template {'on' if c['chat_template'] else 'off'}"
    )


def markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    header, rows = _rows(result)
    out = [
        f"# Evaluation of `{c['model_dir']}`",
        "",
        f"{_settings(c)}. Reasoning Gym: seed {c['rg_seed']}, {c['rg_size']} problems per task.",
        "pass@k is the unbiased estimator averaged over problems, in %; \"overall\" is the unweighted mean of "
        "the task sets. A sample is correct when its score is 1; \"mean score\" also counts the partial "
        "credit some Reasoning Gym scorers give.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    for ts in result["task_sets"]:
        if "by_task" not in ts:
            continue
        out += ["", f"## {ts['name']} by task", "", "| task | problems | pass@1 | mean score | mean tokens | truncated |", "|---|---:|---:|---:|---:|---:|"]
        for name, m in ts["by_task"].items():
            out.append(
                f"| {name} | {m['problems']} | {100 * m['pass_at_k']['1']:.2f} | {100 * m['mean_score']:.2f} | "
                f"{m['mean_response_tokens']:.1f} | {100 * m['truncation_rate']:.1f}% |"
            )
    versions = ", ".join(f"{k} {v}" for k, v in c["versions"].items())
    out += ["", f"Data: {', '.join(f'`{d}`' for d in c['data'])}. Machine: {c['machine']}. Versions: {versions}.", ""]
    return "\n".join(out)


def write(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, results.md and samples.jsonl under ``out_dir``; return their paths."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"json": d / "results.json", "markdown": d / "results.md", "samples": d / "samples.jsonl"}
    summary = {k: v for k, v in result.items() if k != "samples"}
    paths["json"].write_text(json.dumps(summary, indent=2) + "\n")
    paths["markdown"].write_text(markdown(result))
    with open(paths["samples"], "w", encoding="utf-8") as fh:
        for rec in result["samples"]:
            fh.write(json.dumps(rec) + "\n")
    return paths
