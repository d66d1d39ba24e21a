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
        ("algorithm.kl_estimator=k7", "algorithm.kl_estimator"),
        ("algorithm.loss_agg=sum", "algorithm.loss_agg"),
        ("algorithm.n=1", "algorithm.n = 1"),
        ("generation.temperature=0", "generation.temperature"),
        ("deepspeed.zero_stage=1", "deepspeed.zero_stage"),
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
