"""Bad input to the Python API and the verify commands: each case that once passed silently
(or raised an untyped error naming nothing) now raises a brorl error naming the argument."""

from __future__ import annotations

import json

import numpy as np
import pytest

import brorl
from brorl import RolloutBatch
from brorl.cli import main as cli_main

# --- RolloutBatch columns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token_ids, pattern",
    [
        ([2**31], r"`token_ids\[0\]` = 2147483648 does not fit int32"),
        (np.array([5, -(2**31) - 1], np.int64), r"`token_ids\[1\]` = -2147483649 does not fit int32"),
        (np.array([2**63 + 5], np.uint64), r"`token_ids\[0\]` = 9223372036854775813 does not fit"),
    ],
)
def test_token_ids_out_of_int32_are_refused(token_ids, pattern):
    with pytest.raises(brorl.InvalidArgumentError, match=pattern):
        RolloutBatch([0], token_ids, [0, 1])


def test_uint64_past_int64_is_refused_not_wrapped():
    with pytest.raises(brorl.InvalidArgumentError, match=r"`prompt_index\[0\]` = 18446744073709551615"):
        RolloutBatch(np.array([2**64 - 1], np.uint64), [1], [0, 1])
    # in range: converted, same values
    b = RolloutBatch(np.array([7], np.uint64), np.array([3], np.uint64), np.array([0, 1], np.uint64))
    assert b.prompt_index.tolist() == [7] and b.token_ids.tolist() == [3]


@pytest.mark.parametrize("column", ["prompt_index", "token_ids", "offsets"])
def test_float_ids_are_a_type_error(column):
    args = {"prompt_index": [0], "token_ids": [1], "offsets": [0, 1]}
    args[column] = np.asarray(args[column], np.float64) + (0.7 if column == "token_ids" else 0.0)
    with pytest.raises(brorl.BrorlTypeError, match=rf"`{column}` must hold integers, got a float64"):
        RolloutBatch(**args)


def test_bool_and_real_columns_are_checked():
    with pytest.raises(brorl.InvalidArgumentError, match=r"`truncated\[0\]` = 2"):
        RolloutBatch([0], [1], [0, 1], truncated=[2])
    with pytest.raises(brorl.BrorlTypeError, match="`rewards` must hold real numbers"):
        RolloutBatch([0], [1], [0, 1], rewards=np.array(["1"]))
    # empty columns are fine whatever dtype NumPy guesses for []
    assert RolloutBatch([], [], [0]).n_rollouts == 0


@pytest.mark.parametrize(
    "lp, error, pattern",
    [
        ([-0.5, np.nan], brorl.NonFiniteError, r"`logprobs` must be finite, found NaN at index 1"),
        ([np.inf, -1.0], brorl.NonFiniteError, r"`logprobs` must be finite, found inf at index 0"),
        ([-0.5, 0.25], brorl.InvalidArgumentError, r"`logprobs`.*<= 0, found 0.25 at index 1"),
    ],
)
def test_logprobs_must_be_log_probabilities(lp, error, pattern):
    with pytest.raises(error, match=pattern):
        RolloutBatch([0], [1, 2], [0, 2], logprobs=lp)
    with pytest.raises(error, match=pattern):
        RolloutBatch.from_lists([0], [[1, 2]], [lp])


def test_logprobs_may_be_zero_or_minus_infinity():
    b = RolloutBatch([0], [1, 2], [0, 2], logprobs=[0.0, -np.inf])
    assert b.logprobs.tolist() == [0.0, -np.inf]


def test_concat_refuses_a_column_one_input_lacks():
    with_lp = RolloutBatch([0], [1], [0, 1], logprobs=[-0.1], rewards=[1.0])
    without = RolloutBatch([1], [2], [0, 1], rewards=[0.0])
    with pytest.raises(brorl.InvalidArgumentError, match=r"`batches\[1\]` has no logprobs but `batches\[0\]` has"):
        RolloutBatch.concat([with_lp, without])
    with pytest.raises(brorl.InvalidArgumentError, match=r"`batches\[0\]` has no logprobs but `batches\[1\]` has"):
        RolloutBatch.concat([without, with_lp])
    no_rewards = RolloutBatch([2], [3], [0, 1], logprobs=[-0.2])
    with pytest.raises(brorl.InvalidArgumentError, match=r"`batches\[1\]` has no rewards"):
        RolloutBatch.concat([with_lp, no_rewards])
    both = RolloutBatch.concat([with_lp, RolloutBatch([1], [2], [0, 1], logprobs=[-0.3], rewards=[0.0])])
    assert both.logprobs.tolist() == pytest.approx([-0.1, -0.3]) and both.rewards.tolist() == [1.0, 0.0]


