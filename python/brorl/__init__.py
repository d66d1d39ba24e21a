"""brorl: reinforcement learning with verifiable rewards that scales the number of rollouts
per prompt (BroRL, arXiv 2510.01180), with a Rust core.

``import brorl`` needs only NumPy and the compiled extension; torch, vLLM, DeepSpeed and Ray
are imported by the modules that use them.
"""

from __future__ import annotations

from brorl._core import (
    CODE_STATUSES,
    ESTIMATORS,
    FINISH_REASONS,
    MATH_STATUSES,
    RolloutBatch,
    CodeResult,
    __version__,
    compute_advantages,
    compute_gae,
    extract_answer,
    extract_code,
    pass_at_k,
    verify_code,
    verify_code_batch,
    verify_math,
    verify_math_batch,
    verify_math_batch_status,
    verify_math_status,
)
from brorl.errors import (
    BrorlError,
    BrorlTypeError,
    BudgetExceededError,
    ConfigError,
    DataFormatError,
    InternalError,
    InvalidArgumentError,
    MissingExtraError,
    MissingRewardsError,
    NonFiniteError,
    SandboxUnavailableError,
    TrainerRankLostError,
    WorkerLostError,
)

__all__ = [
    "__version__",
    # rollout bookkeeping and advantages
    "ESTIMATORS",
    "FINISH_REASONS",
    "RolloutBatch",
    "compute_advantages",
    "compute_gae",
    "pass_at_k",
    # math answer verification
    "MATH_STATUSES",
    "extract_answer",
    "verify_math",
    "verify_math_batch",
    "verify_math_batch_status",
    "verify_math_status",
    # sandboxed code verification
    "CODE_STATUSES",
    "CodeResult",
    "extract_code",
    "verify_code",
    "verify_code_batch",
    # errors
    "BrorlError",
    "BrorlTypeError",
    "BudgetExceededError",
    "ConfigError",
    "DataFormatError",
    "TrainerRankLostError",
    "WorkerLostError",
    "InternalError",
    "InvalidArgumentError",
    "MissingExtraError",
    "MissingRewardsError",
    "NonFiniteError",
    "SandboxUnavailableError",
    # training (loaded on first use: brorl.train(config) runs `brorl train` from Python)
    "train",
]


def __getattr__(name: str):  # noqa: ANN202 - PEP 562 lazy attributes
    # The training subpackage pulls in its heavy dependencies only when a job starts; it is
    # callable, so ``brorl.train(cfg)`` works before and after ``import brorl.train``.
    if name == "train":
        import importlib

        return importlib.import_module("brorl.train")
    raise AttributeError(f"module 'brorl' has no attribute {name!r}")
