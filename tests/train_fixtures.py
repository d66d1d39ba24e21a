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
        "generation": {"kv_cache_gib": 1.0, "max_num_seqs": 512},
        "algorithm": {"n": 32, "prompts_per_step": 4, "oversample": 1.5, "max_gen_rounds": 2,
                      "ref_reset_every": 2},
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


def learner_step_worker(model_dir: str, out_path: str, zero_stage: int, logits_chunk_tokens: int | None = None) -> None:
    """One DeepSpeed learner step on a fixed synthetic batch; rank 0 writes the metrics and the
    updated weights. Run under torchrun (world size 2) or plainly (world size 1)."""
    import json

    import numpy as np
    import torch

    import brorl
    from brorl.train.config import from_dict
    from brorl.train.interfaces import TrainBatch
    from brorl.train.learner import DeepSpeedLearner

    cfg = from_dict(easy_config(Path(out_path).parent, "ws", deepspeed__zero_stage=zero_stage,
                                deepspeed__micro_batch_tokens=160, algorithm__mini_batches=2,
                                **({} if logits_chunk_tokens is None else {"deepspeed__logits_chunk_tokens": logits_chunk_tokens})))
    learner = DeepSpeedLearner(model_dir, cfg, lr=1e-2, total_optimizer_steps=2, seed=0)
    rng = np.random.default_rng(0)
    n, groups = 8, 4
    pidx = np.repeat(np.arange(groups), n)
    toks = [rng.integers(3, 300, size=int(rng.integers(1, 7))).tolist() for _ in range(n * groups)]
    lps = [(-rng.random(len(t)) * 2).tolist() for t in toks]
    b = brorl.RolloutBatch.from_lists(pidx, toks, lps)
    b.set_rewards(rng.integers(0, 2, n * groups).astype(np.float32))
    prompts = [rng.integers(3, 300, size=6).tolist() for _ in range(groups)]
    m = learner.train_step(TrainBatch(b, prompts, b.advantages()))
    w = {k: v.numpy().tolist() for k, v in learner.named_weights() if k.endswith(("q_proj.weight", "lm_head.weight"))}
    if learner.rank == 0:
        Path(out_path).write_text(json.dumps({"metrics": m, "weights": w, "world": learner.world}))
    learner.close()
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


if __name__ == "__main__":
    import sys

    learner_step_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