def test_finish_reasons_vocabulary():
    assert brorl.FINISH_REASONS == ["stop", "length", "abort"]
    b = RolloutBatch.from_lists([0, 0, 0, 0], [[1], [2], [3], [4]], finish_reasons=["stop", "length", "abort", None])
    assert b.truncated.tolist() == [False, True, False, False]
    with pytest.raises(brorl.InvalidArgumentError, match=r"`finish_reasons\[1\]` is \"Length\""):
        RolloutBatch.from_lists([0, 0], [[1], [2]], finish_reasons=["stop", "Length"])


# --- math verifier arguments ---------------------------------------------------------------------


@pytest.mark.parametrize("fn", [brorl.verify_math, brorl.verify_math_status])
def test_verify_math_names_the_argument_of_the_wrong_type(fn):
    with pytest.raises(brorl.BrorlTypeError, match="`gold` must be str, got int"):
        fn(5, "5")
    with pytest.raises(brorl.BrorlTypeError, match="`response` must be str, got NoneType"):
        fn("5", None)
    assert isinstance(TypeError("x"), TypeError) and issubclass(brorl.BrorlTypeError, TypeError)


def test_lone_surrogates_are_invalid_arguments_not_encode_errors():
    with pytest.raises(brorl.InvalidArgumentError, match=r"`response` holds a lone surrogate at index 3"):
        brorl.verify_math("5", "abc\ud800")
    with pytest.raises(brorl.InvalidArgumentError, match=r"`gold` holds a lone surrogate at index 0"):
        brorl.verify_math_status("\udfff", "5")
    with pytest.raises(brorl.InvalidArgumentError, match=r"`responses\[1\]` holds a lone surrogate"):
        brorl.verify_math_batch(["1", "2"], ["1", "\ud800"])
    with pytest.raises(brorl.InvalidArgumentError, match=r"`response` holds a lone surrogate"):
        brorl.extract_answer("\ud800")
    with pytest.raises(brorl.InvalidArgumentError, match=r"`response` holds a lone surrogate"):
        brorl.extract_code("```python\n\ud800\n```")
    with pytest.raises(brorl.InvalidArgumentError, match=r"`program` holds a lone surrogate at index 7"):
        brorl.verify_code("print('\ud800')", [{"input": "", "output": ""}], kind="stdio")


# --- code verifier arguments ---------------------------------------------------------------------

CHECK = "def check(candidate):\n    assert candidate(2) == 4\n"


def test_no_code_scores_zero_with_a_reason():
    assert brorl.extract_code("") is None
    r = brorl.verify_code(brorl.extract_code(""), CHECK, kind="humaneval", entry_point="double")
    assert (r.reward, r.passed, r.total, r.statuses) == (0.0, 0, 1, ["compile_error"])
    assert "no program" in r.error
    # the same inside a batch, without disturbing the rows that do run
    rs = brorl.verify_code_batch([
        {"program": None, "tests": [{"input": "", "output": "x"}] * 3, "kind": "stdio"},
        {"program": "print('x')", "tests": [{"input": "", "output": "x"}], "kind": "stdio"},
    ])
    assert [(r.reward, r.total) for r in rs] == [(0.0, 3), (1.0, 1)]
    assert rs[0].statuses == ["compile_error"] * 3 and rs[1].error is None
    # None is still checked against its tests: bad tests are an error, not a zero
    with pytest.raises(brorl.InvalidArgumentError, match="entry_point is required"):
        brorl.verify_code(None, CHECK, kind="humaneval")


