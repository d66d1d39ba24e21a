"""Driver-side stand-ins for the loop's ``Generator``, ``RewardFn`` and ``Learner`` that run the
single-machine implementations on a Ray cluster, with restarts of dead engines and reward
workers, and the weight sync between them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from brorl._core import RolloutBatch
from brorl.distributed import serde
from brorl.distributed.actors import EngineActor, TrainerRank
from brorl.distributed.config import ClusterConfig
from brorl.distributed.placement import Placement
from brorl.errors import TrainerRankLostError, WorkerLostError

__all__ = [
    "DistributedParts",
    "EnginePause",
    "EnginePool",
    "RewardPool",
    "TrainerGroup",
    "WeightSync",
    "merge_batches",
    "slice_rollouts",
    "split_groups",
    "sync_ranks",
]

log = logging.getLogger("brorl.distributed")

# Seeds of engines after the first are spread far apart so K engines never share a stream, and
# engine 0 keeps the run's seed: one engine gives exactly the single-machine rollouts.
_SEED_STRIDE = 1_000_003


def _system_errors() -> tuple[type[BaseException], ...]:
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


def _alive(actor: Any, timeout_s: float = 30.0) -> bool:
    """Whether an actor still answers (a cheap call queued behind nothing long)."""
    import ray

    try:
        ray.get(actor.pid.remote(), timeout=timeout_s)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# rollout slicing (pure)


def split_groups(batch: RolloutBatch, groups_per_chunk: int) -> list[tuple[int, int]]:
    """Rollout ranges ``[start, end)`` covering whole prompt groups, ``groups_per_chunk`` each."""
    sizes = batch.group_sizes
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for g in range(0, len(sizes), groups_per_chunk):
        out.append((int(bounds[g]), int(bounds[min(g + groups_per_chunk, len(sizes))])))
    return out


def slice_rollouts(batch: RolloutBatch, start: int, end: int) -> tuple[RolloutBatch, list[int]]:
    """Rollouts ``start:end`` as a batch whose prompt indices are renumbered 0.. in order of
    appearance, and the original prompt index of each new one."""
    pidx = batch.prompt_index[start:end]
    order, first = np.unique(pidx, return_index=True)
    originals = [int(p) for p in order[np.argsort(first)]]
    remap = {p: i for i, p in enumerate(originals)}
    new_pidx = np.array([remap[int(p)] for p in pidx], dtype=np.int64)
    off = batch.offsets
    t0, t1 = int(off[start]), int(off[end])
    lp = batch.logprobs
    rw = batch.rewards
    sub = RolloutBatch(
        new_pidx,
        batch.token_ids[t0:t1],
        off[start : end + 1] - t0,
        None if lp is None else lp[t0:t1],
        None if rw is None else rw[start:end],
        batch.truncated[start:end],
    )
    return sub, originals


def merge_batches(parts: Sequence[RolloutBatch], prompt_offsets: Sequence[int]) -> RolloutBatch:
    """Concatenate per-engine batches, shifting each one's prompt indices by its shard start."""
    pidx = np.concatenate([p.prompt_index + o for p, o in zip(parts, prompt_offsets)])
    tokens = np.concatenate([p.token_ids for p in parts])
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    has_lp = all(p.logprobs is not None for p in parts)
    has_rw = all(p.rewards is not None for p in parts)
    return RolloutBatch(
        pidx.astype(np.int64),
        tokens,
        offsets,
        np.concatenate([p.logprobs for p in parts]) if has_lp else None,
        np.concatenate([p.rewards for p in parts]) if has_rw else None,
        np.concatenate([p.truncated for p in parts]),
    )


# ---------------------------------------------------------------------------------------------
# learner


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


# ---------------------------------------------------------------------------------------------
# colocated placement: engines sleep while the ranks train


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
    the engine's scheduler is paused and its prefix cache dropped, and no memory is freed. The
    step's metrics say which happened: ``engine_paused`` 1, ``engine_memory_released`` 1 on GPU
    and 0 on CPU, with ``time/engine_sleep`` and ``time/engine_wake`` in seconds.

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
            work.append(((shard, n, sampling, seed + _SEED_STRIDE * j), {}) if shard else None)
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


