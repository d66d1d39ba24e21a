"""Knowledge shrinkage during training: prompts whose pass rate falls between visits.

ProRL-style training with few rollouts per prompt can lose problems it once solved (the
unsampled coupling term of the mass balance pushes correct mass down). The tracker remembers
each prompt's pass rate at its last visit and, at every step, reports among the revisited
prompts the share whose pass rate fell and the share of previously solved ones now at 0.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from brorl.errors import BrorlTypeError, InvalidArgumentError

__all__ = ["ShrinkageTracker"]


def _json_key(key: Any) -> Any:
    # JSON turns tuples into lists; turn them back so the key is hashable again.
    return tuple(_json_key(k) for k in key) if isinstance(key, list) else key


class ShrinkageTracker:
    """Pass rate of every prompt at its previous visit, and the shrinkage seen at each step.

    ``update(prompt_ids, pass_rates)`` returns
      - ``shrink/fell_share``: among prompts of this step seen before, the share whose pass rate
        is lower than at their previous visit (0.0 when none was seen before);
      - ``shrink/lost_share``: among those whose previous pass rate was > 0, the share now at 0
        (0.0 when there are none);
      - ``shrink/revisited``: how many prompts of this step were seen before;
      - ``shrink/prev_solved``: how many of those had a previous pass rate > 0 (the denominator of
        ``lost_share``).
    A prompt listed several times in one step counts once, with the mean of its pass rates.
    The state is a plain dict of JSON types (``state_dict`` / ``load_state_dict``) for checkpoints.
    """

    def __init__(self) -> None:
        self._last: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self._last)

    def update(self, prompt_ids: Sequence[Hashable], pass_rates: Sequence[float]) -> dict[str, float]:
        ids = list(prompt_ids)
        rates = [float(r) for r in pass_rates]
        if len(ids) != len(rates):
            raise InvalidArgumentError(
                f"prompt_ids and pass_rates must have the same length, got {len(ids)} and {len(rates)}"
            )
        for i, r in zip(ids, rates):
            if not (math.isfinite(r) and 0.0 <= r <= 1.0):
                raise InvalidArgumentError(f"pass_rates must lie in [0, 1], got {r!r} for prompt {i!r}")
            try:
                hash(i)
            except TypeError:
                raise BrorlTypeError(f"prompt_ids must be hashable, got {i!r}") from None
        sums: dict[Hashable, list[float]] = {}
        for i, r in zip(ids, rates):
            acc = sums.setdefault(i, [0.0, 0])
            acc[0] += r
            acc[1] += 1
        now = {i: s / c for i, (s, c) in sums.items()}
        revisited = fell = prev_solved = lost = 0
        for i, r in now.items():
            prev = self._last.get(i)
            if prev is None:
                continue
            revisited += 1
            fell += r < prev
            if prev > 0:
                prev_solved += 1
                lost += r == 0
        self._last.update(now)
        return {
            "shrink/fell_share": fell / revisited if revisited else 0.0,
            "shrink/lost_share": lost / prev_solved if prev_solved else 0.0,
            "shrink/revisited": float(revisited),
            "shrink/prev_solved": float(prev_solved),
        }

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: ``{"version": 1, "last": [[prompt_id, pass_rate], ...]}``."""
        return {"version": 1, "last": [[k, v] for k, v in self._last.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()` output (also after a JSON round trip)."""
        if not isinstance(state, dict) or state.get("version") != 1 or not isinstance(state.get("last"), list):
            raise InvalidArgumentError(f"state must come from ShrinkageTracker.state_dict(), got {state!r:.200}")
        last: dict[Hashable, float] = {}
        for item in state["last"]:
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise InvalidArgumentError(f"state entries must be [prompt_id, pass_rate], got {item!r}")
            last[_json_key(item[0])] = float(item[1])
        self._last = last