@pytest.mark.parametrize(
    "program, tests, kind, entry, says",
    [
        ("def twice(x):\n    return 2 * x\n", CHECK, "humaneval", "double",
         "entry_point 'double': the program defines no 'double' at top level (it defines: twice)"),
        ("def twice(x):\n    return 2 * x\n", [{"args": [2], "expected": 4}], "call", "double",
         "the program defines no 'double'"),
        ("class Solution:\n    def twice(self, x):\n        return 2 * x\n", [{"args": [2], "expected": 4}],
         "call", "Solution.double", "class 'Solution' has no 'double' (it has: twice)"),
    ],
)
def test_wrong_entry_point_says_so(program, tests, kind, entry, says):
    r = brorl.verify_code(program, tests, kind=kind, entry_point=entry)
    assert r.reward == 0.0 and r.statuses == ["runtime_error"]
    assert r.error is not None and says in r.error


def test_entry_point_diagnosis_stays_quiet_when_it_cannot_tell():
    from brorl._entry_point import entry_point_problem

    assert entry_point_problem("def f(): pass", "f") is None
    assert entry_point_problem("from math import *", "sqrt") is None
    assert entry_point_problem("globals()['f'] = len", "f") is None
    assert entry_point_problem("if True:\n    def f(): pass", "f") is None
    assert entry_point_problem("import numpy as np", "np") is None
    assert entry_point_problem("f = lambda x: x", "f") is None
    assert entry_point_problem("def (", "f") is None  # does not parse: a compile error says why
    # a program that defines it but fails for another reason gets no misleading message
    r = brorl.verify_code("def double(x):\n    return 1 / 0\n", CHECK, kind="humaneval", entry_point="double")
    assert r.statuses == ["runtime_error"] and (r.error is None or "entry_point" not in r.error)


def test_verify_code_argument_types_are_named():
    with pytest.raises(brorl.BrorlTypeError, match="program must be a str"):
        brorl.verify_code(5, CHECK, kind="humaneval", entry_point="f")
    with pytest.raises(brorl.BrorlTypeError, match="`kind` must be str, got int"):
        brorl.verify_code("x", CHECK, kind=1, entry_point="f")
    with pytest.raises(brorl.BrorlTypeError, match="`entry_point` must be str, got int"):
        brorl.verify_code("x", CHECK, kind="humaneval", entry_point=3)
    with pytest.raises(brorl.BrorlTypeError, match=r"items\[0\]\[\"timeout_s\"\] must be a number"):
        brorl.verify_code_batch([{"program": "x", "tests": CHECK, "kind": "humaneval", "entry_point": "f",
                                  "timeout_s": "3"}])


# --- brorl verify ... --jsonl ----------------------------------------------------------------------


def test_verify_code_jsonl_missing_kind_is_one_line_with_the_file_line(tmp_path, capsys):
    f = tmp_path / "rows.jsonl"
    good = {"program": "print(1)", "tests": [{"input": "", "output": "1"}], "kind": "stdio"}
    f.write_text(json.dumps(good) + "\n\n" + json.dumps({"program": "print(1)", "tests": []}) + "\n")
    assert cli_main(["verify", "code", "--jsonl", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{f}, line 3: missing field 'kind'" in err


def test_verify_code_jsonl_verifier_errors_point_at_the_line(tmp_path, capsys):
    f = tmp_path / "rows.jsonl"
    rows = [
        {"program": "print(1)", "tests": [{"input": "", "output": "1"}], "kind": "stdio"},
        {"program": "print(1)", "tests": "not a list", "kind": "stdio"},
    ]
    f.write_text("\n" + "\n".join(json.dumps(r) for r in rows) + "\n")
    assert cli_main(["verify", "code", "--jsonl", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}, line 3: tests must be a list of dicts" in err and "Traceback" not in err


def test_verify_code_jsonl_rows_are_numbered_by_file_line(tmp_path, capsys):
    f = tmp_path / "rows.jsonl"
    rows = [
        {"program": "print(1)", "tests": [{"input": "", "output": "1"}], "kind": "stdio"},
        {"response": "no python here:\n```js\nx\n```", "tests": [{"input": "", "output": "1"}],
         "kind": "stdio"},
    ]
    f.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    assert cli_main(["verify", "code", "--jsonl", str(f)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(o["line"], o["reward"]) for o in out] == [(1, 1.0), (3, 0.0)]
    assert "no program" in out[1]["error"]


def test_verify_math_jsonl_surrogate_points_at_the_line(tmp_path, capsys):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"gold": "1", "response": "1"}\n\n{"gold": "2", "response": "\\ud800"}\n')
    assert cli_main(["verify", "math", "--jsonl", str(f)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "lone surrogate" in err and "Traceback" not in err
