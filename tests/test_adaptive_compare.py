"""scripts/adaptive_vs_uniform.py: reusing a sweep's runs as the uniform arm is only allowed when
the two arms' run configs differ in nothing but the allocation and the run's directory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "adaptive_vs_uniform.py"


@pytest.fixture(scope="module")
def cmp():
    spec = importlib.util.spec_from_file_location("adaptive_vs_uniform", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cfg(allocation="uniform", out="runs/a", lr=1e-4, n=16):
    return {"algorithm": {"n": n, "allocation": allocation, "adaptive": {"cap": 4}},
            "optim": {"lr": lr}, "run": {"output_dir": out, "seed": 0}}


def test_only_allocation_and_directory_may_differ(cmp):
    assert cmp.config_differences(_cfg(), _cfg("adaptive", "runs/b")) == []
    assert cmp.config_differences(_cfg(), _cfg("adaptive", "runs/b", lr=2e-4)) == ["optim.lr"]
    assert cmp.config_differences(_cfg(n=16), _cfg(n=64)) == ["algorithm.n"]
    b = _cfg()
    b["run"]["extra"] = 1
    assert cmp.config_differences(_cfg(), b) == ["run.extra"]


def _run(root: Path, name: str, cfg: dict, pass1_end: float, allocation_sizes=(16, 16, 16, 16, 16)):
    import yaml

    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    ev = [{"step": 0, "samples_generated": 0, "heldout_pass_at_k": {"1": 0.1}},
          {"step": 1, "samples_generated": 64, "heldout_pass_at_k": {"1": pass1_end}}]
    (d / "sweep_run.json").write_text(json.dumps({"n": 16, "seed": int(name[-1]), "evals": ev, "train_seconds": 5.0}))
    n_min, n_p25, n_med, n_p75, n_max = allocation_sizes
    row = {"step": 1, "alloc/samples": 64.0, "alloc/wasted_share": 0.25, "groups_kept": 3, "alloc/n_min": n_min,
           "alloc/n_p25": n_p25, "alloc/n_median": n_med, "alloc/n_p75": n_p75, "alloc/n_max": n_max}
    (d / "metrics.jsonl").write_text(json.dumps(row) + "\n")


def test_uniform_arm_is_read_from_the_sweep_directory(cmp, tmp_path):
    sweep_dir, out = tmp_path / "sweep", tmp_path / "cmp"
    for s, p in ((0, 0.2), (1, 0.4)):
        _run(sweep_dir, f"n16_seed{s}", _cfg(out=str(sweep_dir / "runs")), p)
        _run(out / "adaptive", f"n16_seed{s}", _cfg("adaptive", str(out / "adaptive" / "runs")), p + 0.1,
             (8, 12, 16, 20, 32))
    dirs = cmp.arm_dirs(out, sweep_dir)
    assert cmp.check_pairs(dirs, [16], [0, 1]) == []
    text = cmp.write_table(out, [16], [0, 1], dirs)
    uni = next(line for line in text.splitlines() if line.startswith("| uniform | 16 | 2 |"))
    ada = next(line for line in text.splitlines() if line.startswith("| adaptive | 16 | 2 |"))
    # end pass@1: mean and sample sd over the two seeds
    assert "| 0.300 ± 0.141 |" in uni and "| 0.400 ± 0.141 |" in ada
    assert "8 / 12 / 16 / 20 / 32" in ada and "16 / 16 / 16 / 16 / 16" in uni
    rows = json.loads((out / "comparison.json").read_text())
    assert {r["dir"] for r in rows if r["arm"] == "uniform"} == {str(sweep_dir / "runs" / f"n16_seed{s}") for s in (0, 1)}
    # a run whose recipe differs is refused by name
    _run(sweep_dir, "n16_seed2", _cfg(lr=3e-4, out="x"), 0.1)
    _run(out / "adaptive", "n16_seed2", _cfg("adaptive", "y"), 0.1)
    assert cmp.check_pairs(dirs, [16], [0, 1, 2]) == ["n16_seed2: optim.lr"]