# ---------------------------------------------------------------------------------------------
# weight sync


def sync_ranks(num_engines: int, workers_per_engine: int) -> tuple[list[int], int]:
    """``(first_rank[j], world_size)`` of the weight-sync group: trainer rank 0 is rank 0, and
    engine j's workers (``workers_per_engine`` of them, its tensor-parallel size) follow."""
    first = [1 + j * workers_per_engine for j in range(num_engines)]
    return first, 1 + num_engines * workers_per_engine


class WeightSync:
    """Trainer rank 0 -> engines after every optimizer step (see :mod:`weight_sync`)."""

    def __init__(
        self,
        cfg: ClusterConfig,
        trainer: TrainerGroup,
        engines: EnginePool,
        backend: str,
        device: str,
        weights_method: str = "named_weights",
        load_method: str = "update_weights",
    ) -> None:
        import ray

        self.cfg = cfg
        self.trainer = trainer
        self.engines = engines
        self.backend = backend
        self.device = device
        self.weights_method = weights_method
        self.load_method = load_method
        bucket_bytes = max(1, int(cfg.sync_bucket_mb * 2**20))
        self.plan = ray.get(
            trainer.ranks[0].weight_plan.remote(weights_method, bucket_bytes), timeout=cfg.timeout_s
        )
        self.total_bytes = sum(b.nbytes for b in self.plan)
        self._group_ok = False
        self.last: dict[str, float] = {}
        engines.sync = self

    def engine_restarted(self, j: int) -> None:
        # A broadcast group cannot replace a member: build a new one at the next sync.
        self._group_ok = False

    def _init_group(self) -> None:
        import ray

        from brorl.distributed.actors import free_port  # noqa: F401  (port chosen on rank 0's node)

        rank0 = self.trainer.ranks[0]
        host, port = ray.get(rank0.address.remote(), timeout=self.cfg.timeout_s)
        first, world = sync_ranks(len(self.engines.engines), self.cfg.engine_tensor_parallel)
        refs = [rank0.init_sync_group.remote(host, port, world, self.backend, self.cfg.timeout_s)]
        refs += [
            e.init_sync_group.remote(host, port, first[j], world, self.backend, self.cfg.timeout_s)
            for j, e in enumerate(self.engines.engines)
        ]
        ray.get(refs, timeout=self.cfg.timeout_s)
        self._group_ok = True

    def sync(self) -> dict[str, float]:
        """Send the current weights to every engine; returns timing for the step's metrics.

        If a participant died during the sync: a dead trainer rank 0 stops the run
        (:class:`TrainerRankLostError`); dead engines are restarted and the sync is redone once.
        """
        try:
            return self._sync_once()
        except WorkerLostError as exc:
            rank0 = self.trainer.ranks[0]
            if not _alive(rank0):
                self.trainer.kill()
                raise TrainerRankLostError(
                    "trainer rank 0 died during the weight sync; the run is stopped. "
                    + self.trainer._resume_message()
                ) from exc
            dead = [j for j, e in enumerate(self.engines.engines) if not _alive(e)]
            if not dead:
                raise
            for j in dead:
                self.engines._restart(j, exc.__cause__ or exc)
            return self._sync_once()

    def _sync_once(self) -> dict[str, float]:
        import ray

        t0 = time.perf_counter()
        rank0 = self.trainer.ranks[0]
        engines = self.engines.engines
        try:
            if self.cfg.placement == "colocated":
                # Tensor-parallel engines' workers fetch the references from rank 0 itself.
                keep = self.engines.via_workers
                refs = ray.get(
                    rank0.put_weights.remote(self.weights_method, self.plan, keep), timeout=self.cfg.timeout_s
                )
                try:
                    ray.get(
                        [e.receive_objects.remote(self.load_method, self.plan, refs, rank0) for e in engines],
                        timeout=self.cfg.timeout_s,
                    )
                finally:
                    if keep:
                        rank0.release_weights.remote()
                max_bucket = max((b.nbytes for b in self.plan), default=0)
                del refs
            else:
                if not self._group_ok:
                    self._init_group()
                recv_device = "cuda" if self.device == "gpu" else "cpu"
                send = rank0.broadcast_weights.remote(self.weights_method, self.plan)
                recvs = [e.receive_broadcast.remote(self.load_method, self.plan, recv_device) for e in engines]
                stats = ray.get(send, timeout=self.cfg.timeout_s)
                ray.get(recvs, timeout=self.cfg.timeout_s)
                max_bucket = stats["max_bucket_bytes"]
        except Exception as exc:
            # A dead participant shows as a Ray error on its own call and as a gloo/NCCL error on
            # the others'; either way the group is gone. sync() decides what to restart.
            self._group_ok = False
            raise WorkerLostError(f"weight sync failed ({type(exc).__name__}: {exc})") from exc
        seconds = time.perf_counter() - t0
        self.last = {
            "weight_sync_s": seconds,
            "weight_sync_mb": self.total_bytes / 2**20,
            "weight_sync_buckets": float(len(self.plan)),
            "weight_sync_max_bucket_mb": max_bucket / 2**20,
        }
        log.info(
            "weight sync (%s): %.1f MiB in %d buckets to %d engines in %.3fs",
            self.cfg.placement,
            self.total_bytes / 2**20,
            len(self.plan),
            len(engines),
            seconds,
        )
        return self.last


