"""The paper's recipe in the DeepSpeed learner: ProRL's hard reference reset (reference policy
*and* optimizer state), kept across a checkpoint and resume."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

from train_fixtures import easy_config, synthetic_batch  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from brorl.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def make(tiny, tmp_path):
    from brorl.train.config import from_dict
    from brorl.train.learner import DeepSpeedLearner

    cfg = from_dict(easy_config(tmp_path, "r", algorithm__mini_batches=2, algorithm__kl_coef=0.1))
    return DeepSpeedLearner(tiny, cfg, lr=1e-2, total_optimizer_steps=8, seed=0)


def step(learner):
    from brorl.train.interfaces import TrainBatch

    b, prompts = synthetic_batch("random")
    return learner.train_step(TrainBatch(b, prompts, b.advantages()))


def weights(learner):
    return {k: v for k, v in learner.named_weights()}


def optimizer_state(learner):
    zero = learner.engine.optimizer
    return [v for s in getattr(zero, "optimizer", zero).state.values() for v in s.values() if torch.is_tensor(v)]


def test_reference_reset_with_optimizer_reset_saves_and_resumes(tiny, tmp_path):
    # the run: step, hard reset, step
    a = make(tiny, tmp_path)
    step(a)
    before = [v.clone() for v in optimizer_state(a)]
    assert before and any(float(v.abs().max()) > 0 for v in before)
    a.reset_reference(reset_optimizer=True)
    assert all(float(v.abs().max()) == 0 for v in optimizer_state(a))  # moments and step count
    # the reference is now the current policy: KL 0 on the next step's first mini-batch
    ref = {k: v.clone() for k, v in a.ref.state_dict().items()}
    cur = weights(a)
    assert all(torch.equal(ref[k], cur[k]) for k in cur)
    m_a = step(a)
    w_a = weights(a)
    a.save_checkpoint(tmp_path / "unused")  # (exercise saving a post-reset state too)
    a.close()

    # the same run killed after the reset: its checkpoint, a new learner, the next step
    b = make(tiny, tmp_path)
    step(b)
    b.reset_reference(reset_optimizer=True)
    b.save_checkpoint(tmp_path / "ck")
    b.close()
    c = make(tiny, tmp_path)
    c.load_checkpoint(tmp_path / "ck")
    assert all(float(v.abs().max()) == 0 for v in optimizer_state(c))
    m_c = step(c)
    w_c = weights(c)
    c.close()
    for k in ("loss", "kl", "grad_norm"):
        assert m_c[k] == pytest.approx(m_a[k], rel=1e-5, abs=1e-8), k
    for k in w_a:
        torch.testing.assert_close(w_c[k], w_a[k], rtol=0, atol=1e-6)

    # keeping the optimizer state (brorl's other choice) gives a different update
    d = make(tiny, tmp_path)
    step(d)
    d.reset_reference(reset_optimizer=False)
    assert any(float(v.abs().max()) > 0 for v in optimizer_state(d))
    step(d)
    w_d = weights(d)
    d.close()
    assert max(float((w_d[k] - w_a[k]).abs().max()) for k in w_a) > 1e-3
