"""The typed config tree: presets, overrides, validation messages naming the field."""

from __future__ import annotations

import dataclasses
import math

import pytest

from brorl.errors import ConfigError
from brorl.train import config as C


def test_default_resolves_and_every_field_has_help():
    cfg = C.load_config()
    assert cfg.algorithm.n >= 256
    assert cfg.model.path == "builtin:tiny"
    names = C.field_help()
    assert len(names) > 60
    for name, help_text, _ in names:
        assert len(help_text) > 10, f"{name} lacks a help string"


def test_presets_match_paper_table_1():
    bro = C.load_config(overrides=["preset=brorl"])
    pro = C.load_config(overrides=["preset=prorl"])
    assert (bro.algorithm.n, bro.algorithm.prompts_per_step) == (512, 128)
    assert (pro.algorithm.n, pro.algorithm.prompts_per_step) == (16, 512)
    # sqrt rule: 8x the rollouts per step -> sqrt(8)x the learning rate
    assert C.effective_lr(bro) / C.effective_lr(pro) == pytest.approx(math.sqrt(8))
    for cfg in (bro, pro, C.load_config()):
        a = cfg.algorithm
        # ProRL's 4 PPO updates per rollout step (so clip acts) and its hard reset
        assert a.mini_batches == 4 and a.ref_reset_optimizer
        assert a.advantage_whiten == "rollout" and a.dual_clip == 0
    for cfg in (bro, pro):
        # the paper's 16,384-token context: prompt limit + response limit
        g = cfg.generation
        assert g.max_model_len == 16384 == cfg.data.max_prompt_tokens + g.max_tokens
        assert bro.algorithm.ref_reset_every == 200


def test_overrides_and_yaml_roundtrip(tmp_path):
    import yaml

    cfg = C.load_config(overrides=["algorithm.n=512", "optim.lr=2e-5", "generation.stop=['x']"])
    assert cfg.algorithm.n == 512 and cfg.optim.lr == 2e-5 and cfg.generation.stop == ["x"]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(C.to_dict(cfg)))
    again = C.load_config(p)
    assert C.to_dict(again) == C.to_dict(cfg)
    # a YAML file may start from a preset
    q = tmp_path / "p.yaml"
    q.write_text("preset: prorl\nrun: {steps: 3}\n" + yaml.safe_dump({"data": C.to_dict(cfg)["data"]}))
    r = C.load_config(q)
    assert r.algorithm.n == 16 and r.run.steps == 3


@pytest.mark.parametrize(
    "override,needle",
    [
        ("algorithm.mini_batches=3", "algorithm.mini_batches = 3: must divide algorithm.prompts_per_step"),
        ("algorithm.estimator=ppo_gae", "algorithm.estimator = 'ppo_gae'"),
        ("algorithm.dual_clip=0.5", "algorithm.dual_clip = 0.5: must be > 1"),
        ("algorithm.log_ratio_clamp=0", "algorithm.log_ratio_clamp"),
        ("algorithm.ref_reset_optimizer=often", "algorithm.ref_reset_optimizer: expected true/false"),
        ("generation.max_model_len=64", "generation.max_model_len = 64: must hold the longest prompt"),
        ("algorithm.kl_estimator=k7", "algorithm.kl_estimator"),
        ("algorithm.loss_agg=sum", "algorithm.loss_agg"),
        ("algorithm.n=1", "algorithm.n = 1"),
        ("generation.temperature=0", "generation.temperature"),
        ("deepspeed.zero_stage=1", "deepspeed.zero_stage"),
        ("deepspeed.bucket_elements=1000", "deepspeed.bucket_elements = 1000: must be at least"),
        ("generation.release_kv_cache=maybe", "generation.release_kv_cache: expected true/false"),
        ("algorithm.tis_low=2", "algorithm.tis_low/tis_high"),
        ("algorithm.n=many", "algorithm.n: expected an integer, got 'many'"),
        ("algorithm.nn=4", "algorithm.nn: unknown field"),
        ("model.path=/nonexistent/model", "model.path"),
        ("preset=huge", "unknown preset 'huge'"),
        ("data.sources=[{kind: jsonl, path: /no/such.jsonl}]", "data.sources[0].path"),
        ("data.sources=[{kind: parquet}]", "data.sources[0].kind"),
        ("data.on_bad_row=ignore", "data.on_bad_row"),
        ("optim.eps=0", "optim.eps"),
        ("run.eval_samples=0", "run.eval_samples"),
        ("warmup.task=basic_arithmetic", "warmup.worked"),
        ("warmup.tag_share=0", "warmup.tag_share"),
        ("warmup.tag_share=1.5", "warmup.tag_share"),
    ],
)
def test_bad_values_name_the_field(override, needle):
    with pytest.raises(ConfigError) as e:
        C.load_config(overrides=[override])
    assert needle in str(e.value)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        C.load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        C.load_config(p)
    with pytest.raises(ConfigError, match="key=value"):
        C.load_config(overrides=["algorithm.n"])