# ---------------------------------------------------------------------------------------------
# rewards

_REWARD_FNS: dict[str, Any] = {}  # per worker process: reward functions already built


def _score_chunk(key: str, factory: Callable[[], Any], rollouts: Any, prompts: list[Any]) -> np.ndarray:
    serde.register()
    fn = _REWARD_FNS.get(key)
    if fn is None:
        fn = _REWARD_FNS[key] = factory()
    return np.asarray(fn(rollouts, prompts), dtype=np.float32)


class RewardPool:
    """The single-machine reward function as Ray tasks over chunks of whole prompt groups.

    ``factory`` builds the reward function inside each worker once (verifiers may hold
    processes or Rust state that should not be pickled per task). A task whose worker died is
    re-issued (``cluster.max_reward_retries`` times per chunk), counted in :meth:`pop_metrics`;
    an exception raised by the reward function itself is a bug and propagates.
    """

    def __init__(self, cfg: ClusterConfig, factory: Callable[[], Any]) -> None:
        import uuid

        import ray

        self.cfg = cfg
        self.factory_ref = ray.put(factory)
        self.key = uuid.uuid4().hex
        self._task = ray.remote(_score_chunk).options(
            num_cpus=cfg.cpus_per_reward_task, max_retries=0, name="brorl_reward"
        )
        self._events: dict[str, float] = {}

    def __call__(self, rollouts: Any, prompts: Sequence[Any]) -> np.ndarray:
        import ray

        from brorl.train.interfaces import Rollouts

        batch = rollouts.batch
        chunks = []
        for start, end in split_groups(batch, self.cfg.reward_prompts_per_task):
            sub, originals = slice_rollouts(batch, start, end)
            sub_rollouts = Rollouts(batch=sub, texts=list(rollouts.texts[start:end]), seconds=0.0)
            chunks.append(((start, end), sub_rollouts, [prompts[p] for p in originals]))
        rewards = np.zeros(batch.n_rollouts, dtype=np.float32)
        attempts = [0] * len(chunks)
        refs = {i: self._task.remote(self.key, self.factory_ref, c[1], c[2]) for i, c in enumerate(chunks)}
        while refs:
            done, _ = ray.wait(list(refs.values()), num_returns=1, timeout=self.cfg.timeout_s)
            if not done:
                raise WorkerLostError(
                    f"reward tasks did not finish within cluster.timeout_s={self.cfg.timeout_s:g}s"
                )
            i = next(k for k, v in refs.items() if v == done[0])
            del refs[i]
            (start, end), sub_rollouts, sub_prompts = chunks[i]
            try:
                rewards[start:end] = ray.get(done[0])
            except _system_errors() as exc:
                attempts[i] += 1
                if attempts[i] > self.cfg.max_reward_retries:
                    raise WorkerLostError(
                        f"reward task for rollouts {start}:{end} lost its worker "
                        f"{attempts[i]} times (cluster.max_reward_retries="
                        f"{self.cfg.max_reward_retries})"
                    ) from exc
                self._events["reward_task_retries"] = self._events.get("reward_task_retries", 0) + 1
                log.warning(
                    "reward worker died (%s) scoring rollouts %d:%d; re-issuing the task",
                    type(exc).__name__, start, end,
                )
                refs[i] = self._task.remote(self.key, self.factory_ref, sub_rollouts, sub_prompts)
        return rewards

    def pop_metrics(self) -> dict[str, float]:
        events, self._events = self._events, {}
        return events


