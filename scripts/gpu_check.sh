#!/usr/bin/env bash
# GPU numbers in one run of a few minutes, on a CUDA machine without network access that has
# torch and transformers but not vLLM (vLLM needs its own torch build, so its GPU path is not
# exercised here). Run from the repository root, with the folder scripts/gpu_wheels.sh filled
# on a machine with network access:
#
#   bash scripts/gpu_check.sh [WHEELS_DIR]      (default: gpu_wheels/)
#
# 1. installs from WHEELS_DIR only (pip --no-index): DeepSpeed built from its sdist against
#    this machine's torch, its missing dependencies, brorl's wheel and reasoning-gym; skips
#    whatever is already importable;
# 2. measures the learner (benches/bench_learner.py) in bf16 with ZeRO-2 over NCCL on a
#    randomly initialised 0.5B-shaped Llama: tokens/s, MFU and peak GPU memory, with full
#    logits (deepspeed.logits_chunk_tokens=0) and with chunked log-probs (1024);
# 3. runs 2 steps of `brorl train generation.engine=hf` (the built-in model, transformers
#    generation and the DeepSpeed learner, both on the GPU).
#
# Output: gpu_check_out/ (the console of each part, results.json of the learner measurement,
# the training run's directory). Environment knobs: PYTHON (default python3), GPU_CHECK_OUT,
# LEARNER_ARGS (extra bench_learner.py arguments), SKIP_INSTALL=1, and GPU_CHECK_CPU=1: the
# same steps on CPU (tiny shape, float32, gloo) to test this script where there is no GPU
# (with GPU_CHECK_PYTHONPATH=python to run the source tree).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WHEELS=${1:-gpu_wheels}
PY=${PYTHON:-python3}
OUT=${GPU_CHECK_OUT:-gpu_check_out}
mkdir -p "$OUT"
log() { echo "[gpu_check] $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

log "$(date -u +%FT%TZ) on $(hostname)"
"$PY" - <<'EOF' | tee -a "$OUT/summary.txt"
import torch, transformers, platform
print(f"[gpu_check] python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}")
import os
assert torch.cuda.is_available() or os.environ.get("GPU_CHECK_CPU") == "1", "no CUDA device visible"
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"[gpu_check] GPU {i}: {p.name}, {p.total_memory / 2**30:.0f} GiB")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv >> "$OUT/summary.txt" || true

# -- 1. install ------------------------------------------------------------------------------
has() { "$PY" -c "import $1" >/dev/null 2>&1; }
PIP=("$PY" -m pip install --disable-pip-version-check -q --no-index --find-links "$WHEELS" --find-links "$WHEELS/sdist")
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  [ -d "$WHEELS" ] || { echo "[gpu_check] $WHEELS not found: run scripts/gpu_wheels.sh where there is network" >&2; exit 2; }
  t0=$SECONDS
  "${PIP[@]}" einops hjson msgpack ninja psutil py-cpuinfo pydantic
  if ! has deepspeed; then
    # DeepSpeed's setup imports torch: build against this machine's, no isolated build env.
    # Its CUDA ops are JIT-built when first used (none are with torch's AdamW).
    has setuptools && has wheel || "${PIP[@]}" setuptools wheel
    DS_BUILD_OPS=0 "${PIP[@]}" --no-build-isolation "$WHEELS"/sdist/deepspeed-*.tar.gz
  fi
  # dependencies PyPI only has as sdists (pycosat, a C extension; cellpylib, zss) are built here
  has reasoning_gym || "${PIP[@]}" reasoning-gym
  # brorl's wheel: its only hard dependency (numpy) comes with torch
  "${PIP[@]}" --no-deps --force-reinstall "$WHEELS"/brorl-*.whl
  log "installed in $((SECONDS - t0))s: $("$PY" -c 'import deepspeed, brorl; print("deepspeed", deepspeed.__version__, "brorl", brorl.__version__)')"
