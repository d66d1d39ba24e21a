"""The driver's ``Learner`` on a cluster: M DeepSpeed data-parallel ranks, one Ray actor each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from brorl.distributed.actors import TrainerRank
from brorl.distributed.config import ClusterConfig
from brorl.distributed.liveness import alive as _alive
from brorl.distributed.liveness import system_errors as _system_errors
from brorl.distributed.placement import Placement
from brorl.errors import TrainerRankLostError

if TYPE_CHECKING:
    from brorl.distributed.engine_pool import EnginePause

__all__ = ["TrainerGroup"]


class TrainerGroup:
    """M DeepSpeed data-parallel ranks behind the ``Learner`` interface.

    Every rank gets the whole ``TrainBatch`` (one object-store copy shared by the node) and runs
    the same call, as torchrun ranks do; the learner picks its own balanced micro-batches by its
    rank. Rank 0's metrics are returned. A rank that dies stops the run: the others are killed
    (they would wait forever in the next all-reduce) and :class:`TrainerRankLostError` names the
    last checkpoint all ranks finished writing and how to resume.
    """

    def __init__(
        self,
        cfg: ClusterConfig,
        placement: Placement,
        factory: Callable[[], Any],
        backend: str,
        resume_hint: str | Callable[[], str] = "",
    ) -> None:
        import ray

        self.cfg = cfg
        # A callable is asked at failure time, when the last complete checkpoint is known.
        self.resume_hint = resume_hint
        self._closed = False
        self.last_checkpoint: str | None = None
        # Colocated placement: the engines sharing the ranks' devices, put to sleep before each
        # update (DistributedParts sets it).
        self.pause: EnginePause | None = None
        cls: Any = ray.remote(TrainerRank)
        m = cfg.num_trainer_ranks
        # Actor handles are typed Any: Ray's generic handle type hides the `.remote` methods.
        self.ranks: list[Any] = [
            cls.options(name=None, max_restarts=0, **placement.rank_options(i)).remote(i, m)
            for i in range(m)
        ]
        addr, port = ray.get(self.ranks[0].address.remote(), timeout=cfg.timeout_s)
        self.info = self._all(
            [r.setup.remote(addr, port, backend, factory, cfg.timeout_s) for r in self.ranks],
            "setup",
        )

    def _all(self, refs: list[Any], what: str) -> list[Any]:
        import ray

        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=self.cfg.timeout_s)
                if not done:
                    raise TrainerRankLostError(
                        f"trainer ranks did not finish {what} within cluster.timeout_s="
                        f"{self.cfg.timeout_s:g}s. {self._resume_message()}"
                    )
                ray.get(done[0])
            return ray.get(refs)
        except _system_errors() as exc:
            dead = self._dead_rank(refs)
            self.kill()
            raise TrainerRankLostError(
                f"trainer rank {dead} died during {what} ({type(exc).__name__}); the run is "
                f"stopped. {self._resume_message()}"
            ) from exc
        except BaseException:
            # Any failure on one rank leaves the others blocked in their next collective.
            self.kill()
            raise

    def _dead_rank(self, refs: list[Any]) -> str:
        import ray

        for i, ref in enumerate(refs):
            try:
                ray.get(ref, timeout=0)
            except _system_errors():
                return str(i)
            except Exception:  # still running (GetTimeoutError) or an ordinary error
                continue
        return "?"

    def _resume_message(self) -> str:
        if callable(self.resume_hint):
            try:
                return self.resume_hint()
            except Exception as exc:  # the message must not hide the rank failure
                return f"(could not describe how to resume: {exc})"
        if self.last_checkpoint is None:
            where = "No checkpoint was written yet, so a new run starts from the beginning."
        else:
            where = f"The last complete checkpoint is {self.last_checkpoint}."
        return f"{where} {self.resume_hint}".strip()

    def _call_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        return self._all([r.call.remote(method, *args, **kwargs) for r in self.ranks], method)

    # Learner interface ------------------------------------------------------------------------

    def train_step(self, batch: Any) -> dict[str, float]:
        import ray

        # Colocated engines release their memory first; they wake at the weight sync.
        paused = self.pause.sleep() if self.pause is not None else {}
        ref = ray.put(batch)  # one copy in the object store for all ranks on a node
        return {**self._call_all("train_step", ref)[0], **paused}

    def named_weights(self) -> Iterable[tuple[str, Any]]:
        import ray

        return ray.get(self.ranks[0].call.remote("named_weights"), timeout=self.cfg.timeout_s)

    def reset_reference(self, reset_optimizer: bool = False) -> None:
        self._call_all("reset_reference", reset_optimizer=reset_optimizer)

    def save_checkpoint(self, path: Any) -> None:
        # Absolute: the ranks' working directory is not the driver's.
        from pathlib import Path

        self._call_all("save_checkpoint", Path(path).resolve())
        self.last_checkpoint = str(path)

    def load_checkpoint(self, path: Any) -> None:
        from pathlib import Path

        self._call_all("load_checkpoint", Path(path).resolve())
        self.last_checkpoint = str(path)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call_all("close")
        finally:
            self.kill()

    # cluster --------------------------------------------------------------------------------

    def all_reduce_check(self) -> float:
        return float(self._all([r.all_reduce_check.remote(i + 1.0) for i, r in enumerate(self.ranks)], "all_reduce")[0])

    def pids(self) -> list[int]:
        import ray

        return ray.get([r.pid.remote() for r in self.ranks])

    def kill(self) -> None:
        import ray

        self._closed = True
        for r in self.ranks:
            try:
                ray.kill(r, no_restart=True)
            except Exception:  # already gone
                pass
