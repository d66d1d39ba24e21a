"""Telling a dead Ray worker from an exception our own code raised, and whether an actor still
answers: the basis of every restart and of the errors that name a lost rank or worker."""

from __future__ import annotations

from typing import Any

__all__ = ["system_errors", "alive"]


def system_errors() -> tuple[type[BaseException], ...]:
    """Ray errors that mean "the process died", as opposed to an exception raised by our code."""
    import ray.exceptions as rex

    return (
        rex.RayActorError,  # includes ActorDiedError and ActorUnavailableError
        rex.WorkerCrashedError,
        rex.NodeDiedError,
        rex.ObjectLostError,
        rex.OwnerDiedError,
        rex.OutOfMemoryError,
        rex.LocalRayletDiedError,
    )


def alive(actor: Any, timeout_s: float = 30.0) -> bool:
    """Whether an actor still answers (a cheap call queued behind nothing long)."""
    import ray

    try:
        ray.get(actor.pid.remote(), timeout=timeout_s)
        return True
    except Exception:
        return False
