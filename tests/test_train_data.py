"""Training data loading, sampling order and reward routing (no engines)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import brorl
from brorl.errors import ConfigError, DataFormatError
from brorl.train.config import load_config
from brorl.train.data import PromptSampler, SourceData, load_sources, read_jsonl
from brorl.train.interfaces import Prompt, Rollouts
from brorl.train.rewards import RewardRouter, score_reasoning_gym


class CharTok:
    """A stand-in tokenizer (one id per character) for data tests that need no model."""

    chat_template = None

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) % 256 for c in text]}


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_bad_rows_are_reported_with_file_line_field(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "1+1?", "answer": "2", "domain": "math"},
        "{not json",
        {"prompt": "", "answer": "3"},
        {"prompt": "x", "domain": "code"},
        {"prompt": "y", "domain": "chemistry", "answer": "1"},
        {"messages": [{"role": "user", "content": "2+2?"}], "answer": 4},
    ])
    rows, bad = read_jsonl(p, "skip")
    assert [ln for ln, _ in rows] == [1, 6]
    assert len(bad) == 4
    assert f"{p}, line 2" in bad[0] and "not valid JSON" in bad[0]
    assert "line 3: field 'prompt'" in bad[1]
    assert "line 4: field 'tests'" in bad[2]
    assert "line 5: field 'domain'" in bad[3] and "chemistry" in bad[3]
    with pytest.raises(DataFormatError) as e:
        read_jsonl(p, "raise")
    assert e.value.line == 2 and str(p) in str(e.value)


def test_jsonl_source_loads_and_splits(tmp_path):
    rows = [{"prompt": f"What is {i}+{i}?", "answer": str(2 * i), "domain": "math"} for i in range(20)]
    rows.insert(3, "garbage")
    p = write_jsonl(tmp_path / "m.jsonl", rows)
    cfg = load_config(overrides=[f"data.sources=[{{kind: jsonl, path: {p}}}]", "data.eval_size=4"])
    logs = []
    (src,) = load_sources(cfg.data, CharTok(), False, logs.append)
    assert len(src.train) == 16 and len(src.eval) == 4
    assert src.train[0].meta["answer"] == "0" and src.train[0].domain == "math"
    assert src.train[0].text == "What is 0+0?\n"
    assert len(src.bad_rows) == 1 and "skipped 1 bad rows" in logs[0]
    cfg = load_config(overrides=[f"data.sources=[{{kind: jsonl, path: {p}}}]", "data.on_bad_row=raise"])
    with pytest.raises(DataFormatError, match="line 4"):
        load_sources(cfg.data, CharTok(), False, logs.append)


def test_reasoning_gym_source_has_disjoint_held_out():
    cfg = load_config(overrides=["data.eval_size=50"])
    (src,) = load_sources(cfg.data, CharTok(), False, lambda s: None)
    size = cfg.data.sources[0].size
    assert len(src.train) == size and len(src.eval) == 50
    assert not {p.text for p in src.eval} & {p.text for p in src.train}
    assert len({p.uid for p in src.train + src.eval}) == size + 50


def test_unknown_reasoning_gym_task_is_config_error():
    cfg = load_config(overrides=["data.sources=[{kind: reasoning_gym, task: no_such_task}]"])
    with pytest.raises(ConfigError, match="no_such_task"):
        load_sources(cfg.data, CharTok(), False, lambda s: None)


def _prompts(n, weight=1.0, base=0):
    return [Prompt(uid=base + i, domain="math", text=str(i), token_ids=(i,)) for i in range(n)]


def test_sampler_order_is_reproducible_and_resumable():
    srcs = [SourceData("a", 3.0, _prompts(10), []), SourceData("b", 1.0, _prompts(5, base=100), [])]
    s1 = PromptSampler(srcs, seed=1)
    first = [p.uid for p in s1.take(7)]
    state = s1.state_dict()
    rest = [[p.uid for p in s1.take(6)] for _ in range(5)]
    s2 = PromptSampler(srcs, seed=1)
    s2.load_state_dict(json.loads(json.dumps(state)))
    assert [[p.uid for p in s2.take(6)] for _ in range(5)] == rest
    # weights: source a (weight 3) gives ~3/4 of the draws; every prompt of an epoch appears once
    s3 = PromptSampler(srcs, seed=2)
    uids = [p.uid for _ in range(200) for p in s3.take(4)]
    share_a = np.mean([u < 100 for u in uids])
    assert 0.68 < share_a < 0.82
    assert sorted(set(first)) == sorted(first) or len(first) > 10


def _rollouts(texts_per_prompt):
    pidx, toks, texts = [], [], []
    for i, group in enumerate(texts_per_prompt):
        for t in group:
            pidx.append(i)
            toks.append([1, 2])
            texts.append(t)
    b = brorl.RolloutBatch.from_lists(np.asarray(pidx), toks)
    return Rollouts(batch=b, texts=texts)


def test_reasoning_gym_rewards_use_the_task_scorer():
    import reasoning_gym as rg

    ds = rg.create_dataset("chain_sum", size=2, seed=0)
    entries = list(ds)
    prompts = [Prompt(uid=i, domain="reasoning_gym", text=e["question"], token_ids=(1,),
                      meta={"task": "chain_sum", "entry": e, "dataset": ds}) for i, e in enumerate(entries)]
    a0, a1 = entries[0]["answer"], entries[1]["answer"]
    ro = _rollouts([[f"<answer>{a0}</answer>", f"{a0}", "<answer>nonsense</answer>"],
                    [f"x <answer>1</answer> then <answer>{a1}</answer>", f"<answer> {a1} </answer>"]])
    r = RewardRouter()(ro, prompts)
    assert r.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0]
    # without the dataset object, the scorer is looked up by task name
    bare = Prompt(uid=9, domain="reasoning_gym", text="", token_ids=(1,), meta={"task": "chain_sum", "entry": entries[0]})
    assert score_reasoning_gym(bare, f"<answer>{a0}</answer>") == 1.0


def test_reasoning_gym_rewards_give_no_partial_credit_unless_asked():
    # Reasoning Gym's default scorer pays len(right)/len(answer) for any answer containing the
    # right one: hedges and padded answers earn reward without being right.
    import reasoning_gym as rg

    from brorl.train import config as C
    from brorl.train.rewards import make_reward_fn

    ds = rg.create_dataset("chain_sum", size=1, seed=0)
    e = ds[0]
    p = Prompt(uid=0, domain="reasoning_gym", text=e["question"], token_ids=(1,),
               meta={"task": "chain_sum", "entry": e, "dataset": ds})
    a = e["answer"]
    texts = [f"<answer>{a}</answer>", f"<answer>{a} or 0</answer>", f"<answer>{a}0</answer>",
             f"<answer>{a}, {a}1, {a}2</answer>"]
    ro = _rollouts([texts])
    raw = [score_reasoning_gym(p, t) for t in texts]
    assert raw[0] == 1.0 and all(0.0 < x < 1.0 for x in raw[1:])  # the scorer's own partial credit
    assert make_reward_fn(C.load_config().reward)(ro, [p]).tolist() == [1.0, 0.0, 0.0, 0.0]
    partial = make_reward_fn(C.load_config(overrides=["reward.reasoning_gym_partial_credit=true"]).reward)
    assert partial(ro, [p]).tolist() == pytest.approx(raw)


def test_math_rewards_route_to_the_math_verifier():
    if not hasattr(brorl, "verify_math_batch"):
        pytest.skip("brorl.verify_math_batch is not built into this extension")
    prompts = [Prompt(uid=0, domain="math", text="", token_ids=(1,), meta={"answer": "1/2"}),
               Prompt(uid=1, domain="math", text="", token_ids=(1,), meta={"answer": "3"})]
    ro = _rollouts([["so \\boxed{\\frac{1}{2}}", "\\boxed{0.3}"], ["\\boxed{3}"]])
    r = RewardRouter()(ro, prompts)
    assert r.tolist() == [1.0, 0.0, 1.0]


def test_code_rewards_route_to_the_code_sandbox():
    if not hasattr(brorl, "verify_code_batch"):
        pytest.skip("brorl.verify_code_batch is not built into this extension")
    meta = {"tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n",
            "kind": "humaneval", "entry_point": "add"}
    prompts = [Prompt(uid=0, domain="code", text="", token_ids=(1,), meta=meta)]
    ro = _rollouts([["```python\ndef add(a, b):\n    return a + b\n```", "```python\ndef add(a, b):\n    return a - b\n```"]])
    r = RewardRouter()(ro, prompts)
    assert r[0] == 1.0 and r[1] < 1.0


def test_mixed_domains_in_one_batch():
    import reasoning_gym as rg

    ds = rg.create_dataset("chain_sum", size=1, seed=0)
    e = next(iter(ds))
    prompts = [Prompt(uid=0, domain="reasoning_gym", text="", token_ids=(1,), meta={"task": "chain_sum", "entry": e, "dataset": ds}),
               Prompt(uid=1, domain="unknown", text="", token_ids=(1,))]
    with pytest.raises(ConfigError, match="unknown"):
        RewardRouter()(_rollouts([[f"<answer>{e['answer']}</answer>"], ["x"]]), prompts)


class RoleTok(CharTok):
    """A stand-in chat tokenizer whose template shows each message's role."""

    chat_template = "roles"

    def apply_chat_template(self, msgs, tokenize=False, add_generation_prompt=True):
        return "".join(f"[{m['role']}]{m['content']}" for m in msgs) + ("[assistant]" if add_generation_prompt else "")


