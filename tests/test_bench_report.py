"""The benchmark report rewrites only its generated sections: hand-written measurement sections
after them (code verifier, training loop, ...) survive a rerun."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benches" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def test_rerun_keeps_the_sections_after_the_generated_ones():
    ra = _run_all()
    old = ra.render("old cpu table\n", None, None, "\n## Code verifier\n\nhand-written numbers\n")
    new = ra.render("new cpu table\n", ra._between(old, "gpu"), None, ra._after_report(old))
    assert "new cpu table" in new and "old cpu table" not in new
    assert new.endswith("## Code verifier\n\nhand-written numbers\n")


def test_the_committed_report_round_trips():
    ra = _run_all()
    text = (ROOT / "BENCHMARKS.md").read_text()
    title = ra.re.search(r"^## GPU: (.+)$", text, ra.re.MULTILINE)
    again = ra.render(ra._between(text, "cpu"), ra._between(text, "gpu"), title.group(1) if title else None,
                      ra._after_report(text))
    assert again == text
