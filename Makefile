# The two commands of the README: `make run` (main job) and `make test` (everything CI runs).
# Both set up the environment first (scripts/setup.sh is idempotent and fast when nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-rust test-python bench

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
