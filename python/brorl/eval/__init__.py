"""Evaluation (``brorl eval``): pass@k of a model on math, HumanEval and Reasoning Gym task sets
with the paper's protocol (16 samples at temperature 0.6, top-p 0.95), sampled with vLLM or
Hugging Face ``generate``.

Importing this package is light; the engines import torch/vLLM when they run.
"""

from __future__ import annotations

from brorl.eval.metrics import default_ks, overall, summarize
from brorl.eval.tasks import Problem, TaskSet, parse_specs

__all__ = ["Problem", "TaskSet", "default_ks", "evaluate", "overall", "parse_specs", "summarize"]


def evaluate(*args, **kwargs):
    """See :func:`brorl.eval.runner.evaluate`."""
    from brorl.eval.runner import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