def test_few_shot_examples_come_before_the_prompt(tmp_path):
    from brorl.train.data import render_prompt

    shots = [["1 + 2 =", "1 + 2 = 3. <answer>3</answer>"]]
    chat = render_prompt(RoleTok(), "4 + 5 =", True, "Be brief.", few_shot=shots)
    assert chat == "[system]Be brief.[user]1 + 2 =[assistant]1 + 2 = 3. <answer>3</answer>[user]4 + 5 =[assistant]"
    # a row's own system message stays first, ahead of the examples
    msgs = [{"role": "system", "content": "Own."}, {"role": "user", "content": "4 + 5 ="}]
    assert render_prompt(RoleTok(), "", True, "Be brief.", msgs, shots).startswith("[system]Own.[user]1 + 2 =")
    assert render_prompt(None, "4 + 5 =", False, few_shot=shots) == "1 + 2 =\n1 + 2 = 3. <answer>3</answer>\n\n4 + 5 =\n"
    cfg = load_config(overrides=["data.few_shot=[[\"1 + 2 =\", \"<answer>3</answer>\"]]", "data.eval_size=2"])
    (src,) = load_sources(cfg.data, CharTok(), False, lambda s: None)
    assert src.train[0].text.startswith("1 + 2 =\n<answer>3</answer>\n\n")


@pytest.mark.parametrize("bad", ["[[\"only one\"]]", "[\"text\"]", "[[1, 2]]"])
def test_malformed_few_shot_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="data.few_shot"):
        load_config(overrides=[f"data.few_shot={bad}"])


def test_code_rewards_give_the_test_process_the_prompt():
    """A HumanEval test may call a helper its prompt defines (HumanEval/32's ``poly``): the
    candidate's process is not the test's, so the router passes the prompt along."""
    if not hasattr(brorl, "verify_code_batch"):
        pytest.skip("brorl.verify_code_batch is not built into this extension")
    stub = "def helper(x):\n    return 2 * x\n\n\ndef twice(x):\n    \"\"\"helper(x)\"\"\"\n"
    meta = {"tests": "def check(candidate):\n    assert candidate(3) == helper(3)\n", "kind": "humaneval",
            "entry_point": "twice", "prompt": stub}
    prompts = [Prompt(uid=0, domain="code", text=stub, token_ids=(1,), meta=meta)]
    ro = _rollouts([["```python\ndef twice(x):\n    return helper(x)\n```", "    return x + 1\n"]])
    r = RewardRouter()(ro, prompts)
    assert r.tolist() == [1.0, 0.0]
