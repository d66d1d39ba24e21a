"""brorl's exceptions. Every error brorl raises on bad input is a ``BrorlError``; where the
meaning is "wrong value" it is also a ``ValueError`` (and "wrong type" a ``TypeError``), so
code that already catches the standard exceptions keeps working."""

from __future__ import annotations

__all__ = [
    "BrorlError",
    "InvalidArgumentError",
    "NonFiniteError",
    "BrorlTypeError",
    "MissingRewardsError",
    "BudgetExceededError",
    "ConfigError",
    "InternalError",
    "DataFormatError",
    "WorkerLostError",
    "TrainerRankLostError",
    "SandboxUnavailableError",
    "MissingExtraError",
]


class BrorlError(Exception):
    """Base class of every error brorl raises on purpose."""


class InvalidArgumentError(BrorlError, ValueError):
    """An argument has a value outside its domain; the message names the argument and value."""


class NonFiniteError(InvalidArgumentError):
    """NaN or infinity where a finite number is required (e.g. a reward)."""


class BrorlTypeError(BrorlError, TypeError):
    """An argument has the wrong type."""


class MissingRewardsError(BrorlError, ValueError):
    """An operation needs rewards but the rollout batch has none yet."""


class BudgetExceededError(BrorlError):
    """A bounded computation (e.g. parsing a huge expression) ran out of its work budget."""


class ConfigError(BrorlError, ValueError):
    """A configuration value is invalid; the message names the field and says what to change."""


class InternalError(BrorlError, RuntimeError):
    """A bug in brorl (a Rust panic caught at the boundary). Please report it."""


class DataFormatError(BrorlError, ValueError):
    """A data file has a bad row; the message names the file, line, field and value."""

    def __init__(self, path, line, field, value, problem):
        self.path, self.line, self.field, self.value = path, line, field, value
        where = str(path) + (f", line {line}" if line is not None else "")
        what = f"field {field!r}" if field is not None else "row"
        shown = "" if value is None else f" (value {value!r})"
        super().__init__(f"{where}: {what} {problem}{shown}")


class WorkerLostError(BrorlError, RuntimeError):
    """A remote worker of a distributed run (engine actor, reward task, trainer rank) died more
    often than the run's restart budget allows; the message names the worker and the budget."""


class TrainerRankLostError(WorkerLostError):
    """A DeepSpeed trainer rank of a distributed run died. The run stops (a data-parallel group
    cannot lose a member mid-step); the message names the last intact checkpoint and the command
    that resumes from it."""


class SandboxUnavailableError(BrorlError, RuntimeError):
    """The code sandbox could not start (no usable interpreter, or the kernel refused the
    requested isolation); the message says which step failed and why."""


class MissingExtraError(BrorlError, ImportError):
    """A command needs a package from one of brorl's optional extras that is not installed;
    the message names the package and the ``pip install 'brorl[...]'`` that provides it."""

    def __init__(self, message: str, module: str | None = None):
        super().__init__(message, name=module)