def test_config_is_dataclass_tree():
    cfg = C.TrainConfig()
    assert dataclasses.is_dataclass(cfg.algorithm)
    assert cfg.algorithm.clip_low == 0.2 and cfg.algorithm.clip_high == 0.28
    assert cfg.algorithm.kl_estimator == "k2" and cfg.algorithm.kl_coef == 1e-4
    assert (cfg.algorithm.tis_low, cfg.algorithm.tis_high) == (0.5, 5.0)
    assert cfg.algorithm.loss_agg == "token-mean"


def test_shipped_configs_resolve(tmp_path, monkeypatch):
    from pathlib import Path

    # a missing relative model path also reads as a Hub id; offline, an id not in the Hugging
    # Face cache is refused at validation
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    root = Path(__file__).resolve().parent.parent / "configs"
    files = [root / n for n in ("default_cpu.yaml", "smollm2_135m_cpu.yaml", "brorl_1p5b_gpu.yaml", "prorl_1p5b_gpu.yaml")]
    (tmp_path / "m.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n')
    import yaml

    for f in files:
        data = yaml.safe_load(f.read_text())
        # the GPU/SmolLM2 configs name a model directory the user provides (make smollm2 makes one)
        missing = "model" in data and not (root.parent / data["model"]["path"]).is_dir()
        with pytest.raises(ConfigError) if missing else _nothing():
            C.load_config(f)
        over = [f"model.path={tmp_path}"] if "model" in data else []
        for i, s in enumerate(data.get("data", {}).get("sources", [])):
            if s.get("kind") == "jsonl" and not Path(s["path"]).is_file():
                over.append(f"data.sources[{i}]")  # replaced below
        if any(o.startswith("data.sources[") for o in over):
            srcs = [dict(s, path=str(tmp_path / "m.jsonl")) if s.get("kind") == "jsonl" else s for s in data["data"]["sources"]]
            over = [o for o in over if not o.startswith("data.sources[")] + [f"data.sources={srcs}"]
        cfg = C.load_config(f, over)
        if "1p5b" in f.name:
            n, p = cfg.algorithm.n, cfg.algorithm.prompts_per_step
            assert (n, p) == ((512, 128) if "brorl" in f.name else (16, 512))
            assert cfg.model.dtype == "bfloat16" and cfg.deepspeed.zero_stage == 3
            assert cfg.algorithm.mini_batches == 4 and cfg.algorithm.ref_reset_optimizer
            assert cfg.generation.max_model_len == 16384 == cfg.data.max_prompt_tokens + cfg.generation.max_tokens


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_worked_steps_keep_a_running_total():
    from brorl.train.tiny import worked_steps

    assert worked_steps("8 + 0 - 7") == "8+0=8, 8-7=1. "
    assert worked_steps("5 - 9") == "5-9=-4. "
    assert worked_steps("0 - 6 + 9 - 9") == "0-6=-6, -6+9=3, 3-9=-6. "
    with pytest.raises(ValueError, match="expected 'a \\+ b"):
        worked_steps("3 * 4")


def test_warmup_teacher_omits_the_tag_in_the_configured_share():
    from brorl.train.loop import warmup_pairs

    pairs = warmup_pairs(C.load_config(overrides=["warmup.size=1000"]))  # default: tag_share 0.7
    tagged = [r for _, r in pairs if r.endswith("</answer>")]
    untagged = [r for _, r in pairs if "<answer>" not in r]
    assert len(tagged) + len(untagged) == 1000
    assert 0.65 < len(tagged) / 1000 < 0.75
    # both kinds show the worked running total; an untagged one ends after it
    assert all("=" in r for _, r in pairs) and all(r.endswith(".") for r in untagged)
    assert pairs[0][0].endswith("\n") and "<answer>" not in pairs[0][0]
    full = warmup_pairs(C.load_config(overrides=["warmup.size=200", "warmup.tag_share=1.0"]))
    assert all(r.endswith("</answer>") for _, r in full)
    # the warm-up's prompts carry the same few-shot examples as the RL prompts
    shots = warmup_pairs(C.load_config(overrides=["warmup.size=5", 'data.few_shot=[["1 + 2 =", "3"]]']))
    assert all(p.startswith("1 + 2 =\n3\n\n") for p, _ in shots)


def test_shipped_configs_by_name_and_data_next_to_the_file(tmp_path, monkeypatch):
    """Example configs live in the package (brorl/configs; a clone's configs/ is the same
    directory) and load by name from anywhere; their relative data paths are read next to them."""
    from pathlib import Path

    from brorl.train.config_files import SHIPPED_DIR, resolve_config_path, shipped_configs

    root = Path(__file__).resolve().parent.parent
    assert (root / "configs").resolve() == SHIPPED_DIR  # one source of truth, no copies
    assert {"default_cpu", "smollm2_135m_cpu", "brorl_1p5b_gpu", "prorl_1p5b_gpu", "brorl_ray_gpu"} <= set(
        shipped_configs()
    )
    monkeypatch.chdir(tmp_path)  # far from the clone: only the package can supply the file
    assert resolve_config_path("smollm2_135m_cpu") == SHIPPED_DIR / "smollm2_135m_cpu.yaml"
    assert resolve_config_path("smollm2_135m_cpu.yaml") == SHIPPED_DIR / "smollm2_135m_cpu.yaml"
    cfg = C.load_config("smollm2_135m_cpu", [f"model.path={tmp_path}"])
    jsonl = [s for s in cfg.data.sources if s.kind == "jsonl"]
    assert [Path(s.path) for s in jsonl] == [SHIPPED_DIR / "data" / "math_example.jsonl"]
    assert C.load_config("default_cpu").run.steps == C.load_config().run.steps
    with pytest.raises(ConfigError, match="smollm2_135m_cpu"):  # the message lists the names
        C.load_config("smollm2")
    # a path relative to the current directory still wins over one next to the file
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "math_example.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n')
    cfg = C.load_config("smollm2_135m_cpu", [f"model.path={tmp_path}"])
    assert [s.path for s in cfg.data.sources if s.kind == "jsonl"] == ["data/math_example.jsonl"]


def test_help_config_labels_the_default_jobs_values_and_lists_source_fields(capsys):
    import dataclasses

    from brorl.cli import main

    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    job = C.load_config()
    schema = C.TrainConfig()
    # fields where `brorl train` runs something else than the schema default say both, labelled
    for name in ("run.steps", "algorithm.prompts_per_step", "optim.lr"):
        section, field = name.split(".")
        d, used = getattr(getattr(schema, section), field), getattr(getattr(job, section), field)
        assert d != used
        assert f"{name} = {d!r}   [default job: {used!r}]" in lines
    # and fields where they agree carry no label
    assert f"algorithm.estimator = {job.algorithm.estimator!r}" in lines
    # every field of a data source, with its help
    for f in dataclasses.fields(C.DataSource):
        i = next(i for i, line in enumerate(lines) if line.startswith(f"data.sources[].{f.name} = "))
        assert lines[i + 1].strip() == f.metadata["help"]
