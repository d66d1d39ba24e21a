"""What the allocation does at measured pass-rate distributions, without an engine.

Each prompt's rollouts are drawn as Bernoulli(p) with p its measured pass rate (a fixed policy;
nothing trains). One generation round over all prompts, at N x prompts samples, is run by
uniform N and by the real :class:`brorl.train.allocation.AdaptiveAllocator`. Per round, the
script reports: mixed groups (the ones that carry a gradient signal), the share of samples in
zero-advantage groups, samples per mixed group, and how N spread. A second visit of the same
prompts shows the history at work. Means and standard deviations are over ``--reps`` repetitions.

    python scripts/adaptive_n_simulate.py docs/n_sweep_task_choice.json --ns 16 64 256 --reps 20 \
        --variant first_look=unseen signal_weight=0.1

The input is ``{name: {"pass_rates": [...]}}`` (the sweep's task-choice measurement writes it).
A measured rate of 0 (no success in its samples) is simulated as exactly 0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import brorl
from brorl.train.allocation import AdaptiveAllocator
from brorl.train.config import AdaptiveConfig
from brorl.train.interfaces import Prompt, Rollouts, SamplingSpec


class BernoulliGenerator:
    """Rollout j of a prompt is one token, 1 (correct) with the prompt's pass rate, else 0."""

    def __init__(self, rates: dict[int, float]) -> None:
        self.rates = rates

    def generate(self, prompts, n, sampling, seed):  # noqa: ANN001 - the Generator protocol
        rng = np.random.default_rng(seed)
        pidx = np.repeat(np.arange(len(prompts)), n)
        hits = rng.random(len(pidx)) < np.repeat([self.rates[int(p[0])] for p in prompts], n)
        b = brorl.RolloutBatch(pidx, hits.astype(np.int32), np.arange(len(pidx) + 1))
        return Rollouts(b, [""] * len(pidx), 0.0)


def reward(ro, prompts):  # noqa: ANN001
    return ro.batch.token_ids.astype(np.float32)


def round_stats(b) -> dict[str, float]:  # noqa: ANN001
    varied = b.varied_groups()
    sizes = b.group_sizes
    return {"mixed": float(varied.sum()), "wasted": float(sizes[~varied].sum() / sizes.sum()),
            "samples": float(sizes.sum()), "per_mixed": float(sizes.sum() / max(varied.sum(), 1)),
            "n_min": float(sizes.min()), "n_max": float(sizes.max())}


def simulate(rates: list[float], n: int, reps: int, **knobs: object) -> dict[str, dict[str, tuple[float, float]]]:
    uids = list(range(len(rates)))
    prompts = [Prompt(uid=u, domain="math", text="", token_ids=(u,)) for u in uids]
    gen = BernoulliGenerator(dict(zip(uids, rates)))
    out: dict[str, list[dict[str, float]]] = {"uniform": [], "adaptive, first visit": [], "adaptive, second visit": []}
    for rep in range(reps):
        ro = gen.generate([p.token_ids for p in prompts], n, SamplingSpec(), seed=rep)
        ro.batch.set_rewards(reward(ro, prompts))
        out["uniform"].append(round_stats(ro.batch))
        alloc = AdaptiveAllocator(AdaptiveConfig(**knobs), n)  # type: ignore[arg-type]
        for visit, key in enumerate(("adaptive, first visit", "adaptive, second visit")):
            rr = alloc.collect_round(gen, reward, prompts, n, SamplingSpec(), seed=1000 * rep + visit)
            out[key].append(round_stats(rr.batch) if rr.batch is not None else {})
    return {k: {m: (float(np.mean([r[m] for r in v])), float(np.std([r[m] for r in v])))
                for m in v[0]} for k, v in out.items()}


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rates", type=Path, help="JSON {name: {pass_rates: [...]}}")
    ap.add_argument("--ns", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--variant", nargs="*", default=[],
                    help="also run adaptive with these knobs, e.g. 'min_n=2' 'signal_weight=0.1,min_n=2'")
    args = ap.parse_args()
    data = json.loads(args.rates.read_text())
    print("| task | N | allocation | mixed groups / 64 | zero-adv. share | samples per mixed group | N min-max |")
    print("|---|---|---|---|---|---|---|")
    for name, entry in data.items():
        rates = [float(x) for x in entry["pass_rates"]]
        for n in args.ns:
            variants: list[tuple[str, dict]] = [("", {})]
            for v in args.variant:
                knobs = {k: _value(x) for k, x in (kv.split("=") for kv in v.split(","))}
                if int(knobs.get("min_n", 0)) <= n:  # type: ignore[call-overload]
                    variants.append((f" ({v})", knobs))
            for label, knobs in variants:
                res = simulate(rates, n, args.reps, **knobs)
                for k, s in res.items():
                    if label and k == "uniform":
                        continue
                    print(f"| {name} | {n} | {k}{label} | {s['mixed'][0]:.1f} ± {s['mixed'][1]:.1f} | "
                          f"{s['wasted'][0]:.3f} | {s['per_mixed'][0]:.1f} | {s['n_min'][0]:.0f}-{s['n_max'][0]:.0f} |")


if __name__ == "__main__":
    main()
