"""BroRL's mass balance theory (arXiv 2510.01180, Sec. 3) and the training-side diagnostics
built on it. Needs only NumPy; torch tensors are accepted where noted and torch is imported
only when one is passed.

- `mass_balance_terms` / `mass_balance_from_masks`: the three terms of dQ_pos for one step.
- `predicted_delta_q_pos`: the first-order prediction (eta/N) * (sum of the terms).
- `unsampled_second_moment`: mean over prompts of sum_v p_v^2 (1 - p_v)^N.
- `expected_unsampled_moments`: E[U_pos,2], E[U_neg,2] after N draws.
- `ShrinkageTracker`: share of revisited prompts whose pass rate fell / fell to 0.
"""

from brorl.theory.mass_balance import (
    MassBalance,
    expected_unsampled_moments,
    mass_balance_from_masks,
    mass_balance_terms,
    predicted_delta_q_pos,
    softmax,
    unsampled_second_moment,
)
from brorl.theory.shrinkage import ShrinkageTracker

__all__ = [
    "MassBalance",
    "ShrinkageTracker",
    "expected_unsampled_moments",
    "mass_balance_from_masks",
    "mass_balance_terms",
    "predicted_delta_q_pos",
    "softmax",
    "unsampled_second_moment",
]
