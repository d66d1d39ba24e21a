"""brorl: reinforcement learning with verifiable rewards that scales the number of rollouts
per prompt (BroRL, arXiv 2510.01180), with a Rust core.

``import brorl`` needs only NumPy and the compiled extension; torch, vLLM, DeepSpeed and Ray
are imported by the modules that use them.
"""

from __future__ import annotations

from brorl._core import (
    ESTIMATORS,
    RolloutBatch,
    __version__,
    compute_advantages,
    compute_gae,
    pass_at_k,
)
from brorl.errors import (
    BrorlError,
    BrorlTypeError,
    BudgetExceededError,
    ConfigError,
    InternalError,
    InvalidArgumentError,
    MissingRewardsError,
    NonFiniteError,
)

__all__ = [
    "__version__",
    # rollout bookkeeping and advantages
    "ESTIMATORS",
    "RolloutBatch",
    "compute_advantages",
    "compute_gae",
    "pass_at_k",
    # errors
    "BrorlError",
    "BrorlTypeError",
    "BudgetExceededError",
    "ConfigError",
    "InternalError",
    "InvalidArgumentError",
    "MissingRewardsError",
    "NonFiniteError",
]
