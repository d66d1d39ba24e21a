#!/usr/bin/env bash
# Gathers, on a machine with network access, everything scripts/gpu_check.sh installs on a CUDA
# machine without network access that already has torch and transformers (and their
# dependencies) but not DeepSpeed, vLLM or brorl:
#   - DeepSpeed's sdist (built there against that machine's torch) and the build tools it needs;
#   - DeepSpeed's and reasoning-gym's other dependencies as wheels for the target Python;
#   - brorl's own wheel (abi3: any CPython >= 3.10 on x86-64 Linux).
#
#   bash scripts/gpu_wheels.sh [DEST]          (default DEST: gpu_wheels/, git-ignored)
#   GPU_PYTHON=3.10 bash scripts/gpu_wheels.sh (the target's Python version; default 3.10 3.11 3.12)
#
# Then carry DEST (and this repository) to the GPU machine and run `bash scripts/gpu_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${1:-gpu_wheels}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEEPSPEED=${DEEPSPEED_VERSION:-0.19.8}   # the version the CPU tests run with
PYVERS=${GPU_PYTHON:-3.10 3.11 3.12}
mkdir -p "$DEST/sdist"
PIPDL=("$PY" -m pip download --disable-pip-version-check -q)

echo "[gpu_wheels] DeepSpeed $DEEPSPEED sdist"
"${PIPDL[@]}" --no-deps --no-binary :all: "deepspeed==$DEEPSPEED" -d "$DEST/sdist"

# Everything torch/transformers do not already bring, with its dependencies (resolved here),
# then for each package one wheel per target Python (compiled ones: psutil, msgpack,
# pydantic-core, ...) or, when PyPI has no wheel (pycosat), its sdist for gpu_check.sh to build.
DEPS=(einops hjson msgpack ninja psutil py-cpuinfo pydantic setuptools wheel reasoning-gym pyyaml tqdm filelock)
RES=$(mktemp -d)
"${PIPDL[@]}" -d "$RES" "${DEPS[@]}"
# name==version as resolved here (wheel or sdist file names: name-version-...)
PINS=$(ls "$RES" | sed -E 's/^(.+)-([0-9][^-]*)(-.*\.whl|\.tar\.gz|\.zip)$/\1==\2/' | tr '_' '-' | tr 'A-Z' 'a-z' | sort -u)
rm -rf "$RES"
BIN=(--no-deps --only-binary :all: --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
     --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64
     --platform linux_x86_64 -d "$DEST")
for pin in $PINS; do
  name=${pin%%==*}
  for v in $PYVERS; do
    # the version resolved here, else the newest wheel for that Python (e.g. numpy for 3.10)
    "${PIPDL[@]}" "${BIN[@]}" --python-version "$v" "$pin" 2>/dev/null ||
      "${PIPDL[@]}" "${BIN[@]}" --python-version "$v" "$name" 2>/dev/null || {
        echo "[gpu_wheels]   $pin: no wheel for CPython $v, carrying its sdist"
        "${PIPDL[@]}" --no-deps --no-binary :all: -d "$DEST/sdist" "$pin"
        break
      }
  done
done

echo "[gpu_wheels] brorl wheel"
if command -v maturin >/dev/null 2>&1; then MATURIN=maturin; else MATURIN="$(dirname "$PY")/maturin"; fi
"$MATURIN" build --release -q -o "$DEST" >/dev/null
# torch and its CUDA wheels must never come from here: the GPU machine keeps its own build
rm -f "$DEST"/torch-*.whl "$DEST"/nvidia_*.whl "$DEST"/triton-*.whl "$DEST"/transformers-*.whl
ls -1 "$DEST" "$DEST/sdist" | sed 's/^/[gpu_wheels]   /'
du -sh "$DEST" | sed 's/^/[gpu_wheels] /'
