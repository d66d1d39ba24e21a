"""Shared test hygiene."""

import os

import pytest

RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture(autouse=True)
def _restore_rendezvous_env():
    """An in-process learner sets torch.distributed's rendezvous variables in os.environ; a
    later test's child process must not inherit them (its port may still be held)."""
    before = {k: os.environ.get(k) for k in RENDEZVOUS}
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
