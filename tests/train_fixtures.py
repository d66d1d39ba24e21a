"""Shared pieces of the training tests: one tiny model (+ its cached warm-up) per session."""

from __future__ import annotations

from pathlib import Path

# A small, easy variant of the default job used by the end-to-end tests.
EASY_TASK = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def easy_config(out_dir: Path, name: str, **over) -> dict:
    """A nested config dict (merged over the built-in default) for a short, cheap run."""
    cfg = {
        "data": {"sources": [{"kind": "reasoning_gym", "task": "chain_sum", "size": 400, "seed": 3,
                              "task_kwargs": EASY_TASK}], "eval_size": 64},
        # one engine: these runs check the loop's plumbing; tests of the default's two engines
        # (test_train_console, test_train_engine_group) ask for them
        "generation": {"kv_cache_gib": 1.0, "max_num_seqs": 512, "local_engines": 1},
        # one PPO mini-batch: these runs check the loop's plumbing, and tests override
        # prompts_per_step freely (the default's 4 mini-batches must divide it)
        "algorithm": {"n": 32, "prompts_per_step": 4, "oversample": 1.5, "max_gen_rounds": 2,
                      "ref_reset_every": 2, "mini_batches": 1},
        "optim": {"lr": 1e-3},
        "deepspeed": {"micro_batch_tokens": 2048},
        "run": {"steps": 4, "save_every": 2, "keep_checkpoints": 3, "output_dir": str(out_dir), "name": name,
                "progress": False},
    }
    for dotted, value in over.items():
        node = cfg
        parts = dotted.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg


def max_logprob_gap(gen, model, prompts: list[list[int]]) -> float:
    """Largest gap between the engine's log-probs of its sampled tokens and ``model``'s (a
    transformers causal LM) on the same tokens, over 8 samples of each prompt."""
    import numpy as np
    import torch

    from brorl.train.interfaces import SamplingSpec

    out = gen.generate(prompts, 8, SamplingSpec(max_tokens=4), seed=1).batch
    gap = 0.0
    for i in range(out.n_rollouts):
        resp = out.token_ids[out.offsets[i]:out.offsets[i + 1]].tolist()
        ids = torch.tensor([prompts[out.prompt_index[i]] + resp])
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        p0 = len(prompts[out.prompt_index[i]]) - 1
        ref = lp[torch.arange(p0, p0 + len(resp)), torch.tensor(resp)].numpy()
        gap = max(gap, float(np.abs(ref - out.logprobs[out.offsets[i]:out.offsets[i + 1]]).max()))
    return gap


def synthetic_batch(kind: str):
    """(RolloutBatch, prompt token ids) of a fixed synthetic step.

    ``random``: 4 groups x 8 rollouts of 1-6 tokens. ``uneven``: the step that made ranks run
    different numbers of backward passes: 3 groups, and with 2 mini-batches the first holds
    three distinct sequences of 100/90/80 tokens (prompt + response; the second group's two
    rollouts are copies and merge into one) and the second a single distinct sequence (three
    copies). Under a 100-token micro-batch budget on 2 ranks, rank 0 gets one real and one
    empty micro-batch in the first mini-batch and rank 1 nothing real in the second.
    """
    import numpy as np

    import brorl

    rng = np.random.default_rng(0)
    if kind == "random":
        n, groups = 8, 4
        pidx = np.repeat(np.arange(groups), n)
        toks = [rng.integers(3, 300, size=int(rng.integers(1, 7))).tolist() for _ in range(n * groups)]
        rewards = rng.integers(0, 2, n * groups).astype(np.float32)
        prompts = [rng.integers(3, 300, size=6).tolist() for _ in range(groups)]
    elif kind == "uneven":
        a, b, c, d = (rng.integers(3, 300, size=k).tolist() for k in (96, 86, 76, 20))
        pidx = np.asarray([0, 0, 1, 1, 2, 2, 2])
        toks = [a, b, c, c, d, d, d]
        rewards = np.asarray([1, 0, 1, 1, 0, 0, 0], dtype=np.float32)
        prompts = [rng.integers(3, 300, size=4).tolist() for _ in range(3)]
    else:
        raise ValueError(kind)
    lps = [(-rng.random(len(t)) * 2).tolist() for t in toks]
    batch = brorl.RolloutBatch.from_lists(pidx, toks, lps)
    batch.set_rewards(rewards)
    return batch, prompts


def learner_step_worker(model_dir: str, out_path: str, zero_stage: int, kind: str = "random",
                        logits_chunk_tokens: int | None = None) -> None:
    """One DeepSpeed learner step on a fixed synthetic batch; rank 0 writes the metrics and the
    updated weights. Run under torchrun (world size 2) or plainly (world size 1)."""
    import json

    import torch

    from brorl.train.config import from_dict
    from brorl.train.interfaces import TrainBatch
    from brorl.train.learner import DeepSpeedLearner

    budget = 100 if kind == "uneven" else 160
    cfg = from_dict(easy_config(Path(out_path).parent, "ws", deepspeed__zero_stage=zero_stage,
                                deepspeed__micro_batch_tokens=budget, algorithm__mini_batches=2,
                                generation__max_tokens=96,
                                **({} if logits_chunk_tokens is None else {"deepspeed__logits_chunk_tokens": logits_chunk_tokens})))
    learner = DeepSpeedLearner(model_dir, cfg, lr=1e-2, total_optimizer_steps=2, seed=0)
    b, prompts = synthetic_batch(kind)
    # uneven: no group baseline, so the copies of the last group have a nonzero advantage too
    tb = TrainBatch(b, prompts, b.advantages("reinforce_pp" if kind == "uneven" else "reinforce_pp_baseline"))
    # count the policy's no-grad forwards (the old-log-prob pass) against the step's plan
    from brorl.train.learner import plan_mini_batches

    plans = plan_mini_batches(tb, cfg.algorithm.mini_batches, budget, cfg.deepspeed.merge_duplicates,
                              learner.rank, learner.world)
    counted = {"old_logp_forwards": 0}
    logp = learner._logp

    def counting_logp(model, t, grad, *args, **kw):
        if model is learner.engine and not grad:
            counted["old_logp_forwards"] += 1
        return logp(model, t, grad, *args, **kw)

    learner._logp = counting_logp
    m = learner.train_step(tb)
    m["old_logp_forwards"] = float(counted["old_logp_forwards"])
    m["micro_batches_after_first_mini"] = float(sum(len(mini.micro) for mini in plans[1:]))
    w = {k: v.numpy().tolist() for k, v in learner.named_weights() if k.endswith(("q_proj.weight", "lm_head.weight"))}
    if learner.rank == 0:
        Path(out_path).write_text(json.dumps({"metrics": m, "weights": w, "world": learner.world}))
    learner.close()
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
    del torch


if __name__ == "__main__":
    import sys

    learner_step_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), *(sys.argv[4:5]),
                        *([int(sys.argv[5])] if len(sys.argv) > 5 else []))
