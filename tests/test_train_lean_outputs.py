"""One-token stop strings become stop token ids (vLLM then skips per-token detokenization);
anything else keeps vLLM's stop strings. The engine itself is exercised by the engine tests."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer():
    from brorl.train.tiny import build_tokenizer

    return build_tokenizer(corpus=["What is 3 + 4?\n<answer>7</answer>", "8 - 2 = 6"] * 40, vocab_size=300)


def _gen(tokenizer):
    from brorl.train.engines import VLLMGenerator

    g = VLLMGenerator.__new__(VLLMGenerator)  # no engine: only the tokenizer-side logic
    g.tokenizer, g.lean_outputs, g._stop_ids = tokenizer, True, {}
    return g


def test_single_token_stop_strings_become_ids(tokenizer):
    g = _gen(tokenizer)
    ids = g.stop_token_ids(["</answer>"])
    assert ids == [tokenizer.convert_tokens_to_ids("</answer>")]
    assert g.stop_token_ids(["</answer>", "<answer>"]) == [ids[0], tokenizer.convert_tokens_to_ids("<answer>")]


@pytest.mark.parametrize("stop", [["The end"], ["</answer>", "The end"], []])
def test_other_stop_strings_stay_strings(tokenizer, stop):
    assert _gen(tokenizer).stop_token_ids(stop) is None


def test_collect_decodes_texts_like_the_engine(tokenizer):
    from types import SimpleNamespace

    from brorl.train.engines import _collect

    resp = tokenizer.encode("6 + 1 = 7 <answer>7</answer>", add_special_tokens=False) + [tokenizer.eos_token_id]
    lp = [{t: SimpleNamespace(logprob=-0.5)} for t in resp]
    outs = [SimpleNamespace(outputs=[SimpleNamespace(token_ids=resp, logprobs=lp, finish_reason="stop", text="")])]
    ro = _collect(outs, 1.0, tokenizer)
    assert ro.texts == ["6 + 1 = 7 <answer>7</answer>"]  # the EOS is a special token: skipped
    assert ro.batch.n_rollouts == 1 and list(ro.batch.token_ids) == resp


def test_collect_reads_flat_logprobs():
    from types import SimpleNamespace

    from brorl.train.engines import _collect

    # vLLM's FlatLogprobs layout: per position a range of entries, the sampled token first
    flat = SimpleNamespace(start_indices=[0, 2, 4], end_indices=[2, 4, 6], token_ids=[5, 9, 6, 9, 7, 9],
                           logprobs=[-0.1, -3.0, -0.2, -3.0, -0.3, -3.0])
    outs = [SimpleNamespace(outputs=[SimpleNamespace(token_ids=[5, 6, 7], logprobs=flat, finish_reason="length",
                                                     text="x")])]
    ro = _collect(outs, 1.0)
    assert list(ro.batch.logprobs) == pytest.approx([-0.1, -0.2, -0.3])
    assert ro.texts == ["x"]


def test_generate_wiring_with_a_fake_engine(tokenizer):
    """What VLLMGenerator asks of vLLM with lean outputs and the GC pause (the engine is faked:
    the engine tests run the real one)."""
    import gc
    from types import SimpleNamespace

    pytest.importorskip("vllm")
    from brorl.train.interfaces import SamplingSpec

    seen = []
    close_id = tokenizer.convert_tokens_to_ids("</answer>")
    resp = tokenizer.encode("7 <answer>7</answer>", add_special_tokens=False)
    assert resp[-1] == close_id

    class FakeLLM:
        def generate(self, reqs, sp, use_tqdm=False):
            seen.append((sp, gc.isenabled()))
            flat = SimpleNamespace(start_indices=list(range(len(resp))), end_indices=list(range(1, len(resp) + 1)),
                                   token_ids=list(resp), logprobs=[-0.5] * len(resp))
            return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=resp, logprobs=flat, finish_reason="stop", text="")
                                             for _ in range(sp.n)]) for _ in reqs]

    g = _gen(tokenizer)
    g.llm, g.warm_prefix, g._on_cpu, g.gc_pause, g.last_timing = FakeLLM(), True, True, True, {}
    ro = g.generate([[5, 6, 7]], 3, SamplingSpec(max_tokens=8, stop=("</answer>",)), seed=0)
    (warm, _), (sp, gc_on) = seen
    assert warm.max_tokens == 1 and not warm.detokenize
    assert sp.stop_token_ids == [close_id] and not sp.detokenize and sp.flat_logprobs and not sp.stop
    assert gc_on is False and gc.isenabled()
    assert ro.texts == ["7 <answer>7</answer>"] * 3
    assert list(ro.batch.logprobs) == [-0.5] * (3 * len(resp))
    assert set(g.last_timing) == {"warm_prefix_s", "generate_s", "collect_s"}
