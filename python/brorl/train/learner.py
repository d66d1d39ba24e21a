"""The DeepSpeed learner: PPO updates with ZeRO stage 2 or 3, gloo on CPU and NCCL on GPU.

One :meth:`DeepSpeedLearner.train_step` = ``mini_batches`` optimizer steps over a
:class:`~brorl.train.interfaces.TrainBatch`. :func:`plan_mini_batches` splits the step into
mini-batches of whole groups, merges identical rollouts and packs each mini-batch with the Rust
core (``RolloutBatch.pack``) into micro-batches under a token budget, per data-parallel rank,
so N=512 never needs all sequences in memory at once. Every rank gets the same number of
micro-batches; a rank with fewer rows runs zero-loss placeholders, because ZeRO-2 reduces
gradients in every backward and ZeRO-3 gathers parameters in every forward, and the ranks' calls
must line up. Reference log-probs (and old log-probs when there is more than one mini-batch)
are computed on the same micro-batches. :func:`mini_batch_backward` runs one mini-batch's
micro-batches: the loss is :func:`brorl.train.losses.policy_loss` with the aggregation named in
the config and the mini-batch's global token (or sequence) count as denominator, so
accumulation over micro-batches and ranks gives exactly the mini-batch loss. That path has no
DeepSpeed in it; tests/test_train_reference.py checks it against the papers' equations.

World size 1 runs in-process (the process group is created from MASTER_ADDR/PORT, RANK,
WORLD_SIZE, LOCAL_RANK, filled in when absent); world size 2+ comes from ``torchrun``.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brorl.errors import ConfigError
from brorl.train import lora
from brorl.train import losses as L
from brorl.train.interfaces import TrainBatch

__all__ = [
    "DeepSpeedLearner", "init_distributed", "micro_batch_tensors", "distinct_rollouts", "MicroBatch", "MiniBatch",
    "plan_mini_batches", "forward_logprobs", "check_train_batch", "micro_batch_loss", "mini_batch_backward",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_distributed(backend: str = "auto") -> tuple[int, int]:
    """Create the default process group if there is none (world size 1 when not launched by
    torchrun). Returns (rank, world_size)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        # DeepSpeed JIT-builds a small comm op with ninja; a venv's ninja is only on PATH when
        # the venv is activated, so make the interpreter's bin directory visible.
        bindir = os.path.dirname(sys.executable)
        if os.path.exists(os.path.join(bindir, "ninja")) and bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        for k, v in (("MASTER_ADDR", "127.0.0.1"), ("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
            os.environ.setdefault(k, v)
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        import deepspeed
        import deepspeed.ops

        if os.environ["WORLD_SIZE"] == "1":
            # One rank never communicates: skip DeepSpeed's shared-memory all-reduce op for
            # CPU ranks, a C++ build of 1-2 minutes on a fresh machine (85 s of CPU here).
            compatible = getattr(deepspeed.ops, "__compatible_ops__", None)
            if isinstance(compatible, dict):
                compatible["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
        global _OWNS_GROUP
        _OWNS_GROUP = True
    return dist.get_rank(), dist.get_world_size()


_OWNS_GROUP = False


def release_distributed() -> None:
    """Tear down the process group this process created (and the groups vLLM and DeepSpeed
    cached on it), so a later job in the same process starts clean. A group created by the
    caller (e.g. torchrun's script) is left alone."""
    global _OWNS_GROUP
    if not _OWNS_GROUP:
        return
    import torch.distributed as dist

    if "vllm" in sys.modules:
        try:
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception:  # noqa: BLE001 - best effort: the group is destroyed below anyway
            pass
    if dist.is_initialized():
        dist.destroy_process_group()
    try:
        from deepspeed.utils import groups

        groups._release_process_group_references(None)
    except Exception:  # noqa: BLE001 - older DeepSpeed without the helper
        pass
    _OWNS_GROUP = False


def micro_batch_tensors(
    rows: np.ndarray, batch: TrainBatch, token_adv: np.ndarray, pad_id: int
) -> dict[str, Any]:
    """Right-padded tensors of the rollouts ``rows`` (indices into ``batch.rollouts``).

    Returns ``input_ids``/``attention_mask`` ``[B, P+T]`` (prompt then response), the
    response ``targets``/``mask``/``adv``/``engine_logp`` ``[B, T]``, ``resp_start [B]``
    (index of the first response token) and ``prompt_of [B]``.

    No rows (a padding bin of the packer) gives one placeholder row: a single pad token with
    an all-zero response mask and ``prompt_of`` -1. It runs through the same forward and
    backward as a real micro-batch and contributes exactly zero loss and gradient, so every
    rank makes the same sequence of collective calls (ZeRO-2 reduces gradients in every
    backward; ZeRO-3 also gathers parameters in every forward).
    """
    import torch

    if len(rows) == 0:
        zeros = torch.zeros((1, 1), dtype=torch.float32)
        return {
            "input_ids": torch.full((1, 1), pad_id, dtype=torch.long), "attention_mask": torch.ones((1, 1), dtype=torch.long),
            "targets": torch.zeros((1, 1), dtype=torch.long), "mask": zeros, "adv": zeros.clone(),
            "engine_logp": zeros.clone(), "resp_start": torch.tensor([1]), "resp_len": torch.tensor([0]),
            "prompt_of": torch.tensor([-1]),
        }
    ro = batch.rollouts
    off = ro.offsets
    toks = ro.token_ids
    elp = ro.logprobs
    pidx = ro.prompt_index
    seqs, starts, lens = [], [], []
    for i in rows.tolist():
        p = list(batch.prompt_token_ids[pidx[i]])
        r = toks[off[i] : off[i + 1]].tolist()
        seqs.append(p + r)
        starts.append(len(p))
        lens.append(len(r))
    b = len(seqs)
    width = max(len(s) for s in seqs)
    t = max(max(lens), 1)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    att = torch.zeros((b, width), dtype=torch.long)
    targets = torch.zeros((b, t), dtype=torch.long)
    mask = torch.zeros((b, t), dtype=torch.float32)
    adv = torch.zeros((b, t), dtype=torch.float32)
    elogp = torch.zeros((b, t), dtype=torch.float32)
    for j, (s, st, n, i) in enumerate(zip(seqs, starts, lens, rows.tolist())):
        input_ids[j, : len(s)] = torch.tensor(s)
        att[j, : len(s)] = 1
        if n:
            targets[j, :n] = torch.tensor(s[st:])
            mask[j, :n] = 1.0
            adv[j, :n] = torch.from_numpy(token_adv[off[i] : off[i + 1]])
            if elp is not None:
                elogp[j, :n] = torch.from_numpy(elp[off[i] : off[i + 1]])
    return {
        "input_ids": input_ids, "attention_mask": att, "targets": targets, "mask": mask, "adv": adv,
        "engine_logp": elogp, "resp_start": torch.tensor(starts), "resp_len": torch.tensor(lens),
        "prompt_of": torch.from_numpy(pidx[rows]),
    }


def distinct_rollouts(
    group_of: np.ndarray, advantages: np.ndarray, token_ids: np.ndarray, offsets: np.ndarray, sel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge identical rollouts of the selection ``sel`` (rollout indices).

    Two rollouts are identical when they belong to the same group, got the same advantage and
    sampled the same tokens; their loss terms then differ only by the engine's log-probs (the
    IS weight), which the caller keeps per copy. Returns ``(distinct, owner, counts)``:
    ``distinct`` the first rollout of each distinct sequence (in ``sel`` order), ``owner[k]``
    the position in ``distinct`` of ``sel[k]``, ``counts`` the copies of each.
    """
    index: dict[tuple[int, float, bytes], int] = {}
    distinct: list[int] = []
    owner = np.empty(len(sel), dtype=np.int64)
    for k, i in enumerate(sel.tolist()):
        key = (int(group_of[i]), float(advantages[i]), token_ids[offsets[i] : offsets[i + 1]].tobytes())
        j = index.get(key)
        if j is None:
            j = index[key] = len(distinct)
            distinct.append(i)
        owner[k] = j
    counts = np.bincount(owner, minlength=len(distinct)).astype(np.int64)
    return np.asarray(distinct, dtype=np.int64), owner, counts


def member_engine_logp(member_rows: list[int], batch: TrainBatch, t_len: int) -> Any:
    """Engine log-probs of the rollouts ``member_rows``, right-padded to ``[M, t_len]``."""
    import torch

    ro = batch.rollouts
    off, elp = ro.offsets, ro.logprobs
    out = torch.zeros((len(member_rows), t_len), dtype=torch.float32)
    if elp is None:
        return out
    for j, i in enumerate(member_rows):
        n = int(off[i + 1] - off[i])
        if n:
            out[j, :n] = torch.from_numpy(elp[off[i] : off[i + 1]])
    return out


def _response_logits(logits: Any, resp_start: Any, t: int) -> Any:
    """Logits that predict each response token: ``[B, L, V]`` -> ``[B, t, V]`` (position
    ``resp_start - 1 + k`` predicts response token ``k``)."""
    import torch

    b = logits.shape[0]
    pos = (resp_start.unsqueeze(1) - 1 + torch.arange(t).unsqueeze(0)).clamp(max=logits.shape[1] - 1)
    return logits[torch.arange(b).unsqueeze(1), pos]


def check_train_batch(batch: TrainBatch, a: Any) -> None:
    """Refuse a batch the configured update cannot use: truncated IS needs the engine's
    log-probs of every sampled token (without them the weight would silently be exp(old - 0))."""
    if a.tis and batch.rollouts.logprobs is None:
        raise ConfigError(
            "algorithm.tis = true: the batch has no engine log-probs (rollouts.logprobs is None), so the "
            "IS weight cannot be formed; use an engine that returns them or set algorithm.tis=false"
        )


@dataclass
class MicroBatch:
    """One rank's micro-batch: ``rows`` are the rollouts run through the model (empty for a
    padding bin, see :func:`micro_batch_tensors`); with duplicate merging ``members[j]`` are
    the rollouts row ``j`` stands for (itself and its identical copies)."""

    rows: np.ndarray
    members: list[list[int]] | None = None


@dataclass
class MiniBatch:
    """One optimizer step: ``sel`` every rollout of the mini-batch (all ranks), ``micro`` this
    rank's micro-batches (the same count on every rank), and the mini-batch's response tokens
    and sequences over all ranks (the loss denominators)."""

    sel: np.ndarray
    micro: list[MicroBatch]
    total_tokens: float
    total_seqs: float


def plan_mini_batches(
    batch: TrainBatch, mini_batches: int, micro_batch_tokens: int, merge: bool, rank: int, world: int
) -> list[MiniBatch]:
    """Split the step's groups into ``mini_batches`` mini-batches of whole groups, merge
    identical rollouts (``merge``) and pack each mini-batch into this rank's micro-batches.

    Every rank computes the same plan from the same batch; the packer gives every rank the
    same number of bins (padding with empty ones), and empty bins are kept, so all ranks make
    the same number of forward/backward calls per mini-batch.
    """
    from brorl._core import RolloutBatch

    ro = batch.rollouts
    group_of = np.repeat(np.arange(ro.n_groups), ro.group_sizes)
    per_mini = math.ceil(ro.n_groups / mini_batches)
    plen = np.asarray([len(batch.prompt_token_ids[p]) for p in ro.prompt_index.tolist()], dtype=np.int64)
    plans = []
    for m in range(mini_batches):
        sel = np.flatnonzero((group_of >= m * per_mini) & (group_of < (m + 1) * per_mini))
        if not len(sel):
            continue  # the same on every rank: the batch is identical everywhere
        members_of: dict[int, list[int]] = {}
        rows = sel
        if merge:
            rows, owner, _ = distinct_rollouts(group_of, batch.advantages, ro.token_ids, ro.offsets, sel)
            for k, i in enumerate(sel.tolist()):
                members_of.setdefault(int(rows[owner[k]]), []).append(i)
        lengths = ro.response_lengths[rows]
        # The packer only looks at lengths: a batch of the selected rows' shapes is enough.
        shape_only = RolloutBatch(
            ro.prompt_index[rows], np.zeros(int(lengths.sum()), dtype=np.int32),
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        )
        packed = shape_only.pack(micro_batch_tokens, n_ranks=world, prompt_lengths=plen[rows])
        micro = [
            MicroBatch(rows[mb], [members_of[i] for i in rows[mb].tolist()] if merge else None)
            for mb in packed[rank]
        ]
        plans.append(MiniBatch(sel, micro, float(ro.response_lengths[sel].sum()), float(len(sel))))
    return plans


def forward_logprobs(
    model: Any, t: dict[str, Any], *, temperature: float, device: Any, grad: bool, entropy_grad: bool = False,
    can_trim_logits: bool = False, logits_chunk_tokens: int = 0,
) -> tuple[Any, Any, Any]:
    """Sampled-token log-probs ``[B, T]``, entropy ``[B, T]`` and the next-token
    distribution at the first response position ``[B, V]`` (for the theory metric).

    The entropy keeps its graph when ``entropy_grad`` (an entropy bonus needs d entropy /
    d logits); otherwise it is computed without one, as a metric. ``logits_chunk_tokens`` > 0
    computes both from the final hidden states a chunk of tokens at a time
    (:mod:`brorl.train.chunked_logprobs`), never the full ``[tokens, vocabulary]`` logits;
    models not of the plain ``lm_head(hidden)`` form take the full-logits path.
    """
    import torch

    ctx = torch.enable_grad() if grad else torch.no_grad()
    if logits_chunk_tokens > 0:
        from brorl.train.chunked_logprobs import response_logprobs

        module = getattr(model, "module", model)  # the DeepSpeed engine wraps the HF model
        with ctx:
            res = response_logprobs(
                module, t["input_ids"], t["attention_mask"], t["resp_start"], t["targets"], t["mask"],
                temperature=temperature, chunk_tokens=logits_chunk_tokens,
            )
        if res is not None:
            logp, ent, first = res
            if not (grad and entropy_grad):
                ent = ent.detach()
            return logp.cpu(), ent.cpu(), first.cpu()
    starts = t["resp_start"]
    kw: dict[str, Any] = {}
    width = t["input_ids"].shape[1]
    if can_trim_logits:
        # keep the positions from the earliest response start on (int: the last k)
        first_kept = max(int(starts.min()) - 1, 0)
        kw["logits_to_keep"] = width - first_kept
        starts = starts - first_kept
    with ctx:
        out = model(input_ids=t["input_ids"].to(device), attention_mask=t["attention_mask"].to(device), use_cache=False, **kw)
        t_len = t["targets"].shape[1]
        logits = _response_logits(out.logits.float(), starts.to(device), t_len) / temperature
        logp = L.token_logprobs(logits, t["targets"].to(device)).cpu()
        if grad and entropy_grad:
            ent = L.entropy_from_logits(logits).cpu()
        else:
            with torch.no_grad():
                ent = L.entropy_from_logits(logits.detach()).cpu()
        with torch.no_grad():
            first = torch.softmax(logits[:, 0].detach(), dim=-1).cpu()
    return logp, ent, first


def micro_batch_loss(
    mb: MicroBatch, t: dict[str, Any], logp: Any, ent: Any, old: Any, ref_lp: Any, batch: TrainBatch, a: Any,
    mini: MiniBatch, world: int,
) -> tuple[Any, dict[str, float]]:
    """This rank's share of the mini-batch objective from one micro-batch.

    The denominators are the mini-batch's totals over all ranks divided by the world size:
    DeepSpeed averages gradients over ranks, so the average of the ranks' sums is the
    mini-batch loss. Returns the loss (with graph) and float metrics of the same scale.
    """
    import torch

    tokens = max(mini.total_tokens, 1.0) / world
    seqs = max(mini.total_seqs, 1.0) / world
    cnt = tis_w = None
    if mb.members is not None:
        rows = mb.rows.tolist()
        # a placeholder row stands for no rollout: count 0
        cnt = torch.tensor([len(m) for m in mb.members], dtype=torch.float32) if rows else torch.zeros(1)
        member_rows = [m for ms in mb.members for m in ms]
        member_owner = torch.tensor([j for j, ms in enumerate(mb.members) for _ in ms], dtype=torch.long)
        member_elp = member_engine_logp(member_rows, batch, t["mask"].shape[1])
        if a.tis:
            tis_w = L.duplicate_tis_weights(old, member_elp, member_owner, a.tis_low, a.tis_high)
        mismatch = ((old[member_owner] - member_elp).abs() * t["mask"][member_owner]).sum()
    else:
        mismatch = ((old - t["engine_logp"]).abs() * t["mask"]).sum()
    loss, met = L.policy_loss(
        logp, old, ref_lp, t["engine_logp"] if a.tis else None, t["adv"], t["mask"],
        clip_low=a.clip_low, clip_high=a.clip_high, loss_agg=a.loss_agg, kl_coef=a.kl_coef,
        kl_estimator=a.kl_estimator, kl_clamp=a.kl_clamp,
        tis_low=a.tis_low if a.tis else None, tis_high=a.tis_high if a.tis else None,
        entropy=ent, entropy_coef=a.entropy_coef, total_tokens=tokens, total_seqs=seqs,
        counts=cnt, tis_weight=tis_w, dual_clip=a.dual_clip or None, log_ratio_clamp=a.log_ratio_clamp,
    )
    out = {k: float(v) for k, v in met.items()}
    out["loss"] = float(loss.detach())
    # engine-vs-trainer mismatch of the sampled tokens (what TIS corrects), per token
    out["logp_mismatch"] = float(mismatch) / tokens
    return loss, out


def mini_batch_backward(
    policy: Any, ref: Any, mini: MiniBatch, batch: TrainBatch, token_adv: np.ndarray, a: Any, world: int,
    old_cache: dict[int, Any], backward: Any, logprobs: Any, pad_id: int,
    first_probs: dict[int, Any] | None = None, ref_logprobs: Any = None,
) -> dict[str, float]:
    """Forward and backward of every micro-batch of this rank's share of ``mini``; returns the
    summed metrics (this rank's partial mini-batch values).

    ``logprobs(model, t, grad, entropy_grad)`` is :func:`forward_logprobs` bound to the
    learner's device and temperature; ``backward(loss, last)`` back-propagates (``last``: the
    mini-batch's final micro-batch). ``old_cache`` maps rollout -> old log-probs ``[T]``
    (empty: the policy has not moved since sampling, old = current, detached).
    """
    sums: dict[str, float] = {}
    for k, mb in enumerate(mini.micro):
        t = micro_batch_tensors(mb.rows, batch, token_adv, pad_id)
        logp, ent, first = logprobs(policy, t, grad=True, entropy_grad=a.entropy_coef > 0)
        # Reference log-probs on the same micro-batch (KL is logged even when kl_coef=0).
        # a LoRA policy has no reference copy: ref_logprobs runs it with its adapters disabled
        ref_lp = ref_logprobs(t) if ref_logprobs is not None else logprobs(ref, t, grad=False)[0]
        if old_cache and len(mb.rows):
            import torch

            old = torch.stack([old_cache[i] for i in mb.rows.tolist()])
        else:
            old = logp.detach()
        loss, met = micro_batch_loss(mb, t, logp, ent, old, ref_lp, batch, a, mini, world)
        backward(loss, k == len(mini.micro) - 1)
        for key, v in met.items():
            sums[key] = sums.get(key, 0.0) + v
        if first_probs is not None:
            for j, p in enumerate(t["prompt_of"].tolist()):
                if p >= 0 and p not in first_probs:
                    first_probs[p] = first[j]
    return sums


class DeepSpeedLearner:
    """A :class:`brorl.train.interfaces.Learner` on DeepSpeed (see module docstring)."""

    def __init__(self, model_path: str | Path, cfg: Any, lr: float, total_optimizer_steps: int, seed: int = 0) -> None:
        import deepspeed
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        a = cfg.algorithm
        self.rank, self.world = init_distributed(cfg.deepspeed.backend)
        torch.manual_seed(seed)
        dtype = getattr(torch, cfg.model.dtype)
        self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else torch.device("cpu")
        tok = AutoTokenizer.from_pretrained(model_path)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            # from_pretrained leaves the model in eval mode, where transformers skips the
            # checkpointing; switch on only the checkpointed layers' own flag, so dropout (and
            # anything else that reads .training) stays as in eval mode, like the engine's model.
            for m in model.modules():
                if getattr(m, "gradient_checkpointing", False) is True:
                    m.training = True
        self.lora = lora.enabled(cfg.model.lora)
        if self.lora:
            # only adapters train; the reference is this model with its adapters disabled
            model = lora.wrap(model, cfg.model.lora)
            self.ref = None
        else:
            # The reference policy: a frozen copy, reset to the current weights every K steps.
            self.ref = copy.deepcopy(model).to(self.device).eval()
            for p in self.ref.parameters():
                p.requires_grad_(False)
        # Models that can skip the prompt's logits: [B, L, V] floats dominate the update's
        # memory when the vocabulary is large (SmolLM2: 49k entries) and prompts are long.
        self._can_trim_logits = "logits_to_keep" in inspect.signature(lora.unwrap(model).forward).parameters
        o = cfg.optim
        opt = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )
        warm, total = o.warmup_steps, max(total_optimizer_steps, 1)

        def lr_lambda(step: int) -> float:
            if warm and step < warm:
                return (step + 1) / warm
            if o.scheduler == "cosine":
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(total - warm, 1))))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        ds_cfg = {
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": a.grad_clip if a.grad_clip > 0 else 0.0,
            "zero_optimization": {"stage": cfg.deepspeed.zero_stage,
                                  "reduce_bucket_size": cfg.deepspeed.bucket_elements,
                                  "allgather_bucket_size": cfg.deepspeed.bucket_elements,
                                  **({"offload_optimizer": {"device": "cpu"}} if cfg.deepspeed.offload_optimizer else {})},
            "bf16": {"enabled": cfg.model.dtype == "bfloat16"},
            "fp16": {"enabled": cfg.model.dtype == "float16"},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if cfg.deepspeed.offload_optimizer:
            ds_cfg["zero_force_ds_cpu_optimizer"] = False
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=opt, lr_scheduler=sched, config=ds_cfg
        )
        self.temperature = cfg.generation.temperature
        self.optimizer_steps = 0

    # -- the Learner interface -------------------------------------------------------------

    def train_step(self, batch: TrainBatch) -> dict[str, float]:
        import torch

        a = self.cfg.algorithm
        ro = batch.rollouts
        check_train_batch(batch, a)
        token_adv = ro.broadcast_to_tokens(batch.advantages.astype(np.float32))
        plans = plan_mini_batches(
            batch, a.mini_batches, self.cfg.deepspeed.micro_batch_tokens, self.cfg.deepspeed.merge_duplicates,
            self.rank, self.world,
        )
        # Old log-probs only differ from the current policy's after the first optimizer step of
        # this training step: the first mini-batch's are its current log-probs, detached (an
        # empty cache), so only the later mini-batches need this no-grad pass.
        # Every rank runs the same number of forwards (placeholders included): under ZeRO-3
        # each forward gathers parameters collectively.
        old_cache: dict[int, Any] = {}
        if len(plans) > 1:
            for mini in plans[1:]:
                for mb in mini.micro:
                    t = micro_batch_tensors(mb.rows, batch, token_adv, self.pad_id)
                    lp = self._logp(self.engine, t, grad=False)[0]
                    for j, i in enumerate(mb.rows.tolist()):
                        old_cache[i] = lp[j].clone()

        def backward(loss: Any, last: bool) -> None:
            self.engine.set_gradient_accumulation_boundary(last)
            self.engine.backward(loss)

        sums: dict[str, float] = {}
        first_probs: dict[int, Any] = {}
        grad_norms, n_micro, n_rows = [], 0, 0
        for m, mini in enumerate(plans):
            met = mini_batch_backward(
                self.engine, self.ref, mini, batch, token_adv, a, self.world, old_cache if m > 0 else {}, backward,
                self._logp,
                self.pad_id, first_probs, ref_logprobs=self._ref_logp if self.lora else None,
            )
            for key, v in met.items():
                sums[key] = sums.get(key, 0.0) + v
            n_micro += len(mini.micro)
            n_rows += sum(len(mb.rows) for mb in mini.micro)
            self.engine.step()
            self.optimizer_steps += 1
            gn = self.engine.get_global_grad_norm()
            if gn is not None:
                grad_norms.append(float(gn))
        n_minis = max(len(plans), 1)
        out = self._all_reduce_mean({k: v / n_minis for k, v in sums.items()})
        out["grad_norm"] = float(np.mean(grad_norms)) if grad_norms else float("nan")
        out["lr"] = float(self.scheduler.get_last_lr()[0]) if self.scheduler is not None else float("nan")
        out["micro_batches"] = float(n_micro)
        # rows run through the model (distinct sequences when merging), summed over ranks
        per_rank = np.asarray([[n_micro, n_rows]], dtype=np.float64)
        if self.world > 1:
            import torch.distributed as dist

            counts = torch.zeros((self.world, 2), dtype=torch.float64)
            counts[self.rank] = torch.from_numpy(per_rank[0])
            dist.all_reduce(counts)
            per_rank = counts.numpy()
            # every rank's own count: the packer gives each rank its balanced share of the step
            out.update({f"micro_batches/rank{r}": float(c) for r, c in enumerate(per_rank[:, 0].tolist())})
        out["rows_trained"] = float(per_rank[:, 1].sum())
        if first_probs:
            from brorl.theory import unsampled_second_moment

            probs = torch.stack([first_probs[p] for p in sorted(first_probs)])
            out["theory/unsampled_m2"] = float(unsampled_second_moment(probs, int(np.max(ro.group_sizes))))
        return out

    def named_weights(self) -> list[tuple[str, Any]]:
        """Full weights by HF name (gathered under ZeRO-3), detached copies on CPU; with LoRA
        the adapters merged in."""
        import deepspeed

        module = self.engine.module
        if self.lora:
            return lora.merged_named_weights(module, gather=self.cfg.deepspeed.zero_stage == 3)
        params = list(module.named_parameters())
        if self.cfg.deepspeed.zero_stage == 3:
            with deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None):
                return [(n, p.detach().clone().cpu()) for n, p in params]
        return [(n, p.detach().clone().cpu()) for n, p in params]

    def reset_reference(self, reset_optimizer: bool = False) -> None:
        """Copy the current weights into the reference policy. With ``reset_optimizer`` also
        reinitialise the optimizer state (ProRL's hard reset: Adam's moments and step count
        start from zero, as at the start of training; the learning-rate schedule goes on)."""
        import torch

        if self.lora:
            from brorl.errors import ConfigError

            raise ConfigError("algorithm.ref_reset_every: with model.lora the reference is the base model; use 0")

        current = dict(self.named_weights())
        with torch.no_grad():
            for n, p in self.ref.named_parameters():
                p.copy_(current[n].to(p.device, p.dtype))
        if reset_optimizer:
            self._reset_optimizer_state()

    def _reset_optimizer_state(self) -> None:
        """Zero every per-parameter optimizer state in place (moments and step count). Zeroing,
        rather than dropping the entries, keeps the state's layout that ZeRO partitions, saves
        and offloads; torch's AdamW treats step 0 as a fresh start (bias correction included)."""
        import torch

        zero_opt = self.engine.optimizer
        base = getattr(zero_opt, "optimizer", zero_opt)
        with torch.no_grad():
            for state in base.state.values():
                for key, v in state.items():
                    if torch.is_tensor(v):
                        v.zero_()
                    elif isinstance(v, (int, float)):
                        state[key] = type(v)(0)

    def save_checkpoint(self, path: Path) -> None:
        import torch

        path = Path(path)
        self.engine.save_checkpoint(str(path), tag="learner", client_state={"optimizer_steps": self.optimizer_steps},
                                    exclude_frozen_parameters=self.lora)
        if self.rank == 0:
            if self.lora:  # the adapters alone; the base model is the run's model.path
                lora.save_adapter(self.engine.module, path)
            else:
                torch.save(self.ref.state_dict(), path / "reference.pt")

    def load_checkpoint(self, path: Path) -> None:
        import torch

        path = Path(path)
        _, client = self.engine.load_checkpoint(str(path), tag="learner", load_optimizer_states=True,
                                                load_lr_scheduler_states=True, load_module_strict=not self.lora)
        self.optimizer_steps = int((client or {}).get("optimizer_steps", 0))
        if not self.lora:
            self.ref.load_state_dict(torch.load(path / "reference.pt", map_location=self.device))

    def close(self) -> None:
        import gc

        self.engine = None
        self.ref = None
        gc.collect()

    # -- helpers ------------------------------------------------------------------------------

    def _logp(self, model: Any, t: dict[str, Any], grad: bool, entropy_grad: bool = False) -> tuple[Any, Any, Any]:
        """:func:`forward_logprobs` on this learner's device and temperature."""
        return forward_logprobs(
            model, t, temperature=self.temperature, device=self.device, grad=grad, entropy_grad=entropy_grad,
            can_trim_logits=self._can_trim_logits,
            # ZeRO-3 partitions lm_head's weight outside its own forward: the plain path there
            logits_chunk_tokens=0 if self.cfg.deepspeed.zero_stage == 3 else self.cfg.deepspeed.logits_chunk_tokens,
        )

    def _ref_logp(self, t: dict[str, Any]) -> Any:
        """Reference log-probs: the frozen copy, or with LoRA the policy's adapters disabled."""
        if not self.lora:
            return self._logp(self.ref, t, grad=False)[0]
        with lora.adapters_disabled(self.engine.module):
            return self._logp(self.engine, t, grad=False)[0]

    def _all_reduce_mean(self, metrics: dict[str, float]) -> dict[str, float]:
        """Per-rank partial metrics were divided by (global count / world): their sum over
        ranks divided by the world size is the mini-batch value."""
        if self.world == 1:
            return metrics
        import torch
        import torch.distributed as dist

        keys = sorted(metrics)
        v = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(v)
        return {k: float(x) / self.world for k, x in zip(keys, v.tolist())}
