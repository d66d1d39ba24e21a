"""Shares a prompt's last, partly filled KV block among the N samples of that prompt (a vLLM KV
connector, ``generation.share_prompt_tail``).

vLLM's prefix cache shares only full KV blocks (32 tokens on CPU). A prompt shorter than a
block, or the tokens after its last full block, are therefore prefilled again by each of the N
child requests that ``SamplingParams(n=N)`` fans out into: with the default job's 9-token
prompts and N=256, a third of the tokens an engine computes per call are the same prompt
tokens again. This connector keeps a copy of that tail block once one request of the prompt
has computed it, and writes the copy into each later request's own tail block before the
forward pass; the request then computes only its last prompt token (vLLM always recomputes
one) and samples from there. The values are those the request would have computed itself (same
weights, tokens and positions), so outputs and log-probs do not change beyond floating-point
summation order.

Scheduler side (the engine core): a request whose prompt tail is stored and whose full blocks
all hit the local prefix cache reports the tail's tokens as loadable; the first request of a
prompt that prefills it whole in one step becomes its donor. Worker side (each model worker):
loads before the forward pass, stores after it. The warm-prefix pass of
:class:`brorl.train.engines.VLLMGenerator` (one token per prompt before the N samples) makes
every prompt's donor run before its children. Stored tails are dropped least-recently used past
a memory budget, and all of them at a prefix-cache reset (weight sync): stale KV after a weight
update would change the samples.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
)

# Memory the stored tails may take per engine (each is one KV block of every layer).
TAIL_STORE_BYTES = 256 << 20
_MIN_STORED = 64


def tail_span(prompt_len: int, block_size: int) -> tuple[int, int] | None:
    """(block index, tokens) of the prompt tokens a later request can take from a stored tail:
    tokens [base, prompt_len - 1) with base the last block boundary at or before prompt_len - 1
    (vLLM recomputes the last prompt token always, and full blocks come from the prefix cache).
    None when there is nothing to share (the tail is empty)."""
    if prompt_len < 2:
        return None
    base = ((prompt_len - 1) // block_size) * block_size
    n = prompt_len - 1 - base
    return (base // block_size, n) if n > 0 else None


def block_dim(shape: Any, num_blocks: int, name: str = "") -> int:
    """The dimension of a layer's KV cache that indexes its blocks: the one of size
    ``num_blocks`` (the first such, in case of a tie with K/V's 2 or a head count)."""
    for d, size in enumerate(shape):
        if size == num_blocks:
            return d
    raise ValueError(f"prompt_kv: no dimension of {num_blocks} blocks in {name}'s KV cache of shape {tuple(shape)}")


def take_tail(layers: list[tuple[torch.Tensor, int]], block: int) -> torch.Tensor:
    """A copy of block ``block`` of every layer, stacked: [layers, *one layer's block]."""
    return torch.stack([t.select(d, block) for t, d in layers])


def copy_tails_in(layers: list[tuple[torch.Tensor, int]], tails: dict[int, torch.Tensor],
                  loads: list[tuple[int, int]]) -> None:
    """Writes stored tail ``t`` into block ``b`` of every layer for each (t, b) in ``loads``."""
    device = layers[0][0].device
    dst = torch.tensor([b for _, b in loads], dtype=torch.long, device=device)
    src = torch.stack([tails[t] for t, _ in loads])  # [loads, layers, *block]
    for i, (t, d) in enumerate(layers):
        t.index_copy_(d, dst, src[:, i].movedim(0, d))


def _full_attention_only(kv_cache_config: Any) -> bool:
    try:
        from vllm.v1.kv_cache_interface import FullAttentionSpec, MLAAttentionSpec

        groups = kv_cache_config.kv_cache_groups
        return bool(groups) and all(type(g.kv_cache_spec) in (FullAttentionSpec, MLAAttentionSpec) for g in groups)
    except (AttributeError, ImportError):
        return False


@dataclass
class TailMeta(KVConnectorMetadata):
    """One step's work for the workers: tails to copy into requests' blocks before the forward
    pass, (tail id, block id); tails to keep after it, (tail id, block id); ids to forget."""

    loads: list[tuple[int, int]] = field(default_factory=list)
    stores: list[tuple[int, int]] = field(default_factory=list)
    drops: list[int] = field(default_factory=list)
    drop_all: bool = False


class PromptTailShare(KVConnectorBase_V1):
    """See the module docstring. Enabled through ``kv_transfer_config`` by
    :class:`brorl.train.engines.VLLMGenerator`."""

    def __init__(self, vllm_config: Any, role: KVConnectorRole, kv_cache_config: Any = None) -> None:
        super().__init__(vllm_config, role, kv_cache_config)
        self.block_size = int(vllm_config.cache_config.block_size)
        # scheduler side
        self._ids: OrderedDict[tuple, int] = OrderedDict()  # stored prompt -> tail id (LRU order)
        self._next_id = 0
        self._req_key: dict[str, tuple] = {}  # requests seen, not yet scheduled: their prompt key
        self._loads: list[tuple[int, int]] = []
        self._drops: list[int] = []
        self._drop_all = False
        self._capacity = self._stored_capacity(kv_cache_config)
        # only plain full attention: a sliding window or a recurrent state (Mamba) is more than
        # the block's KV, and a copy of the block would not restore it
        self._enabled = _full_attention_only(kv_cache_config)
        # worker side: each layer's KV cache and the dimension that indexes its blocks (0 on
        # CPU, [num_blocks, heads, block, 2 x head]; 1 in layouts with K and V first, [2, num_blocks, ...])
        self._layers: list[tuple[torch.Tensor, int]] = []
        self._tails: dict[int, torch.Tensor] = {}
        self.counts = {"stored": 0, "loaded": 0}  # since start: tails kept / copied into requests

    @staticmethod
    def _stored_capacity(kv_cache_config: Any) -> int:
        try:
            per = sum(g.kv_cache_spec.page_size_bytes * len(g.layer_names) for g in kv_cache_config.kv_cache_groups)
        except (AttributeError, TypeError):
            per = 0
        return max(_MIN_STORED, TAIL_STORE_BYTES // per) if per > 0 else _MIN_STORED

    # -- scheduler side ------------------------------------------------------------------
    def _key(self, request: Any) -> tuple | None:
        ids = request.prompt_token_ids
        if (ids is None or request.lora_request is not None or request.mm_features
                or getattr(request, "cache_salt", None) is not None
                or getattr(request, "prompt_embeds", None) is not None):
            return None  # KV that depends on more than the token ids: not shared
        return tuple(ids)

    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int) -> tuple[int, bool]:
        key = self._key(request) if self._enabled else None
        if key is None:
            return 0, False
        span = tail_span(len(key), self.block_size)
        if span is None:
            return 0, False
        self._req_key[request.request_id] = key
        block, n = span
        # only on top of a full local hit: the stored tail continues the cached blocks
        if key in self._ids and num_computed_tokens == block * self.block_size:
            return n, False
        return 0, False

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int) -> None:
        if num_external_tokens <= 0:
            return
        key = self._req_key.pop(request.request_id, None)
        tail = self._ids.get(key) if key is not None else None
        assert tail is not None, "a tail reported as loadable is stored"
        self._ids.move_to_end(key)
        block, _ = tail_span(len(key), self.block_size)  # type: ignore[misc]
        dst = self._kv_cache_manager.get_block_ids(request.request_id)[0][block]
        self._loads.append((tail, int(dst)))

    def build_connector_meta(self, scheduler_output: Any) -> KVConnectorMetadata:
        meta = TailMeta(loads=self._loads, drop_all=self._drop_all)
        if not self._enabled:
            return meta
        self._loads, self._drop_all = [], False
        scheduled = scheduler_output.num_scheduled_tokens
        for req in scheduler_output.scheduled_new_reqs:
            key = self._req_key.pop(req.req_id, None)
            if key is None or key in self._ids:
                continue
            # a donor: its whole prompt is computed in this step
            if req.num_computed_tokens + scheduled.get(req.req_id, 0) < len(key):
                continue
            block, _ = tail_span(len(key), self.block_size)  # type: ignore[misc]
            tail = self._next_id
            self._next_id += 1
            self._ids[key] = tail
            meta.stores.append((tail, int(req.block_ids[0][block])))
            while len(self._ids) > self._capacity:
                _, old = self._ids.popitem(last=False)
                self._drops.append(old)
        meta.drops, self._drops = self._drops, []
        return meta

    def request_finished(self, request: Any, block_ids: Any) -> tuple[bool, dict[str, Any] | None]:
        self._req_key.pop(request.request_id, None)
        return False, None

    def reset_cache(self) -> bool:
        # a weight sync: every stored tail is stale
        self._ids.clear()
        self._req_key.clear()
        self._loads, self._drops, self._drop_all = [], [], True
        return True

    # -- worker side ---------------------------------------------------------------------
    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        num_blocks = int(getattr(self._kv_cache_config, "num_blocks", 0) or 0)
        seen: set[int] = set()
        self._layers = []
        for name, t in kv_caches.items():
            if not isinstance(t, torch.Tensor) or t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            self._layers.append((t, block_dim(t.shape, num_blocks, name)))

    def start_load_kv(self, forward_context: Any, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        if not isinstance(meta, TailMeta) or not meta.loads:
            return
        copy_tails_in(self._layers, self._tails, meta.loads)
        self.counts["loaded"] += len(meta.loads)

    def wait_for_layer_load(self, layer_name: str) -> None:
        return None

    def save_kv_layer(self, layer_name: str, kv_layer: torch.Tensor, attn_metadata: Any, **kwargs: Any) -> None:
        return None  # the tails are copied whole after the forward pass (wait_for_save)

    def wait_for_save(self) -> None:
        meta = self._get_connector_metadata()
        if not isinstance(meta, TailMeta):
            return
        if meta.drop_all:
            self._tails.clear()
        for t in meta.drops:
            self._tails.pop(t, None)
        for t, b in meta.stores:
            self._tails[t] = take_tail(self._layers, b)
        self.counts["stored"] += len(meta.stores)


def worker_counts(worker: Any) -> dict[str, int]:
    """In a vLLM worker (``collective_rpc``): its connector's counts, and the tails it holds."""
    from vllm.distributed.kv_transfer import get_kv_transfer_group, has_kv_transfer_group

    if not has_kv_transfer_group():
        return {"stored": 0, "loaded": 0, "held": 0}
    c = get_kv_transfer_group()
    return {**c.counts, "held": len(c._tails)}
