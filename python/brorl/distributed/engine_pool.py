"""The driver's ``Generator`` on a cluster: K engine actors (restarted when they die) and, for
the colocated placement, the pause of the engines around the update."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from brorl.distributed.actors import EngineActor
from brorl.distributed.batches import merge_batches
from brorl.distributed.config import ClusterConfig
from brorl.distributed.liveness import system_errors as _system_errors
from brorl.distributed.placement import Placement
from brorl.errors import WorkerLostError
from brorl.train.engines import shard_seed

if TYPE_CHECKING:
    from brorl.distributed.sync import WeightSync

__all__ = ["EnginePause", "EnginePool"]

log = logging.getLogger("brorl.distributed")



class EnginePause:
    """Colocated placement: the engines give their device memory to the trainer ranks for the
    update and take it back for the next generation.

    A step then runs: :meth:`sleep` (the engines' ``sleep``) -> the ranks train -> wake the
    weights -> weight sync -> wake the KV cache (:meth:`around_sync`) -> generate. Waking the
    weights before the KV cache keeps the memory peak of the sync low; the trainer keeps its own
    parameters and optimizer state on the device throughout.

    On GPU the engines use vLLM's sleep mode at ``cluster.engine_sleep_level``: level 1 moves the
    weights to CPU memory and frees the KV cache, level 2 frees both (the sync reloads the
    weights). On CPU vLLM has no sleep mode (vLLM refuses ``enable_sleep_mode`` on platforms
    other than CUDA/ROCm/XPU, and its CPU worker's ``sleep`` / ``wake_up`` only log a warning):
    the engine's scheduler is paused, its prefix cache dropped and its KV cache's pages given
    back to the operating system (the weights stay). The step's metrics say which happened:
    ``engine_paused`` 1, ``engine_memory_released`` 1 when memory was freed, with
    ``time/engine_sleep`` and ``time/engine_wake`` in seconds.

    ``engines`` is anything with ``sleep_engines(level) -> list[bool]`` (whether each engine
    released device memory) and ``wake_engines(tags)``: an :class:`EnginePool`.
    """

    def __init__(self, engines: Any, level: int) -> None:
        self.engines = engines
        self.level = level
        self.asleep = False

    def sleep(self) -> dict[str, float]:
        t0 = time.perf_counter()
        # Asleep before the call returns: an engine restarted during it must not be sent
        # weights while the others sleep (EnginePool._run); the sync after the update does.
        self.asleep = True
        released = list(self.engines.sleep_engines(self.level))
        return {
            "time/engine_sleep": time.perf_counter() - t0,
            "engine_paused": 1.0,
            "engine_memory_released": float(bool(released) and all(released)),
        }

    def _wake(self, tags: list[str] | None) -> float:
        t0 = time.perf_counter()
        self.engines.wake_engines(tags)
        if tags is None or "kv_cache" in tags:
            self.asleep = False
        return time.perf_counter() - t0

    def around_sync(self, sync: Callable[[], dict[str, float]]) -> dict[str, float]:
        """Run the weight sync between waking the engines' weights and their KV cache."""
        if not self.asleep:
            return dict(sync())
        seconds = self._wake(["weights"])
        out = dict(sync())
        seconds += self._wake(["kv_cache"])
        out["time/engine_wake"] = seconds
        return out

    def wake(self) -> float:
        """Wake everything (generation asked for while asleep, e.g. no sync after the step)."""
        return self._wake(None) if self.asleep else 0.0


# ---------------------------------------------------------------------------------------------
# generator


class EnginePool:
    """K engine actors behind the ``Generator`` interface.

    A step's prompts are split into K contiguous shards of whole prompts (a prompt's N rollouts
    stay on one engine: one request with ``n=N`` shares the prompt's prefix cache). A shard whose
    engine died is re-issued on a fresh engine that first receives the current weights; each
    restart is counted in :meth:`pop_metrics` and logged as a warning.
    """

    def __init__(self, cfg: ClusterConfig, placement: Placement, factory: Callable[[], Any]) -> None:
        import ray

        self.cfg = cfg
        self.placement = placement
        self.factory = factory
        self._cls: Any = ray.remote(EngineActor)
        self.engines: list[Any] = [self._start(j) for j in range(cfg.num_engines)]
        # Creation is asynchronous; wait for every engine to be up before the first step.
        ray.get([e.pid.remote() for e in self.engines], timeout=cfg.timeout_s)
        self.restarts = 0
        self._events: dict[str, float] = {}
        self.sync: WeightSync | None = None
        self.pause: EnginePause | None = None  # colocated placement (set by DistributedParts)
        # Tensor-parallel engines: their vLLM workers, not the engine actors, receive weights.
        self.via_workers = bool(placement.engine_setup(0)[0].get("worker_extension_cls"))

    def _start(self, j: int) -> Any:
        llm_kwargs, env = self.placement.engine_setup(j)
        options = self.placement.engine_options(j)
        return self._cls.options(max_restarts=0, **options).remote(j, self.factory, llm_kwargs, env)

    def _restart(self, j: int, exc: BaseException) -> None:
        import ray

        if self.restarts >= self.cfg.max_engine_restarts:
            raise WorkerLostError(
                f"engine actor {j} died ({type(exc).__name__}) after {self.restarts} restarts; "
                f"cluster.max_engine_restarts={self.cfg.max_engine_restarts} is spent"
            ) from exc
        self.restarts += 1
        self._events["engine_restarts"] = self._events.get("engine_restarts", 0) + 1
        log.warning("engine actor %d died (%s); restarting it and re-issuing its prompts", j, type(exc).__name__)
        try:
            ray.kill(self.engines[j], no_restart=True)
        except Exception:
            pass
        self.engines[j] = self._start(j)
        ray.get(self.engines[j].pid.remote(), timeout=self.cfg.timeout_s)
        if self.sync is not None:
            self.sync.engine_restarted(j)

    def _run(
        self,
        method: str,
        per_engine: list[tuple[tuple[Any, ...], dict[str, Any]] | None],
        actor_method: str = "call",
    ) -> list[Any]:
        """Call ``method`` of each engine's generator that has work (or, with ``actor_method``
        other than "call", that method of the engine actor itself); restart and re-issue on
        death."""
        import ray

        results: list[Any] = [None] * len(self.engines)
        todo = {j for j, w in enumerate(per_engine) if w is not None}
        while todo:
            refs = {}
            for j in sorted(todo):
                args, kwargs = per_engine[j]  # type: ignore[misc]
                if actor_method == "call":
                    refs[j] = self.engines[j].call.remote(method, *args, **kwargs)
                else:
                    refs[j] = getattr(self.engines[j], actor_method).remote(*args, **kwargs)
            failed: dict[int, BaseException] = {}
            for j, ref in refs.items():
                try:
                    results[j] = ray.get(ref, timeout=self.cfg.timeout_s)
                    todo.discard(j)
                except _system_errors() as exc:
                    failed[j] = exc
            for j, error in failed.items():
                self._restart(j, error)
            if failed and self.sync is not None and not (self.pause is not None and self.pause.asleep):
                # A restarted engine starts from the model on disk: give it the current weights
                # (while the engines sleep, the sync after the update does).
                self.sync.sync()
        return results

    # Generator interface --------------------------------------------------------------------

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Any, seed: int) -> Any:
        from brorl.train.interfaces import Rollouts

        t0 = time.perf_counter()
        if self.pause is not None and self.pause.asleep:
            self._events["time/engine_wake"] = self._events.get("time/engine_wake", 0.0) + self.pause.wake()
        k = len(self.engines)
        bounds = np.linspace(0, len(prompts), k + 1).round().astype(int)
        work: list[Any] = []
        for j in range(k):
            shard = [list(p) for p in prompts[bounds[j] : bounds[j + 1]]]
            # engine 0 keeps the run's seed: one engine gives exactly the single-machine rollouts
            work.append(((shard, n, sampling, shard_seed(seed, j)), {}) if shard else None)
        results = self._run("generate", work)
        parts = [(r, int(bounds[j])) for j, r in enumerate(results) if r is not None]
        batch = merge_batches([r.batch for r, _ in parts], [o for _, o in parts])
        texts = [t for r, _ in parts for t in r.texts]
        return Rollouts(batch=batch, texts=texts, seconds=time.perf_counter() - t0)

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Push weights held by the driver (the weight sync path avoids this copy)."""
        named = list(named_tensors)
        self._run("update_weights", [((named,), {})] * len(self.engines))

    def sync_from(self, learner: Any) -> dict[str, float]:
        """Weights of ``learner`` (the :class:`TrainerGroup`) into every engine, rank 0 to the
        engines directly; returns the sync's timing and size for the step's metrics."""
        assert self.sync is not None and self.sync.trainer is learner, "WeightSync not set up"
        if self.pause is not None:
            return self.pause.around_sync(self.sync.sync)
        return self.sync.sync()

    def sleep_engines(self, level: int) -> list[bool]:
        """Every engine releases its device memory (see :class:`EnginePause`); whether each did."""
        return [bool(r) for r in self._run("sleep", [((level,), {})] * len(self.engines), "sleep")]

    def wake_engines(self, tags: list[str] | None = None) -> None:
        self._run("wake_up", [((tags,), {})] * len(self.engines), "wake_up")

    def reset(self) -> None:
        self._run("reset", [((), {})] * len(self.engines))

    def close(self) -> None:
        import ray

        engines, self.engines = self.engines, []
        for e in engines:
            try:
                ray.get(e.call.remote("close"), timeout=60)
            except Exception:  # a dead engine has nothing left to close
                pass
            try:
                ray.kill(e, no_restart=True)
            except Exception:
                pass

    def pop_metrics(self) -> dict[str, float]:
        """Fault events since the last call (``engine_restarts``), for the step's metrics."""
        events, self._events = self._events, {}
        return events

    def pids(self) -> list[int]:
        import ray

        return ray.get([e.pid.remote() for e in self.engines])
