# Type stub for the Rust extension `brorl._core`; tests/test_stub.py checks it against the
# compiled module with mypy.stubtest so the two cannot drift.
from collections.abc import Mapping, Sequence
from typing import Any, final

import numpy as np
import numpy.typing as npt

__version__: str
ESTIMATORS: list[str]
# The words `RolloutBatch.from_lists` accepts in `finish_reasons` (besides None); "length" marks
# a rollout cut off at the token limit (`truncated`), the others do not.
FINISH_REASONS: list[str]

def compute_advantages(
    rewards: npt.ArrayLike,
    group_sizes: npt.ArrayLike,
    estimator: str = "reinforce_pp_baseline",
    eps: float = 1e-06,
) -> npt.NDArray[np.float32]: ...
def compute_gae(
    token_rewards: npt.ArrayLike,
    values: npt.ArrayLike,
    offsets: npt.ArrayLike,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def pass_at_k(
    group_sizes: npt.ArrayLike, n_correct: npt.ArrayLike, k: int
) -> npt.NDArray[np.float64]: ...

@final
class RolloutBatch:
    def __new__(
        cls,
        prompt_index: npt.ArrayLike,
        token_ids: npt.ArrayLike,
        offsets: npt.ArrayLike,
        logprobs: npt.ArrayLike | None = None,
        rewards: npt.ArrayLike | None = None,
        truncated: npt.ArrayLike | None = None,
    ) -> RolloutBatch: ...
    @staticmethod
    def from_lists(
        prompt_index: npt.ArrayLike,
        token_ids: list[list[int]],
        logprobs: list[list[float]] | None = None,
        rewards: npt.ArrayLike | None = None,
        finish_reasons: Sequence[str | None] | None = None,
    ) -> RolloutBatch: ...
    @staticmethod
    def concat(batches: Sequence[RolloutBatch]) -> RolloutBatch: ...
    @property
    def prompt_index(self) -> npt.NDArray[np.int64]: ...
    @property
    def token_ids(self) -> npt.NDArray[np.int32]: ...
    @property
    def offsets(self) -> npt.NDArray[np.int64]: ...
    @property
    def logprobs(self) -> npt.NDArray[np.float32] | None: ...
    @property
    def rewards(self) -> npt.NDArray[np.float32] | None: ...
    @property
    def truncated(self) -> npt.NDArray[np.bool_]: ...
    @property
    def group_sizes(self) -> npt.NDArray[np.int64]: ...
    @property
    def n_rollouts(self) -> int: ...
    @property
    def n_groups(self) -> int: ...
    @property
    def n_tokens(self) -> int: ...
    @property
    def response_lengths(self) -> npt.NDArray[np.int64]: ...
    def __len__(self) -> int: ...
    def set_rewards(self, rewards: npt.ArrayLike) -> None: ...
    def group_stats(self, threshold: float = 1.0) -> dict[str, npt.NDArray[np.generic]]: ...
    def pass_at_k(self, k: int, threshold: float = 1.0) -> npt.NDArray[np.float64]: ...
    def varied_groups(self) -> npt.NDArray[np.bool_]: ...
    def filter_groups(self, mask: npt.ArrayLike | None = None) -> RolloutBatch: ...
    def advantages(
        self, estimator: str = "reinforce_pp_baseline", eps: float = 1e-06
    ) -> npt.NDArray[np.float32]: ...
    def broadcast_to_tokens(self, values: npt.ArrayLike) -> npt.NDArray[np.float32]: ...
    def padded_token_values(
        self, values: npt.ArrayLike, width: int | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]: ...
    def pack(
        self,
        max_tokens: int,
        n_ranks: int = 1,
        prompt_lengths: npt.ArrayLike | None = None,
    ) -> list[list[npt.NDArray[np.int64]]]: ...

# --- math answer verifier (rust/brorl-core/src/math) ---
MATH_STATUSES: list[str]

def extract_answer(response: str, *, last_number: bool = True) -> str | None: ...
def verify_math(gold: str, response: str, *, last_number: bool = True) -> bool: ...
def verify_math_status(gold: str, response: str, *, last_number: bool = True) -> str: ...
def verify_math_batch(
    golds: Sequence[str],
    responses: Sequence[str],
    *,
    threads: int | None = None,
    last_number: bool = True,
) -> npt.NDArray[np.bool_]: ...
def verify_math_batch_status(
    golds: Sequence[str],
    responses: Sequence[str],
    *,
    threads: int | None = None,
    last_number: bool = True,
) -> npt.NDArray[np.uint8]: ...

# --- sandboxed code verifier (rust/brorl-core/src/code) ---
CODE_STATUSES: list[str]

@final
class CodeResult:
    @property
    def passed(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def reward(self) -> float: ...
    @property
    def statuses(self) -> list[str]: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def error(self) -> str | None: ...
    @property
    def elapsed_s(self) -> float: ...
    @property
    def sandbox(self) -> str: ...

def extract_code(response: str, language: str = "python") -> str | None: ...
def verify_code(
    program: str | None,
    tests: Any,
    *,
    kind: str,
    entry_point: str | None = None,
    timeout_s: float = 3.0,
    total_timeout_s: float = 5.0,
    memory_mb: int = 1024,
    reward: str = "fraction",
    float_tol: float | None = None,
    isolation: str = "auto",
    prompt: str | None = None,
    literal_tests: bool = True,
) -> CodeResult: ...
def verify_code_batch(
    items: Sequence[Mapping[str, Any]],
    *,
    workers: int | None = None,
    isolation: str = "auto",
) -> list[CodeResult]: ...
