"""Custom reward functions: ``reward.functions`` ('module:function') and
``brorl.train(reward_fn=...)``, combined with the built-in verifiers by domain, scored in this
process and in the reward pool on a local Ray cluster; typed errors for bad import paths, wrong
lengths and non-finite values."""

from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest

import brorl
from brorl.errors import BrorlTypeError, ConfigError, InvalidArgumentError, NonFiniteError
from brorl.train import config as C
from brorl.train.interfaces import Prompt, Rollouts
from brorl.train.rewards import CombinedReward, RewardRouter, make_reward_fn, resolve_reward_function


def _prompts() -> list[Prompt]:
    return [
        Prompt(uid=1, domain="math", text="1+1=?\n", token_ids=(1, 2), meta={"answer": "2"}),
        Prompt(uid=2, domain="custom", text="say hi\n", token_ids=(3,), meta={"want": "hi"}),
    ]


def _rollouts(texts_by_prompt: list[list[str]]) -> Rollouts:
    pidx, toks, texts = [], [], []
    for p, texts_p in enumerate(texts_by_prompt):
        for t in texts_p:
            pidx.append(p)
            toks.append([5] * max(len(t), 1))
            texts.append(t)
    return Rollouts(batch=brorl.RolloutBatch.from_lists(np.asarray(pidx), toks), texts=texts)


def length_bonus(prompts, responses, metadata):
    """0.1 per character (a custom reward that does not look at correctness)."""
    return [0.1 * len(r) for r in responses]


def says_wanted(prompts, responses, metadata):
    return [1.0 if m.get("want") and m["want"] in r else 0.0 for r, m in zip(responses, metadata)]


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's reward module on the import path, as a config would name it."""
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        import math
        def exact_two(prompts, responses, metadata):
            return [2.0 if r.strip() == "\\\\boxed{2}" else 0.0 for r in responses]
        def short(prompts, responses, metadata):
            return [1.0] * (len(responses) - 1)
        def nan(prompts, responses, metadata):
            return [math.nan] * len(responses)
        def words(prompts, responses, metadata):
            return ["many"] * len(responses)
        NOT_A_FUNCTION = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_rewards", None)


def test_resolve_names_the_field_for_each_bad_path(user_module):
    assert resolve_reward_function("my_rewards:exact_two").__name__ == "exact_two"
    # a file path works too (verl's custom_reward_function.path)
    assert resolve_reward_function(f"{user_module / 'my_rewards.py'}:short").__name__ == "short"
    cases = {
        "my_rewards": "expected 'package.module:function'",
        "no_such_module_xyz:f": "cannot import module 'no_such_module_xyz'",
        "my_rewards:missing": "has no attribute 'missing'",
        "my_rewards:NOT_A_FUNCTION": "not a function",
        "/nowhere/r.py:f": "does not exist",
    }
    for spec, needle in cases.items():
        with pytest.raises(ConfigError, match="reward.functions\\[3\\]") as e:
            resolve_reward_function(spec, "reward.functions[3]")
        assert needle in str(e.value), (spec, str(e.value))


def test_config_imports_functions_before_any_model_loads(user_module):
    cfg = C.load_config(overrides=["reward.functions=['my_rewards:exact_two']", "reward.weights=[0.5]",
                                   "reward.domains=[math]", "reward.combine=replace"])
    assert cfg.reward.functions == ["my_rewards:exact_two"] and cfg.reward.weights == [0.5]
    with pytest.raises(ConfigError, match="reward.functions\\[0\\] = 'my_rewards:typo'"):
        C.load_config(overrides=["reward.functions=['my_rewards:typo']"])
    with pytest.raises(ConfigError, match="reward.weights"):
        C.load_config(overrides=["reward.functions=['my_rewards:exact_two']", "reward.weights=[1, 2]"])
    with pytest.raises(ConfigError, match="reward.combine = 'mul'"):
        C.load_config(overrides=["reward.combine=mul"])
    with pytest.raises(ConfigError, match="reward.domains\\[0\\] = 'poetry'"):
        C.load_config(overrides=["reward.domains=[poetry]"])


