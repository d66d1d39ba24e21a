"""Running the single-machine trainer on a Ray cluster.

The training loop (``brorl.train.loop``) talks to a ``Generator``, a ``RewardFn`` and a
``Learner``; this package gives it versions of the three that live on a cluster, so going
distributed is a change of placement, not of code:

- :class:`~brorl.distributed.engine_pool.EnginePool` (a ``Generator``): K engine actors, each running
  the single-machine generator on ``cluster.engine_tensor_parallel`` GPUs (vLLM's Ray executor
  places a tensor-parallel engine's workers in its placement-group bundles); a step's prompts
  are split among them whole (a prompt's N rollouts stay on one engine and share its prefix
  cache). A dead engine is restarted, given the current weights, and its prompts re-issued.
- :class:`~brorl.distributed.reward_pool.RewardPool` (a ``RewardFn``): the single-machine reward
  function fanned out as Ray tasks over groups of prompts; a task whose worker dies is re-issued.
- :class:`~brorl.distributed.trainer_group.TrainerGroup` (a ``Learner``): M DeepSpeed data-parallel
  ranks, one actor each, with torch.distributed (gloo on CPU, NCCL on GPU) among them.
- Weight sync after each step: bucketed broadcast from rank 0 over a separate torch.distributed
  group (``separate`` placement) or buckets through the shared-memory object store
  (``colocated``); see :mod:`brorl.distributed.weight_sync`. A tensor-parallel engine's workers
  each receive the buckets (:mod:`brorl.distributed.vllm_worker`).
- ``colocated`` placement: the engines sleep while the ranks train and wake around the weight
  sync (:class:`~brorl.distributed.engine_pool.EnginePause`; vLLM sleep mode on GPU, only a pause
  on CPU, where vLLM has none).

Importing this package does not import Ray or torch.
"""

from __future__ import annotations

from brorl.distributed.config import ClusterConfig
from brorl.distributed.serde import register as _register_serde

_register_serde()

__all__ = ["ClusterConfig"]
