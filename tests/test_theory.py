"""Mass balance theory (brorl.theory), the toy simulation (`brorl simulate`) and `brorl plot`."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brorl
from brorl.theory import (
    ShrinkageTracker,
    expected_unsampled_moments,
    mass_balance_terms,
    predicted_delta_q_pos,
    softmax,
    unsampled_second_moment,
)


def _loop_unsampled_m2(p, n):
    """Obviously-correct reference: a Python loop over rows and tokens."""
    rows = np.atleast_2d(p)
    return float(np.mean([sum(q * q * (1 - q) ** n for q in row) for row in rows]))


# ---------------------------------------------------------------- unsampled second moment


def test_unsampled_second_moment_matches_loop_numpy_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(40, 0.3), size=(2, 3))  # [2, 3, 40]: mean over both leading dims
    for n in [0, 1, 4, 16, 512]:
        want = _loop_unsampled_m2(p.reshape(-1, 40), n)
        assert unsampled_second_moment(p, n) == pytest.approx(want, rel=1e-12)
        assert unsampled_second_moment(torch.tensor(p), n) == pytest.approx(want, rel=1e-10)
        assert unsampled_second_moment(torch.tensor(p, dtype=torch.float32), n) == pytest.approx(want, rel=1e-4)
    # one distribution: no leading dims
    assert unsampled_second_moment(p[0, 0], 3) == pytest.approx(_loop_unsampled_m2(p[0, 0], 3))
    # n = 0 is the plain second moment; a point mass is never unsampled
    assert unsampled_second_moment(p, 0) == pytest.approx(float((p**2).sum(-1).mean()))
    assert unsampled_second_moment(np.eye(5)[2], 1) == 0.0


def test_unsampled_second_moment_decreases_in_n():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(1000, 0.05), size=4)
    ns = [0, 1, 2, 4, 8, 16, 64, 512, 4096, 51200]
    vals = [unsampled_second_moment(p, n) for n in ns]
    assert all(b < a for a, b in zip(vals, vals[1:])), vals
    assert vals[-1] < 1e-6 * vals[0]


@pytest.mark.parametrize("n", [-1, 2.5, True, "4"])
def test_unsampled_second_moment_rejects_bad_n(n):
    with pytest.raises(brorl.BrorlError, match="n must"):
        unsampled_second_moment(np.full(4, 0.25), n)


@pytest.mark.parametrize("probs", [np.array([0.5, np.nan]), np.array([1.5, -0.5]), np.zeros((3, 0))])
def test_unsampled_second_moment_rejects_bad_probs(probs):
    with pytest.raises(brorl.InvalidArgumentError, match="probs"):
        unsampled_second_moment(probs, 4)


# ---------------------------------------------------------------- shrinkage tracker


def test_shrinkage_tracker_counts():
    t = ShrinkageTracker()
    first = t.update(["a", "b", "c", "d"], [0.5, 0.25, 0.0, 1.0])
    assert first == {"shrink/fell_share": 0.0, "shrink/lost_share": 0.0, "shrink/revisited": 0.0, "shrink/prev_solved": 0.0}
    # a fell (0.5 -> 0.25), b lost (0.25 -> 0), c stayed unsolved, d equal; e is new
    got = t.update(["a", "b", "c", "d", "e"], [0.25, 0.0, 0.0, 1.0, 0.0])
    assert got["shrink/revisited"] == 4
    assert got["shrink/fell_share"] == pytest.approx(2 / 4)
    assert got["shrink/prev_solved"] == 3  # a, b, d had pass rate > 0
    assert got["shrink/lost_share"] == pytest.approx(1 / 3)
    # compared with the *latest* visit: b went 0.25 -> 0 -> 0.5 (rose), a 0.25 -> 0.125 (fell)
    got = t.update(["b", "a"], [0.5, 0.125])
    assert got["shrink/fell_share"] == pytest.approx(0.5)
    assert got["shrink/lost_share"] == 0.0 and got["shrink/prev_solved"] == 1


def test_shrinkage_tracker_duplicates_are_averaged():
    t = ShrinkageTracker()
    t.update([7], [0.5])
    got = t.update([7, 7], [0.25, 0.5])  # mean 0.375 < 0.5
    assert got["shrink/revisited"] == 1 and got["shrink/fell_share"] == 1.0


def test_shrinkage_tracker_state_survives_json_round_trip():
    a = ShrinkageTracker()
    a.update([1, "x", (2, "y")], [0.5, 0.75, 0.25])
    b = ShrinkageTracker()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert len(b) == 3
    ids, rates = [1, "x", (2, "y")], [0.0, 1.0, 0.0]
    assert b.update(ids, rates) == a.update(ids, rates)


def test_shrinkage_tracker_rejects_bad_input():
    t = ShrinkageTracker()
    with pytest.raises(brorl.InvalidArgumentError, match="same length"):
        t.update([1, 2], [0.5])
    with pytest.raises(brorl.InvalidArgumentError, match="pass_rates"):
        t.update([1], [1.5])
    with pytest.raises(brorl.InvalidArgumentError, match="pass_rates"):
        t.update([1], [math.nan])
    with pytest.raises(brorl.BrorlTypeError, match="hashable"):
        t.update([[1]], [0.5])
    with pytest.raises(brorl.InvalidArgumentError, match="state"):
        t.load_state_dict({"last": {}})


# ---------------------------------------------------------------- mass balance equation


def _setup(seed, v=64, n_correct=20, n=8):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=v)
    correct = np.zeros(v, dtype=bool)
    correct[rng.choice(v, n_correct, replace=False)] = True
    ids = rng.choice(v, n, p=softmax(logits))
    return logits, correct, ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_order_prediction_matches_one_gradient_step(seed):
    """dQ_pos predicted by the equation vs Q_pos measured after one real gradient step of the
    linear surrogate (1/N) sum_{i in S} R_i p_i(z) on the logits, taken with torch autograd."""
    torch = pytest.importorskip("torch")
    n = 8
    logits, correct, ids = _setup(seed, n=n)
    r_c, r_w = 1.0, -0.5
    mb = mass_balance_terms(logits, correct, ids, r_c, r_w)

    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor(correct)
    sampled = torch.zeros(len(logits), dtype=torch.bool)
    sampled[torch.tensor(ids)] = True
    reward = torch.where(mask, r_c, r_w).to(torch.float64) * sampled
    surrogate = (reward * torch.softmax(z, -1)).sum() / n
    (grad,) = torch.autograd.grad(surrogate, z)

    def q_pos(zz):
        return float((torch.softmax(zz, -1) * mask).sum())

    # The bracket is exactly the directional derivative dQ_pos/d(eta) at eta = 0, times N.
    z2 = z.detach().clone().requires_grad_(True)
    (gq,) = torch.autograd.grad((torch.softmax(z2, -1) * mask).sum(), z2)
    assert float(mb.total) == pytest.approx(n * float(gq @ grad), rel=1e-10)

    errors = []
    for eta in [1e-1, 1e-2, 1e-3, 1e-4]:
        measured = q_pos(z.detach() + eta * grad) - q_pos(z.detach())
        predicted = float(predicted_delta_q_pos(mb, eta, n))
        assert abs(predicted) > 0
        errors.append(abs(measured - predicted) / abs(measured))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    # first order: the relative error itself shrinks about linearly with eta
    assert errors[-1] < 1e-3 and errors[-1] < errors[-2] / 5, errors


@st.composite
def mass_balance_cases(draw):
    v = draw(st.integers(2, 40))
    logits = np.array(draw(st.lists(st.floats(-8, 8), min_size=v, max_size=v)))
    correct = np.array(draw(st.lists(st.booleans(), min_size=v, max_size=v)))
    ids = np.array(draw(st.lists(st.integers(0, v - 1), min_size=1, max_size=3 * v)))
    r_c = draw(st.floats(0, 5))
    r_w = draw(st.floats(-5, 0))
    return logits, correct, ids, r_c, r_w


@settings(max_examples=300, deadline=None)
@given(case=mass_balance_cases())
def test_sampled_terms_are_never_negative(case):
    logits, correct, ids, r_c, r_w = case
    mb = mass_balance_terms(logits, correct, ids, r_c, r_w)
    assert r_w - 1e-12 <= mb.s_r <= r_c + 1e-12
    assert mb.sampled_correct >= -1e-15
    assert mb.sampled_incorrect >= -1e-15
    # the pieces add up: U moments and sampled moments partition sum p^2
    p = softmax(logits)
    assert mb.a2 + mb.b2 + mb.u_pos2 + mb.u_neg2 == pytest.approx(float((p * p).sum()), rel=1e-9)


def test_unsampled_term_can_be_negative():
    # the toy's situation: a big unsampled correct mass while the step's mood S_R is positive
    logits = np.array([3.0, 3.0, 0.0, 0.0, 0.0, 5.0])
    correct = np.array([True, True, False, False, False, False])
    mb = mass_balance_terms(logits, correct, np.array([0, 5]), 1.0, -0.01)
    assert mb.s_r > 0 and mb.unsampled < 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"r_c": -0.1}, "r_c"),
        ({"r_w": 0.2}, "r_w"),
        ({"ids": np.array([0, 9])}, "sampled_ids"),
        ({"ids": np.array([0.5])}, "sampled_ids"),
        ({"correct": np.array([1, 0, 0])}, "correct"),
        ({"logits": np.array([0.0, np.inf, 0.0])}, "logits"),
    ],
)
def test_mass_balance_rejects_bad_input(kwargs, match):
    args = {"logits": np.zeros(3), "correct": np.array([True, False, False]), "ids": np.array([0]), "r_c": 1.0, "r_w": -1.0}
    args.update(kwargs)
    with pytest.raises(brorl.BrorlError, match=match):
        mass_balance_terms(args["logits"], args["correct"], args["ids"], args["r_c"], args["r_w"])


@pytest.mark.parametrize("n", [1, 4, 16])
def test_lemma2_expectation_matches_monte_carlo(n):
    rng = np.random.default_rng(n)
    v = 12
    p = rng.dirichlet(np.full(v, 0.5))
    correct = np.arange(v) < 5
    e_pos, e_neg = expected_unsampled_moments(p, correct, n)
    assert float(e_pos) + float(e_neg) == pytest.approx(unsampled_second_moment(p, n))
    trials = 40_000
    unsampled = rng.multinomial(n, p, size=trials) == 0  # [trials, V]
    for mask, expected in [(correct, e_pos), (~correct, e_neg)]:
        u = (p * p * unsampled * mask).sum(-1)
        se = u.std(ddof=1) / np.sqrt(trials)
        assert abs(u.mean() - float(expected)) < 4 * se + 1e-12, (u.mean(), float(expected), se)


# ---------------------------------------------------------------- brorl simulate


def test_simulate_small_vocab_shows_the_papers_claim():
    """Tiny version of Fig. 3: with N far above the vocabulary, Q_pos grows every step and every
    correct token gains; with N=2 Q_pos barely moves and many correct tokens lose probability."""
    pytest.importorskip("torch")
    from brorl.simulate import ToyConfig, simulate, summarize

    cfg = ToyConfig(vocab=1000, n_correct=100, ns=(2, 2048), steps=200, seeds=(0, 1))
    results = simulate(cfg)
    assert results[2]["q_pos"].shape == (201, 2)
    s = summarize(results)
    small, large = s["2"], s["2048"]
    assert small["q_pos_start"] == pytest.approx(large["q_pos_start"]) and 0.6 < large["q_pos_start"] < 0.7
    # large N: faster, steadier growth and no shrinkage
    assert large["q_pos_final"] > large["q_pos_start"] + 0.05
    assert large["q_pos_final"] > small["q_pos_final"] + 0.05
    assert large["q_pos_fell_steps_pct"] == 0.0
    assert large["improved_pct_final"] == 100.0 and large["min_change_worst"] >= 0.0
    # small N: a sizeable share of correct tokens end below their start
    assert small["improved_pct_final"] < 70.0 and small["min_change_final"] < 0.0
    # the unsampled coupling matters for small N and fades for large N
    assert large["unsampled_share_mean"] < small["unsampled_share_mean"] / 5


def test_simulate_cli_writes_csv_png_and_summary(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    import csv

    from brorl.cli import main

    out = tmp_path / "sim"
    assert main(["simulate", "--ns", "3", "64", "--steps", "5", "--seeds", "0", "1",
                 "--vocab", "300", "--n-correct", "30", "--out", str(out), "--quiet"]) == 0
    with open(out / "toy.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 6  # N x seeds x (steps + 1)
    first = rows[0]
    assert first["n"] == "3" and first["step"] == "0" and first["sampled_correct"] == "nan"
    assert float(first["q_pos"]) == pytest.approx(30 * np.e**3 / (30 * np.e**3 + np.e**5 + 269))
    assert (out / "toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["per_n"]) == {"3", "64"} and summary["config"]["vocab"] == 300


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"ns": (0, 4)}, "ns"),
        ({"ns": ()}, "ns"),
        ({"ns": (4, 4)}, "ns"),
        ({"steps": -1}, "steps"),
        ({"seeds": (-1,)}, "seeds"),
        ({"vocab": 2}, "vocab"),
        ({"n_correct": 0}, "n_correct"),
        ({"lr": 0.0}, "lr"),
        ({"temperature": float("nan")}, "temperature"),
        ({"reward_correct": -1.0}, "reward_correct"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_toy_config_rejects_nonsense(kwargs, field):
    from brorl.simulate import ToyConfig

    with pytest.raises(brorl.ConfigError, match=field):
        ToyConfig(**kwargs)


def test_simulate_cli_reports_bad_config(capsys):
    from brorl.cli import main

    assert main(["simulate", "--steps", "-3"]) == 2
    assert "steps must be an integer >= 1, got -3" in capsys.readouterr().err


# ---------------------------------------------------------------- brorl plot


def _write_run(path, steps, keys, config=None, truncated=False):
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w") as f:
        for s in range(steps):
            rec = {"step": s, "lr": 1e-6, "phase": "train"}
            for k in keys:
                rec[k] = {"reward_mean": 0.1 + 0.01 * s, "pass_rate": 0.5, "theory/unsampled_m2": 1e-4 / (s + 1),
                          "shrink/fell_share": 0.0 if s < 2 else 0.25, "shrink/lost_share": 0.0 if s < 2 else 0.1,
                          "shrink/revisited": 0 if s < 2 else 8}[k]
            f.write(json.dumps(rec) + "\n")
            if s == 1:
                f.write("\n")
        if truncated:
            f.write('{"step": 99, "reward_me')
    if config is not None:
        (path / config[0]).write_text(config[1])


def test_plot_two_runs_of_different_lengths(tmp_path):
    pytest.importorskip("matplotlib")
    from brorl.plot import load_run, plot_runs

    all_keys = ["reward_mean", "pass_rate", "theory/unsampled_m2", "shrink/fell_share", "shrink/lost_share", "shrink/revisited"]
    _write_run(tmp_path / "bro", 30, all_keys, config=("config.json", json.dumps({"preset": "brorl"})), truncated=True)
    _write_run(tmp_path / "pro", 12, ["reward_mean", "shrink/fell_share"], config=("config.yaml", "algorithm:\n  n: 16\n"))
    bro, pro = load_run(tmp_path / "bro"), load_run(tmp_path / "pro" / "metrics.jsonl")
    assert bro.label == "bro (preset brorl)" and pro.label == "pro (N=16)"
    assert bro.skipped_lines == 1 and pro.skipped_lines == 0
    xs, ys = bro.series["reward_mean"]
    assert xs == list(range(30)) and ys[3] == pytest.approx(0.13)
    assert "phase" not in bro.series  # non-numeric values are ignored
    # shares at steps with nothing revisited are "no data", not 0
    assert bro.series["shrink/fell_share"][0][0] == 2
    assert pro.series["shrink/fell_share"][0][0] == 0  # no denominator logged: kept as is

    out = tmp_path / "cmp.png"
    drawn, skipped = plot_runs([bro, pro], out, smooth=3)
    assert drawn == ["reward_mean", "pass_rate", "theory/unsampled_m2", "shrink/fell_share", "shrink/lost_share"]
    assert skipped == []
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn, skipped = plot_runs([pro], out, keys=["pass_rate", "reward_mean", "nope"])
    assert drawn == ["reward_mean"] and skipped == ["pass_rate", "nope"]


def test_plot_cli(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from brorl.cli import main

    _write_run(tmp_path / "a", 5, ["reward_mean", "pass_rate"])
    out = tmp_path / "p.png"
    assert main(["plot", str(tmp_path / "a"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "theory/unsampled_m2" in err and "left out" in err
    assert out.stat().st_size > 1000
    assert main(["plot", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "a"), "--smooth", "0", "-o", str(out)]) == 2
