"""Tiny random models for tests: built from configs with a fixed seed, saved as model folders.

They load through `mutatui.engine.models.load_model` exactly like a real model folder does.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from mutatui.engine.decoding import Decoding
from mutatui.screening.probes import TextProbe
from mutatui.screening.samplers import Tiles
from mutatui.screening.spec import ScreenSpec

CHAT_TEMPLATE = (
    "{% for message in messages %}<|user|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<unk>", "<|end|>", "<|user|>", "<|assistant|>"]
VOCAB_CHARS = [chr(c) for c in range(32, 127)]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: every printable ASCII character is a token."""
    vocab = {token: index for index, token in enumerate(SPECIALS + VOCAB_CHARS)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<|end|>", pad_token="<|end|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


VOCAB_SIZE = len(SPECIALS) + len(VOCAB_CHARS)

LLAMA = {
    "model_type": "llama",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
}
WINDOW = 8
"""The sliding window of the tiny models that have one: every prompt of the tests crosses it."""
_GEMMA = {"head_dim": 8, "query_pre_attn_scalar": 8, "final_logit_softcapping": 30.0}
FAMILY_CONFIGS = {
    "llama": LLAMA,
    "mistral": {**LLAMA, "model_type": "mistral", "sliding_window": WINDOW},
    "qwen2": {
        **LLAMA,
        "model_type": "qwen2",
        "use_sliding_window": True,
        "sliding_window": WINDOW,
        "max_window_layers": 1,
    },
    "qwen3": {
        **LLAMA,
        "model_type": "qwen3",
        "head_dim": 8,
        "use_sliding_window": True,
        "sliding_window": WINDOW,
        "max_window_layers": 1,
    },
    "gemma2": {
        **LLAMA,
        **_GEMMA,
        "model_type": "gemma2",
        "sliding_window": WINDOW,
        "attn_logit_softcapping": 50.0,
    },
    "gemma3_text": {
        **LLAMA,
        **_GEMMA,
        "model_type": "gemma3_text",
        "sliding_window": WINDOW,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
    },
    "olmo2": {**LLAMA, "model_type": "olmo2"},
    "phi3": {**LLAMA, "model_type": "phi3", "sliding_window": WINDOW},
    "gpt_neox": {
        "model_type": "gpt_neox",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "max_position_embeddings": 256,
        "tie_word_embeddings": False,
    },
    "gpt2": {"model_type": "gpt2", "n_layer": 3, "n_embd": 32, "n_head": 4, "n_positions": 256},
}
"""A tiny config of every family on the fast path (tests/test_families.py)."""
OTHERS = {
    "phi": {**LLAMA, "model_type": "phi", "num_hidden_layers": 2, "num_key_value_heads": 4},
    "olmo": {**LLAMA, "model_type": "olmo", "num_hidden_layers": 2},
}
"""Families without an architecture entry: they run on the batched path."""


def build_tiny_model(
    folder: Path, config: dict | None = None, seed: int = 0, scale: float = 1.0
) -> Path:
    """Create a random causal LM from a config dict, save it with the tiny tokenizer, return it.

    `scale` multiplies the random weights: larger weights give sharper, more sensitive logits.
    """
    from transformers import AutoConfig

    settings = dict(config or LLAMA)
    model_type = settings.pop("model_type")
    tokenizer = tiny_tokenizer()
    ids = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 1}
    model_config = AutoConfig.for_model(model_type, vocab_size=VOCAB_SIZE, **ids, **settings)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(model_config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.mul_(scale)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


TINY_QUESTIONS = [
    {"question": "Which is a fruit?", "choices": ["apple", "stone", "chair"], "answer": 0},
    {"question": "2 + 2 = ?", "choices": ["3", "4"], "answer": "B"},
    {"question": "The sky is usually", "choices": ["green", "blue", "red", "black"], "answer": 1},
]
TINY_PROBES = (
    TextProbe("p1", "The life cycle of Drosophila:", "describe"),
    TextProbe("p2", "Why is the sky blue?", "explain"),
)


def write_questions(path: Path, questions: list[dict] | None = None) -> Path:
    """Multiple-choice questions (TINY_QUESTIONS by default) as a JSONL file."""
    records = TINY_QUESTIONS if questions is None else questions
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def tiny_spec(model_dir: Path, questions_file: Path, **changes) -> ScreenSpec:
    """A small tile screen of the tiny model: q and down of layers 0 and 2 in 8x8 tiles, max
    and min, two text probes and the choice probe, 8 new tokens; `changes` override any field."""
    settings = {
        "model": str(model_dir),
        "name": "tiny",
        "probes": TINY_PROBES,
        "choice": str(questions_file),
        "layers": (0, 2),
        "matrices": ("q", "down"),
        "sites": Tiles(8, 8),
        "kinds": ("max", "min"),
        "decoding": Decoding(max_new_tokens=8),
    }
    return ScreenSpec(**{**settings, **changes})
