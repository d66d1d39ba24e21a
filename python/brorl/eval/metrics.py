"""The numbers ``brorl eval`` reports, from per-sample scores, lengths and truncation flags.

pass@k is the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k)/C(n, k) per problem with
n samples of which c are correct, averaged over problems (``brorl.pass_at_k``). pass@1 is then
the mean accuracy over all samples: the paper's "pass@1 averaged over 16 samples".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brorl.errors import InvalidArgumentError

# A sample is "correct" when its score reaches this value. Math and HumanEval scores are 0/1;
# some Reasoning Gym scorers give partial credit, which counts in `mean_score` but not in pass@k.
CORRECT_AT = 1.0


def default_ks(samples: int) -> list[int]:
    """1, 2, 4, ... up to ``samples``, and ``samples`` itself."""
    if samples < 1:
        raise InvalidArgumentError(f"invalid value for `samples`: {samples} (must be >= 1)")
    ks, k = [], 1
    while k < samples:
        ks.append(k)
        k *= 2
    ks.append(samples)
    return ks


def summarize(
    scores: np.ndarray, lengths: np.ndarray, truncated: np.ndarray, ks: list[int]
) -> dict[str, Any]:
    """Metrics of one task set. ``scores``, ``lengths`` (response tokens) and ``truncated`` are
    [problems, samples] arrays."""
    from brorl import pass_at_k

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise InvalidArgumentError(f"invalid value for `scores`: shape {scores.shape} (need [problems>0, samples>0])")
    lengths = np.asarray(lengths)
    truncated = np.asarray(truncated, dtype=bool)
    if lengths.shape != scores.shape or truncated.shape != scores.shape:
        raise InvalidArgumentError(
            f"invalid value for `lengths`/`truncated`: shapes {lengths.shape}/{truncated.shape} "
            f"differ from scores {scores.shape}"
        )
    n_problems, n = scores.shape
    n_correct = (scores >= CORRECT_AT).sum(axis=1)
    sizes = np.full(n_problems, n, dtype=np.int64)
    out: dict[str, Any] = {"problems": int(n_problems), "samples": int(n)}
    out["pass_at_k"] = {str(k): float(np.mean(pass_at_k(sizes, n_correct, k))) for k in ks if k <= n}
    out["mean_score"] = float(scores.mean())
    out["mean_response_tokens"] = float(lengths.mean())
    out["truncation_rate"] = float(truncated.mean())
    return out


def overall(per_set: list[dict[str, Any]]) -> dict[str, Any]:
    """Unweighted mean over task sets (each benchmark counts once, as in the paper's averages)."""
    if not per_set:
        raise InvalidArgumentError("invalid value for `per_set`: no task sets to average")
    ks = [k for k in per_set[0]["pass_at_k"] if all(k in m["pass_at_k"] for m in per_set)]
    return {
        "task_sets": len(per_set),
        "problems": int(sum(m["problems"] for m in per_set)),
        "samples": per_set[0]["samples"],
        "pass_at_k": {k: float(np.mean([m["pass_at_k"][k] for m in per_set])) for k in ks},
        "mean_score": float(np.mean([m["mean_score"] for m in per_set])),
        "mean_response_tokens": float(np.mean([m["mean_response_tokens"] for m in per_set])),
        "truncation_rate": float(np.mean([m["truncation_rate"] for m in per_set])),
    }
