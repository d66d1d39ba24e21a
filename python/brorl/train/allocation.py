"""Adaptive N per prompt: share a round's sample budget out where it buys informative groups.

BroRL gives every prompt the same N. But a group only carries a policy-gradient signal when its
rollouts did not all score the same (a *mixed* group: with a group baseline, an all-correct or
all-wrong group has zero advantage everywhere and dynamic sampling throws it away). A prompt the
policy solves every time needs few samples to be known; a prompt with a 3% pass rate needs many
before one correct answer appears. ``algorithm.allocation = 'adaptive'`` keeps the round's
budget (N x prompts) and moves samples between its prompts.

**Model.** Each prompt's pass rate p (the chance a rollout gets reward >= 1) has a Beta(a, b)
posterior: the prior plus the prompt's past outcomes (:class:`PassRateHistory`, carried in
checkpoints). A sampled prompt first gets ``first_n`` samples (``first_look = 'all'``; with
``'unseen'`` only prompts with no history do) and their outcome is added.

**Objective.** Choose extra samples e_i (prompt i already holds m_i samples, c_i of them correct)
to maximise the expected number of mixed groups at the end of the round,

    F(e) = sum_i  P(group i mixed | c_i, m_i, e_i)
         = sum_i  1 - [c_i = m_i] E[p_i^e_i] - [c_i = 0] E[(1-p_i)^e_i]      (m_i + e_i >= 1)

(expectations under prompt i's posterior; a group already mixed gains nothing from more
samples), plus ``signal_weight`` x sum_i e_i 2 E[p_i(1-p_i)] (the expected gradient signal the
extra samples add: summed |advantage| before whitening; 0 by default), subject to
sum_i e_i <= budget, floor <= m_i + e_i <= cap.
Under Beta(a, b): E[p^e] = prod_{j<e} (a+j)/(a+b+j), E[(1-p)^e] = prod_{j<e} (b+j)/(a+b+j).

**Why greedy is optimal.** The gain of one more sample is

    F_i(e+1) - F_i(e) = [c_i = m_i] E[p^e (1-p)] + [c_i = 0] E[(1-p)^e p],

and for every fixed p in [0, 1] both p^e (1-p) and (1-p)^e p are non-increasing in e; so is their
expectation under any distribution of p (the signal term adds a constant). Each F_i is
therefore concave in e_i, F is separable, and the constraints are a total budget plus
per-prompt boxes: taking the largest marginal gains one sample at a time (here: the
top-``budget`` entries of the table of all marginal gains, which per prompt is a prefix because
the gains decrease) reaches the optimum, the classical result for separable concave resource
allocation (``tests/test_allocation.py`` checks it against brute force). Ties (gains that
underflow to 0 once every group is surely mixed) go to the smaller group, so left-over budget
spreads evenly.

**Floor.** The objective stops valuing a group once it is mixed, so a prompt that is mixed
after its first look would keep only those samples; the floor (``min_n``, default N/2) keeps
every sampled prompt's group at a useful size, and at most the rest of the budget moves.

**Skipping.** A prompt whose history predicts ``first_n`` samples all correct with probability
>= ``skip_solved`` gets no samples at that visit (its evidence still decays, so it comes back).

**Engine calls.** The optimum is rounded to at most ``levels`` distinct group sizes
(:func:`quantise`), one ``Generator.generate`` call per size, so the Generator interface stays
``(prompts, n)``; the parts are regrouped so each prompt's rollouts are consecutive
(:func:`merge_groups`) and go through the ragged advantage estimators unchanged.

Not on a hot path: the table is prompts x cap floats (128 x 2048 at the paper's sizes: ~70 ms
of NumPy with the rounding) against minutes of generation per step, so there is no Rust kernel.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brorl._core import RolloutBatch
from brorl.errors import InvalidArgumentError

__all__ = [
    "beta_power_moments",
    "marginal_gains",
    "signal_per_sample",
    "expected_mixed",
    "allocate",
    "quantise",
    "merge_groups",
    "group_size_metrics",
    "PassRateHistory",
    "AdaptiveAllocator",
    "RoundResult",
]


def _ab(alpha: Any, beta: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    b = np.asarray(beta, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise InvalidArgumentError(f"alpha and beta must have the same length, got {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise InvalidArgumentError("alpha and beta must be positive finite numbers (Beta parameters)")
    return a, b


def beta_power_moments(alpha: Any, beta: Any, max_e: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P, Q)``, each ``[k, max_e + 1]``: ``P[i, e] = E[p^e]`` and ``Q[i, e] = E[(1-p)^e]`` for
    ``p ~ Beta(alpha[i], beta[i])`` (products of ratios: no overflow at e in the thousands)."""
    a, b = _ab(alpha, beta)
    if max_e < 0:
        raise InvalidArgumentError(f"max_e must be >= 0, got {max_e}")
    j = np.arange(max_e, dtype=np.float64)[None, :]
    den = a[:, None] + b[:, None] + j
    one = np.ones((a.size, 1))
    p = np.concatenate([one, np.cumprod((a[:, None] + j) / den, axis=1)], axis=1)
    q = np.concatenate([one, np.cumprod((b[:, None] + j) / den, axis=1)], axis=1)
    return p, q


