"""A Llama model folder rewritten as another family that computes the same function.

SmolLM2 is a Llama. Its weights load unchanged into a Mistral config without a sliding window,
and into a Qwen2 config with zero q, k and v biases: the same function, run by another family's
code. That puts real weights and real activations through other code paths of the engine on a
machine without a hub (tests/test_families_smollm2.py, benchmarks/screen_throughput.py --as).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mutatui.engine.models import SMOLLM2_ALIAS, cache_root, resolve_source
from mutatui.errors import MutatuiError

SAME_FUNCTION: dict[str, dict[str, object]] = {
    "mistral": {"architectures": ["MistralForCausalLM"], "sliding_window": None},
    "qwen2": {
        "architectures": ["Qwen2ForCausalLM"],
        "use_sliding_window": False,
        "sliding_window": None,
        "layer_types": None,
    },
}
"""Config changes that make a Llama config another family's, with the same function."""

ZERO_BIASES: dict[str, tuple[str, ...]] = {"qwen2": ("q_proj", "k_proj", "v_proj")}
"""Projections the target family gives a bias that a Llama does not have (set to zero)."""

DROPPED = ("architectures", "model_type", "_model_name_or_path", "transformers_version")


def llama_as(source: Path, model_type: str, target: Path) -> Path:
    """Write the Llama model folder `source` as a `model_type` folder at `target` (once; an
    existing complete target is reused) and return it."""
    if model_type not in SAME_FUNCTION:
        raise MutatuiError(
            f"cannot rewrite a Llama as {model_type!r}; valid: {', '.join(SAME_FUNCTION)}"
        )
    config = json.loads((source / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise MutatuiError(f"{source} is a {config.get('model_type')!r} model, not a Llama")
    if (target / "config.json").is_file():
        return target
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("*.safetensors", "config.json"))
    changed = {key: value for key, value in config.items() if key not in DROPPED}
    changed.update(SAME_FUNCTION[model_type], model_type=model_type)
    (staging / "config.json").write_text(json.dumps(changed, indent=2))
    for weights in sorted(source.glob("*.safetensors")):
        tensors = load_file(weights)
        for name in list(tensors):
            for projection in ZERO_BIASES.get(model_type, ()):
                if name.endswith(f"self_attn.{projection}.weight"):
                    bias = name.removesuffix("weight") + "bias"
                    tensors[bias] = torch.zeros(tensors[name].shape[0], dtype=tensors[name].dtype)
        save_file(tensors, staging / weights.name, metadata={"format": "pt"})
    staging.replace(target)
    return target


def smollm2_as(model_type: str) -> Path:
    """SmolLM2-135M-Instruct as a `model_type` model folder, in mutatui's cache."""
    source = Path(resolve_source(SMOLLM2_ALIAS, lambda _message: None))
    return llama_as(source, model_type, cache_root() / "refamily" / f"{source.name}-{model_type}")