def test_add_replace_and_domain_scope():
    prompts = _prompts()
    ro = _rollouts([["\\boxed{2}", "\\boxed{3}"], ["hi there", "bye"]])
    builtin_math = RewardRouter()(_rollouts([["\\boxed{2}", "\\boxed{3}"]]), prompts[:1])
    np.testing.assert_array_equal(builtin_math, [1.0, 0.0])  # the real Rust verifier

    # 'add' everywhere: math = verifier + 0.1*len ; custom = 0.1*len only (no built-in verifier)
    added = CombinedReward([length_bonus])(ro, prompts)
    np.testing.assert_allclose(added, [1.0 + 0.9, 0.0 + 0.9, 0.8, 0.3], rtol=1e-6)
    # 'replace': the verifier is not run; weights scale each function
    replaced = CombinedReward([length_bonus, says_wanted], weights=[0.0, 2.0], combine="replace")(ro, prompts)
    np.testing.assert_allclose(replaced, [0.0, 0.0, 2.0, 0.0])
    # custom functions only on 'custom' prompts: math keeps its built-in reward unchanged
    scoped = CombinedReward([says_wanted], domains=["custom"])(ro, prompts)
    np.testing.assert_allclose(scoped, [1.0, 0.0, 1.0, 0.0])


def test_make_reward_fn_wiring(user_module):
    cfg = C.RewardConfig()
    assert isinstance(make_reward_fn(cfg), RewardRouter)  # nothing custom: the plain router
    cfg = C.RewardConfig(functions=["my_rewards:exact_two"], weights=[0.5], combine="add")
    fn = make_reward_fn(cfg, [length_bonus])
    assert isinstance(fn, CombinedReward) and fn.weights == [0.5, 1.0]
    ro = _rollouts([["\\boxed{2}"]])
    np.testing.assert_allclose(fn(ro, _prompts()[:1]), [1.0 + 0.5 * 2.0 + 0.9], rtol=1e-6)
    with pytest.raises(ConfigError, match="reward.combine = 'replace': no reward functions"):
        make_reward_fn(C.RewardConfig(combine="replace"))


def test_custom_domain_without_functions_is_refused():
    with pytest.raises(ConfigError, match="domain 'custom' has no built-in verifier"):
        RewardRouter()(_rollouts([["x"], ["y"]]), _prompts())


def test_bad_return_values_raise_typed_errors_naming_the_function(user_module):
    ro = _rollouts([["\\boxed{2}", "a"], ["hi", "b"]])
    with pytest.raises(InvalidArgumentError, match="'my_rewards:short' returned 3 values for 4 responses"):
        CombinedReward(["my_rewards:short"])(ro, _prompts())
    with pytest.raises(NonFiniteError, match="'my_rewards:nan' returned nan for response 0"):
        CombinedReward(["my_rewards:nan"])(ro, _prompts())
    with pytest.raises(BrorlTypeError, match="'my_rewards:words' returned list"):
        CombinedReward(["my_rewards:words"])(ro, _prompts())
    with pytest.raises(InvalidArgumentError, match="shape"):
        CombinedReward([lambda p, r, m: np.zeros((len(r), 2))])(ro, _prompts())


def test_metadata_carries_the_row_and_is_per_response():
    seen = {}

    def spy(prompts, responses, metadata):
        seen.update(prompts=prompts, responses=responses, metadata=metadata)
        return np.zeros(len(responses))

    ro = _rollouts([["\\boxed{2}", "x"], ["hi"]])
    CombinedReward([spy])(ro, _prompts())
    assert seen["prompts"] == ["1+1=?\n", "1+1=?\n", "say hi\n"]
    assert seen["responses"] == ["\\boxed{2}", "x", "hi"]
    assert [m["domain"] for m in seen["metadata"]] == ["math", "math", "custom"]
    assert seen["metadata"][0]["answer"] == "2" and seen["metadata"][2] == {"want": "hi", "domain": "custom", "uid": 2}