# ---------------------------------------------------------------------------------------------
# assembly


class DistributedParts:
    """The loop's three parts placed on a Ray cluster, plus what is needed to tear them down.

    ``generator.sync_from(learner)`` replaces the single-machine
    ``generator.update_weights(learner.named_weights())``: the weights go from trainer rank 0
    straight to the engines instead of through the driver.
    """

    def __init__(
        self,
        cfg: ClusterConfig,
        *,
        generator_factory: Callable[[], Any],
        reward_factory: Callable[[], Any],
        learner_factory: Callable[[], Any],
        resume_hint: str | Callable[[], str] = "",
    ) -> None:
        from brorl.distributed import cluster
        from brorl.distributed.placement import create_placement

        self.cfg = cfg
        self.started = cluster.connect(cfg)
        self.placement: Placement | None = None
        self.learner: TrainerGroup | None = None
        self.generator: EnginePool | None = None
        self.pause: EnginePause | None = None
        try:
            self.device = cluster.resolve_device(cfg)
            self.backend = "nccl" if self.device == "gpu" else "gloo"
            self.placement = create_placement(cfg, self.device, timeout_s=min(cfg.timeout_s, 600.0))
            # Ranks first: their set-up (DeepSpeed's first op build) and the engines' start-up
            # then overlap only as far as the cluster's CPUs allow.
            self.learner = TrainerGroup(cfg, self.placement, learner_factory, self.backend, resume_hint)
            self.generator = EnginePool(cfg, self.placement, generator_factory)
            self.reward_fn = RewardPool(cfg, reward_factory)
            self.sync = WeightSync(cfg, self.learner, self.generator, self.backend, self.device)
            if cfg.placement == "colocated":
                self.pause = EnginePause(self.generator, cfg.engine_sleep_level)
                self.learner.pause = self.generator.pause = self.pause
        except BaseException:
            self.close()
            raise

    def pop_metrics(self) -> dict[str, float]:
        """Fault events of the step (engine restarts, re-issued reward tasks); the loop adds
        them to the step's metrics so a recovered failure is visible in metrics.jsonl."""
        out: dict[str, float] = {}
        if self.generator is not None:
            out.update(self.generator.pop_metrics())
        out.update(self.reward_fn.pop_metrics())
        return out

    def close(self) -> None:
        from brorl.distributed import cluster

        try:
            if self.generator is not None:
                self.generator.close()
            if self.learner is not None:
                try:
                    self.learner.close()
                except Exception:  # the ranks may be gone already (TrainerRankLostError)
                    self.learner.kill()
            if self.placement is not None:
                from ray.util.placement_group import remove_placement_group

                try:
                    remove_placement_group(self.placement.group)
                except Exception:
                    pass
        finally:
            cluster.disconnect(self.started)
