"""Driver-side stand-ins for the loop's ``Generator``, ``RewardFn`` and ``Learner`` on a Ray
cluster, gathered under one name. Each part has its own module:

- :mod:`brorl.distributed.trainer_group` (``TrainerGroup``, the ``Learner``),
- :mod:`brorl.distributed.engine_pool` (``EnginePool``, the ``Generator``, and ``EnginePause``),
- :mod:`brorl.distributed.reward_pool` (``RewardPool``, the ``RewardFn``),
- :mod:`brorl.distributed.sync` (``WeightSync``, the driver's side of the weight sync),
- :mod:`brorl.distributed.parts` (``DistributedParts``, the three built together),
- :mod:`brorl.distributed.batches` and :mod:`brorl.distributed.liveness` (shared helpers).
"""

from __future__ import annotations

from brorl.distributed.batches import merge_batches, slice_rollouts, split_groups
from brorl.distributed.engine_pool import EnginePause, EnginePool
from brorl.distributed.parts import DistributedParts
from brorl.distributed.reward_pool import RewardPool
from brorl.distributed.sync import WeightSync, sync_ranks
from brorl.distributed.trainer_group import TrainerGroup

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