def _flags(drawn: Any, n_correct: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = np.asarray(drawn).reshape(-1)
    c = np.asarray(n_correct).reshape(-1)
    if m.size != k or c.size != k:
        raise InvalidArgumentError(f"drawn and n_correct need one entry per prompt ({k}), got {m.size} and {c.size}")
    m = m.astype(np.int64)
    c = c.astype(np.int64)
    if np.any(m < 0) or np.any(c < 0) or np.any(c > m):
        raise InvalidArgumentError("need 0 <= n_correct <= drawn for every prompt")
    return m, c == m, c == 0


def marginal_gains(alpha: Any, beta: Any, drawn: Any, n_correct: Any, max_e: int,
                   signal_weight: float = 0.0) -> np.ndarray:
    """``G[i, e]``: how much the (e+1)-th extra sample of prompt i raises the objective: its
    probability of ending mixed, ``[c=m] E[p^e (1-p)] + [c=0] E[(1-p)^e p]``, plus
    ``signal_weight * 2 E[p(1-p)]`` (the sample's expected share of the group's summed
    |advantage|, constant in e); shape ``[k, max_e]``.

    Written as products of non-increasing positive factors, so each row is non-increasing in
    floating point too (the greedy selection relies on it)."""
    a, b = _ab(alpha, beta)
    _, all_correct, all_wrong = _flags(drawn, n_correct, a.size)
    p, q = beta_power_moments(a, b, max_e)
    j = np.arange(max_e, dtype=np.float64)[None, :]
    den = a[:, None] + b[:, None] + j
    g = np.zeros((a.size, max_e))
    # E[p^e (1-p)] = E[p^e] * b / (a+b+e);  E[(1-p)^e p] = E[(1-p)^e] * a / (a+b+e)
    g += np.where(all_correct[:, None], p[:, :max_e] * (b[:, None] / den), 0.0)
    g += np.where(all_wrong[:, None], q[:, :max_e] * (a[:, None] / den), 0.0)
    if signal_weight:
        g += (signal_weight * signal_per_sample(a, b))[:, None]
    return g


def signal_per_sample(alpha: Any, beta: Any) -> np.ndarray:
    """2 E[p(1-p)] under Beta(alpha, beta): for a group of n binary rewards with c correct, the
    summed |r - mean| is 2c(n-c)/n, whose expectation is 2(n-1) p(1-p), so each further sample
    adds about 2 p(1-p) of gradient signal."""
    a, b = _ab(alpha, beta)
    return 2.0 * a * b / ((a + b) * (a + b + 1.0))


def expected_mixed(alpha: Any, beta: Any, drawn: Any, n_correct: Any, extra: Any) -> np.ndarray:
    """Per prompt, the probability that its group (``drawn`` samples with ``n_correct``
    correct, plus ``extra`` more) ends mixed, under its Beta posterior; 0 for an empty group."""
    a, b = _ab(alpha, beta)
    m, all_correct, all_wrong = _flags(drawn, n_correct, a.size)
    e = np.asarray(extra, dtype=np.int64).reshape(-1)
    if e.size != a.size or np.any(e < 0):
        raise InvalidArgumentError("extra must hold one non-negative count per prompt")
    p, q = beta_power_moments(a, b, int(e.max(initial=0)))
    rows = np.arange(a.size)
    out = 1.0 - np.where(all_correct, p[rows, e], 0.0) - np.where(all_wrong, q[rows, e], 0.0)
    return np.where(m + e > 0, out, 0.0)


def _bounds(drawn: np.ndarray, floor: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    if floor < 1:
        raise InvalidArgumentError(f"floor must be >= 1, got {floor}")
    if cap < floor:
        raise InvalidArgumentError(f"cap must be >= floor ({floor}), got {cap}")
    required = np.maximum(floor - drawn, 0)
    capacity = np.maximum(cap - drawn, required)
    return required, capacity


def allocate(alpha: Any, beta: Any, drawn: Any, n_correct: Any, budget: int, floor: int, cap: int,
             signal_weight: float = 0.0) -> np.ndarray:
    """Extra samples per prompt maximising the expected number of mixed groups, plus
    ``signal_weight`` x the expected gradient signal of the extra samples (module docstring:
    objective F, constraints ``sum(extra) <= budget``, ``floor <= drawn + extra <= cap``; a
    prompt already at or above the cap gets nothing).

    ``alpha, beta``: each prompt's Beta posterior, already including the ``drawn`` samples of
    which ``n_correct`` were correct. Spends ``min(budget, room under the caps)``. Raises
    :class:`brorl.errors.InvalidArgumentError` when the floors alone exceed the budget.
    Returns int64 ``[k]``."""
    a, b = _ab(alpha, beta)
    m, _, _ = _flags(drawn, n_correct, a.size)
    if int(budget) != budget or budget < 0:
        raise InvalidArgumentError(f"budget must be a non-negative integer, got {budget!r}")
    required, capacity = _bounds(m, int(floor), int(cap))
    free = int(budget) - int(required.sum())
    if free < 0:
        raise InvalidArgumentError(
            f"budget {budget} is below the floors' {int(required.sum())} samples (floor {floor} x {a.size} prompts)"
        )
    room = capacity - required
    take = min(free, int(room.sum()))
    extra = required.copy()
    if take == 0:
        return extra
    width = int(room.max())
    e = required[:, None] + np.arange(width)[None, :]  # the extra count before each candidate sample
    if not (np.isfinite(signal_weight) and signal_weight >= 0):
        raise InvalidArgumentError(f"signal_weight must be a finite number >= 0, got {signal_weight!r}")
    g = marginal_gains(a, b, m, np.asarray(n_correct), int(capacity.max()), signal_weight)
    gains = np.take_along_axis(g, np.minimum(e, g.shape[1] - 1), axis=1)
    valid = np.arange(width)[None, :] < room[:, None]
    # best gain first; ties to the smaller group, then the earlier prompt
    order = np.lexsort((np.broadcast_to(np.arange(a.size)[:, None], e.shape)[valid], e[valid], -gains[valid]))
    rows = np.broadcast_to(np.arange(a.size)[:, None], e.shape)[valid][order[:take]]
    extra += np.bincount(rows, minlength=a.size)
    return extra


def quantise(extra: Any, required: Any, capacity: Any, value: np.ndarray, budget: int, levels: int) -> np.ndarray:
    """Round an allocation to at most ``levels`` distinct positive sizes (one engine call each).

    ``value[i, e]`` is prompt i's objective with e extra samples (any non-decreasing table with
    ``capacity.max() + 1`` columns). The sizes are the distinct ``required`` floors plus a
    geometric grid between the smallest and largest positive ``extra``; each prompt is rounded
    down to the largest size it reaches, then the freed budget buys the upgrades (to a prompt's
    next size) with the best gain per sample while they fit. The result keeps
    ``required <= q <= capacity`` and ``sum(q) <= budget``; an allocation with few enough sizes
    is returned unchanged."""
    e = np.asarray(extra, dtype=np.int64).reshape(-1)
    r = np.asarray(required, dtype=np.int64).reshape(-1)
    u = np.asarray(capacity, dtype=np.int64).reshape(-1)
    if not (e.size == r.size == u.size) or np.any(e < r) or np.any(e > u):
        raise InvalidArgumentError("quantise: need required <= extra <= capacity, one entry per prompt")
    if value.shape[0] != e.size or value.shape[1] <= int(u.max(initial=0)):
        raise InvalidArgumentError("quantise: value needs one row per prompt and capacity.max() + 1 columns")
    if levels < 1:
        raise InvalidArgumentError(f"levels must be >= 1, got {levels}")
    sizes = np.unique(e[e > 0])
    if sizes.size <= levels:
        return e.copy()
    must = np.unique(r[r > 0])
    slots = levels - must.size
    if slots < 1:
        raise InvalidArgumentError(f"levels = {levels} leaves no size above the {must.size} floor sizes")
    lo, hi = int(sizes[0]), int(sizes[-1])
    grid = np.unique(np.rint(np.geomspace(lo, hi, slots)).astype(np.int64)) if slots > 1 else np.asarray([hi])
    lv = np.unique(np.concatenate([must, grid]))
    q = np.zeros_like(e)
    for i in np.flatnonzero(e > 0):
        q[i] = lv[lv <= e[i]].max() if np.any(lv <= e[i]) else r[i]
    q = np.maximum(q, r)
    left = int(budget) - int(q.sum())
    rows = np.arange(e.size)
    while left > 0:
        nxt = np.full(e.size, -1, dtype=np.int64)
        for i in rows:
            above = lv[(lv > q[i]) & (lv <= u[i]) & (lv - q[i] <= left)]
            if above.size:
                nxt[i] = above.min()
        ok = nxt >= 0
        if not ok.any():
            break
        cost = np.where(ok, nxt - q, 1)
        gain = np.where(ok, value[rows, np.where(ok, nxt, 0)] - value[rows, q], -np.inf)
        i = int(np.argmax(gain / cost))
        left -= int(nxt[i] - q[i])
        q[i] = nxt[i]
    return q


def merge_groups(parts: Sequence[tuple[RolloutBatch, np.ndarray]]) -> RolloutBatch:
    """One batch from several engine calls: part j's ``prompt_index`` is local to its call and
    ``parts[j][1][local]`` is the prompt's index in the merged batch. Every prompt's rollouts
    end up consecutive (earlier parts first), as the ragged group layout requires; rewards,
    engine log-probs and truncation flags travel with their rollouts."""
    if not parts:
        raise InvalidArgumentError("merge_groups: no parts")
    gidx = np.concatenate([np.asarray(mp, dtype=np.int64)[b.prompt_index] for b, mp in parts])
    lens = np.concatenate([np.diff(b.offsets) for b, _ in parts])
    shift = np.cumsum([0] + [b.n_tokens for b, _ in parts[:-1]])
    starts = np.concatenate([b.offsets[:-1] + s for (b, _), s in zip(parts, shift)])
    tokens = np.concatenate([b.token_ids for b, _ in parts])
    order = np.argsort(gidx, kind="stable")
    new_lens = lens[order]
    off = np.concatenate([[0], np.cumsum(new_lens)]).astype(np.int64)
    gather = np.repeat(starts[order] - off[:-1], new_lens) + np.arange(off[-1])
    have_lp = all(b.logprobs is not None for b, _ in parts)
    lp = np.concatenate([b.logprobs for b, _ in parts])[gather] if have_lp else None  # type: ignore[misc]
    have_r = all(b.rewards is not None for b, _ in parts)
    rew = np.concatenate([b.rewards for b, _ in parts])[order] if have_r else None  # type: ignore[misc]
    trunc = np.concatenate([b.truncated for b, _ in parts])[order]
    return RolloutBatch(gidx[order], tokens[gather], off, lp, rew, trunc)


def group_size_metrics(sizes: np.ndarray, wasted: int, samples: int, budget: int) -> dict[str, float]:
    """How N spread over the groups of a step, and the share of samples spent on groups that
    ended with zero advantage (all rewards equal)."""
    s = np.asarray(sizes, dtype=np.float64)
    nan = float("nan")
    return {
        "alloc/samples": float(samples),
        "alloc/budget_used": samples / budget if budget else nan,
        "alloc/wasted_share": wasted / samples if samples else nan,
        "alloc/n_min": float(s.min()) if s.size else nan,
        "alloc/n_p25": float(np.quantile(s, 0.25)) if s.size else nan,
        "alloc/n_median": float(np.median(s)) if s.size else nan,
        "alloc/n_p75": float(np.quantile(s, 0.75)) if s.size else nan,
        "alloc/n_max": float(s.max()) if s.size else nan,
    }


class PassRateHistory:
    """A Beta posterior of every prompt's pass rate, keyed by ``Prompt.uid``.

    Stored as evidence (successes, failures) on top of the prior; each :meth:`visit` first
    multiplies a prompt's old evidence by ``decay`` (the policy has moved since), then adds the
    new group. The state is JSON (``state_dict``/``load_state_dict``) for the checkpoint."""

    def __init__(self, prior: Sequence[float] = (1.0, 1.0), decay: float = 1.0) -> None:
        if len(prior) != 2 or not all(float(x) > 0 and np.isfinite(float(x)) for x in prior):
            raise InvalidArgumentError(f"prior must be two positive numbers, got {prior!r}")
        if not 0 < decay <= 1:
            raise InvalidArgumentError(f"decay must be in (0, 1], got {decay!r}")
        self.prior = (float(prior[0]), float(prior[1]))
        self.decay = float(decay)
        self._ev: dict[int, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._ev)

    def seen(self, uid: int) -> bool:
        return int(uid) in self._ev

    def posterior(self, uids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        ev = [self._ev.get(int(u), (0.0, 0.0)) for u in uids]
        s = np.asarray([x[0] for x in ev], dtype=np.float64)
        f = np.asarray([x[1] for x in ev], dtype=np.float64)
        return self.prior[0] + s, self.prior[1] + f

    def visit(self, uid: int, successes: int, trials: int) -> None:
        if not 0 <= successes <= trials:
            raise InvalidArgumentError(f"need 0 <= successes <= trials, got {successes} and {trials}")
        s, f = self._ev.get(int(uid), (0.0, 0.0))
        self._ev[int(uid)] = (s * self.decay + successes, f * self.decay + (trials - successes))

    def state_dict(self) -> dict[str, Any]:
        return {"version": 1, "prior": list(self.prior), "decay": self.decay,
                "evidence": [[u, s, f] for u, (s, f) in self._ev.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise InvalidArgumentError(f"unknown pass-rate history version {state.get('version')!r}")
        self._ev = {int(u): (float(s), float(f)) for u, s, f in state["evidence"]}


@dataclass
class RoundResult:
    """One generation round under adaptive allocation: the merged batch (rewards set; its
    ``prompt_index`` indexes ``prompts``; None when every prompt was skipped), the prompts
    that were sampled, and the time spent generating and scoring."""

    batch: RolloutBatch | None
    prompts: list[Any]
    gen_seconds: float
    verify_seconds: float


def _sub_seed(seed: int, j: int) -> int:
    return int(np.random.default_rng([seed, 4242, j]).integers(0, 2**31 - 1))


class AdaptiveAllocator:
    """Runs one generation round with per-prompt N (module docstring) and keeps the history.

    ``collect_round(generator, reward_fn, prompts, n, sampling, seed)`` spends
    ``n * len(prompts)`` samples at most; :meth:`pop_metrics` returns the calibration and skip
    counts since the last call."""

    def __init__(self, cfg: Any, n: int) -> None:
        self.cfg = cfg
        self.n = int(n)
        self.cap = int(cfg.max_n) if cfg.max_n is not None else 4 * self.n
        self.floor = int(cfg.min_n) if cfg.min_n is not None else max(2, self.n // 2)
        self.history = PassRateHistory(cfg.prior, cfg.decay)
        self._reset_metrics()

    def _reset_metrics(self) -> None:
        self._m = {"skipped": 0, "calls": 0, "first": 0, "abs": 0.0, "groups": 0, "brier": 0.0, "extra": 0,
                   "pred_mixed": 0.0}

    def collect_round(self, generator: Any, reward_fn: Any, prompts: Sequence[Any], n: int, sampling: Any,
                      seed: int) -> RoundResult:
        c = self.cfg
        k = len(prompts)
        uids = [p.uid for p in prompts]
        a, b = self.history.posterior(uids)
        seen = np.asarray([self.history.seen(u) for u in uids], dtype=bool)
        p_solved, _ = beta_power_moments(a, b, c.first_n)
        skip = seen & (p_solved[:, c.first_n] >= c.skip_solved) & (c.skip_solved < 1.0)
        for i in np.flatnonzero(skip):
            self.history.visit(uids[i], 0, 0)  # no new evidence; the old one fades
        self._m["skipped"] += int(skip.sum())
        active = np.flatnonzero(~skip)
        if active.size == 0:
            return RoundResult(None, [], 0.0, 0.0)
        act = [prompts[i] for i in active]
        a, b, seen = a[active], b[active], seen[active]
        drawn = np.zeros(active.size, dtype=np.int64)
        correct = np.zeros(active.size, dtype=np.int64)
        parts: list[tuple[RolloutBatch, np.ndarray]] = []
        t_gen = t_ver = 0.0

        def run(idx: np.ndarray, size: int, j: int) -> None:
            nonlocal t_gen, t_ver
            sub = [act[i] for i in idx]
            ro = generator.generate([p.token_ids for p in sub], size, sampling, _sub_seed(seed, j))
            t_gen += ro.seconds
            t0 = time.perf_counter()
            r = np.asarray(reward_fn(ro, sub), dtype=np.float32)
            t_ver += time.perf_counter() - t0
            ro.batch.set_rewards(r)
            pi = ro.batch.prompt_index
            np.add.at(drawn, idx[pi], 1)
            np.add.at(correct, idx[pi], (r >= 1.0).astype(np.int64))
            parts.append((ro.batch, idx))
            self._m["calls"] += 1

        first = np.flatnonzero(~seen) if c.first_look == "unseen" else np.arange(active.size)
        if first.size:
            run(first, c.first_n, 0)
            self._m["first"] += int(drawn.sum())
        alpha, beta = a + correct, b + (drawn - correct)
        budget = n * k - int(drawn.sum())
        required, capacity = _bounds(drawn, self.floor, self.cap)
        w = float(c.signal_weight)
        extra = allocate(alpha, beta, drawn, correct, budget, self.floor, self.cap, w)
        value = np.concatenate([np.zeros((active.size, 1)),
                                np.cumsum(marginal_gains(alpha, beta, drawn, correct, int(capacity.max()), w), axis=1)],
                               axis=1)
        extra = quantise(extra, required, capacity, value, budget, c.levels)
        self._m["pred_mixed"] += float(expected_mixed(alpha, beta, drawn, correct, extra).sum())
        before_c, before_m = correct.copy(), drawn.copy()
        for j, size in enumerate(np.unique(extra[extra > 0]).tolist(), start=1):
            run(np.flatnonzero(extra == size), int(size), j)
        # calibration: the posterior mean the allocation used vs the samples drawn after it
        got = drawn - before_m
        has = got > 0
        if has.any():
            pred = (alpha / (alpha + beta))[has]
            hit = (correct - before_c)[has]
            obs = hit / got[has]
            self._m["abs"] += float(np.abs(pred - obs).sum())
            self._m["groups"] += int(has.sum())
            # Brier over single samples: hit of them scored (1 - pred)^2, the rest pred^2
            self._m["brier"] += float((hit * (1 - pred) ** 2 + (got[has] - hit) * pred**2).sum())
            self._m["extra"] += int(got[has].sum())
        for i, p in enumerate(act):
            self.history.visit(p.uid, int(correct[i]), int(drawn[i]))
        return RoundResult(merge_groups(parts), act, t_gen, t_ver)

    def pop_metrics(self) -> dict[str, float]:
        m = self._m
        nan = float("nan")
        out = {
            "alloc/skipped": float(m["skipped"]),
            "alloc/gen_calls": float(m["calls"]),
            "alloc/first_samples": float(m["first"]),
            "alloc/pred_mixed": m["pred_mixed"],
            "alloc/calib_mae": m["abs"] / m["groups"] if m["groups"] else nan,
            "alloc/calib_brier": m["brier"] / m["extra"] if m["extra"] else nan,
            "alloc/history_prompts": float(len(self.history)),
        }
        self._reset_metrics()
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.history.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history.load_state_dict(state)