fi
# run the installed brorl, not the source tree (its Rust extension is not built here)
GPU_CHECK_PYTHONPATH=${GPU_CHECK_PYTHONPATH:+$(realpath "$GPU_CHECK_PYTHONPATH")}
cd "$OUT"
export PYTHONPATH=${GPU_CHECK_PYTHONPATH:-}
if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
  SHAPE=(--shape tiny --dtype float32 --cpu --n 4 --groups 2 --prompt-len 32 --response-len 64 --micro-batch-tokens 256)
  BACKEND=gloo
  TRAIN_SIZE=(algorithm.n=16 algorithm.prompts_per_step=2 algorithm.mini_batches=2 data.eval_size=8 warmup.steps=20)
else
  # 8 prompts x 16 responses of 256-512 tokens after 256 prompt tokens: ~80k tokens per update,
  # in micro-batches of 16k tokens
  SHAPE=(--shape 0.5b --dtype bfloat16 --n 16 --groups 8 --prompt-len 256 --response-len 512 --micro-batch-tokens 16384)
  BACKEND=nccl
  TRAIN_SIZE=(algorithm.n=32 algorithm.prompts_per_step=8 data.eval_size=64)
fi

# -- 2. the learner: 0.5B-shaped Llama, bf16, ZeRO-2 over NCCL --------------------------------
log "learner: ${SHAPE[*]}, ZeRO-2, $BACKEND, full logits vs chunked log-probs"
t0=$SECONDS
"$PY" "$REPO/benches/bench_learner.py" "${SHAPE[@]}" --zero-stage 2 --chunks 0 1024 --steps 2 \
  ${LEARNER_ARGS:-} --json > learner.json 2> learner.err || true
"$PY" - <<'EOF' | tee -a summary.txt
import json
try:
    # the last JSON line (libraries may print to stdout before it)
    res = json.loads([l for l in open("learner.json") if l.startswith("{")][-1])["results"]
except Exception as e:  # noqa: BLE001
    print(f"[gpu_check] learner measurement failed ({e}); see learner.err"); raise SystemExit(0)
for r in res:
    if "error" in r:
        print(f"[gpu_check]   chunk={r['chunk']}: FAILED: {r['error'][-800:]}"); continue
    mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "n/a (unknown GPU peak: pass LEARNER_ARGS='--peak-tflops X')"
    print(f"[gpu_check]   logits_chunk_tokens={r['chunk']}: {r['tokens']} tokens/update, step {r['step_s']:.2f}s, "
          f"{r['tokens_per_s']:.0f} tokens/s, MFU {mfu}, peak GPU memory {r.get('peak_gpu_mem_gib', float('nan')):.2f} GiB "
          f"({r['params'] / 1e6:.0f}M params, vocab {r['vocab']}, {r['device']})")
EOF
log "learner part: $((SECONDS - t0))s"

# -- 3. brorl train, transformers engine, on the GPU -------------------------------------------
log "brorl train generation.engine=hf, 2 steps, built-in model"
t0=$SECONDS
export BRORL_CACHE="$PWD/cache"
rm -rf runs/hf2
if "$PY" -m brorl.cli train generation.engine=hf run.steps=2 run.save_every=0 run.output_dir=runs run.name=hf2 \
    run.tensorboard=false run.plots=false "${TRAIN_SIZE[@]}" deepspeed.backend=$BACKEND > train.out 2>&1; then
  grep -E "held-out|done:|run directory" train.out | sed 's/^/[gpu_check]   /' | tee -a summary.txt
  "$PY" - <<'EOF' | tee -a summary.txt
import json
rows = [json.loads(l) for l in open("runs/hf2/metrics.jsonl") if l.strip()]
for r in rows:
    print(f"[gpu_check]   step {r['step']}: reward {r.get('reward_mean', float('nan')):.3f}, "
          f"generation {r.get('time/generate', float('nan')):.1f}s, update {r.get('time/train', float('nan')):.1f}s, "
          f"logp mismatch {r.get('logp_mismatch', float('nan')):.4f}")
EOF
else
  log "brorl train FAILED (exit $?); last lines:"; tail -30 train.out | tee -a summary.txt
fi
log "train part: $((SECONDS - t0))s"
log "done; everything is in $(pwd)"