def test_jsonl_row_fields_reach_custom_functions(tmp_path):
    from brorl.train.data import _jsonl_items

    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "say hi", "domain": "custom", "want": "hi", "difficulty": 3}\n' * 5)
    train, _, bad, _ = _jsonl_items(C.DataSource(kind="jsonl", path=str(p)), C.DataConfig(eval_size=0))
    assert not bad and train[0]["domain"] == "custom"
    assert train[0]["meta"]["want"] == "hi" and train[0]["meta"]["difficulty"] == 3


def test_train_refuses_a_reward_fn_that_is_not_callable(tmp_path):
    with pytest.raises(BrorlTypeError, match="reward_fn\\[1\\]"):
        brorl.train({"run": {"output_dir": str(tmp_path)}}, reward_fn=[length_bonus, "nope"])


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_custom_rewards_run_in_the_ray_reward_pool(user_module, tmp_path):
    """The pool's workers import the config's 'module:function' themselves and receive the
    Python callable pickled; results equal scoring in this process, and the functions ran in
    other processes."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    from brorl.distributed.cluster import worker_env
    from brorl.distributed.config import ClusterConfig
    from brorl.distributed.runtime import RewardPool

    marks = tmp_path / "pids"
    marks.mkdir()

    def pid_mark(prompts, responses, metadata, _dir=str(marks)):
        open(os.path.join(_dir, str(os.getpid())), "w").close()
        return [0.25] * len(responses)

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    env = worker_env()
    env["PYTHONPATH"] = os.pathsep.join([str(user_module), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, object_store_memory=128 * 2**20, include_dashboard=False, runtime_env={"env_vars": env})
    try:
        ccfg = ClusterConfig(address="local", reward_prompts_per_task=1, cpus_per_reward_task=0.5, timeout_s=120)
        rcfg = C.RewardConfig(functions=["my_rewards:exact_two"], weights=[1.5])
        import functools

        pool = RewardPool(ccfg, functools.partial(make_reward_fn, rcfg, (pid_mark,), threads=1, workers=1))
        prompts = _prompts()[:1] * 3
        ro = _rollouts([["\\boxed{2}", "\\boxed{3}"], ["\\boxed{2}"], ["no"]])
        got = pool(ro, prompts)
        expect = make_reward_fn(rcfg, (lambda p, r, m: [0.25] * len(r),))(ro, prompts)
        np.testing.assert_allclose(got, expect)
        np.testing.assert_allclose(got, [1 + 3.0 + 0.25, 0.25, 1 + 3.0 + 0.25, 0.25])
        pids = {int(p.name) for p in marks.iterdir()}
        assert pids and os.getpid() not in pids
        # a broken function fails the step with its typed error, not a retry loop
        bad = RewardPool(ccfg, functools.partial(make_reward_fn, C.RewardConfig(functions=["my_rewards:short"])))
        with pytest.raises(InvalidArgumentError, match=r"'my_rewards:short' returned \d+ values for \d+ responses"):
            bad(ro, prompts)
    finally:
        ray.shutdown()


def test_router_scores_a_response_with_a_lone_surrogate_instead_of_stopping_the_step():
    # The Rust verifiers refuse text that is not valid Unicode with a typed error; one such
    # response from a custom generator must cost only its own reward, not the whole step.
    math_p = Prompt(uid=1, domain="math", text="1+1=?\n", token_ids=(1,), meta={"answer": "2"})
    code_p = Prompt(uid=2, domain="code", text="double\n", token_ids=(2,),
                    meta={"tests": "def check(c):\n    assert c(2) == 4\n", "entry_point": "double",
                          "kind": "humaneval"})
    with pytest.raises(InvalidArgumentError):
        brorl.verify_math_batch(["2"], ["\\boxed{2} \ud800"])
    router = RewardRouter(threads=1, workers=1)
    texts = ["\\boxed{2} \ud800", "\\boxed{3} \ud800",
             "```python\ndef double(x):\n    return 2 * x  # \ud800\n```", "```python\ndef double(x):\n    return x\n```"]
    got = router.score([math_p, math_p, code_p, code_p], texts)
    assert got.tolist() == [1.0, 0.0, 1.0, 0.0]
