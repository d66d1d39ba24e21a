"""The README's Python API snippet runs as written (no placeholders) and does what its
comments say."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section_code(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block is not None, title
    return block.group(1)


def test_python_api_snippet_runs():
    ns: dict = {}
    exec(compile(section_code("Using it from Python"), "README.md", "exec"), ns)  # noqa: S102
    batch, kept = ns["batch"], ns["kept"]
    assert batch.truncated.tolist() == [False] * 7 + [True]
    assert ns["stats"]["pass_rate"].tolist() == [0.5, 0.0]
    assert kept.n_rollouts == 4 and kept.prompt_index.tolist() == [0, 0, 0, 0]  # prompt 1 dropped
    assert len(ns["token_adv"]) == kept.n_tokens
    assert len(ns["micro"]) == 2
    assert sorted(int(i) for rank in ns["micro"] for mb in rank for i in mb) == [0, 1, 2, 3]


def test_install_section_names_every_extra():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Install with pip\n") :]
    section = section[: section.index("\n## ", 1)]
    for cmd in ("pip install brorl ", "pip install 'brorl[train]'", "pip install 'brorl[train,vllm]'",
                "pip install 'brorl[ray]'", "--config smollm2_135m_cpu", "make wheels"):
        assert cmd in section, cmd
