"""The decoder families mutatui knows, one entry each: where a family keeps its parts and what
its matrix names mean.

An entry is data, read by the one adapter (`engine.architecture.Architecture`): the attribute
paths of the embedding, the decoder layers, the final norm and the rotary embedding, how the
layers' attention windows are configured, whether the head soft-caps its logits, and the
matrices of a decoder layer by their short names. Adding a family is one entry here and its
tests (tests/test_families.py).

A matrix name always means a logical matrix W in the orientation y = W x: a row is an output
feature, a column an input feature, whatever the storage (GPT-2's Conv1D stores the transpose).
Where a family fuses several matrices into one module (Phi-3's `qkv_proj` and `gate_up_proj`,
GPT-NeoX's `query_key_value`, GPT-2's `c_attn`), each part has its own name and its own
extremes: `max` and `min` of `q` are those of the q part alone, as they are for Llama's `q_proj`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

MATRIX_ORDER = ("q", "k", "v", "o", "gate", "up", "down")
"""The order of short names in catalogs, grids and reports."""

MATRIX_SPACES: Mapping[str, tuple[str, str]] = {
    "q": ("query heads", "residual"),
    "k": ("key-value heads", "residual"),
    "v": ("key-value heads", "residual"),
    "o": ("residual", "query heads"),
    "gate": ("intermediate", "residual"),
    "up": ("intermediate", "residual"),
    "down": ("residual", "intermediate"),
}
"""Short name -> what its (rows, columns) index: a row of `down` is a channel of the residual
stream, a column one of the layer's own MLP intermediate; `o` reads the concatenated outputs of
the query heads. The residual stream is one space through all layers; the others are a layer's
own."""

Sizes = Callable[[object], tuple[int, ...]]
"""Output features of each part of a fused module, from the model's (text) config."""


def _head_dim(config: object) -> int:
    explicit = getattr(config, "head_dim", None)
    return int(explicit or config.hidden_size // config.num_attention_heads)


def _grouped_qkv(config: object) -> tuple[int, ...]:
    """q, k, v of grouped-query attention fused in this order (Phi-3)."""
    head = _head_dim(config)
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return config.num_attention_heads * head, kv_heads * head, kv_heads * head


def _equal_thirds(config: object) -> tuple[int, ...]:
    return (config.hidden_size,) * 3


def _one_head_thirds(config: object) -> tuple[int, ...]:
    head = config.hidden_size // config.num_attention_heads
    return (head,) * 3


def _halves(config: object) -> tuple[int, ...]:
    return (config.intermediate_size,) * 2


def _one_group(config: object) -> int:
    return 1


def _heads(config: object) -> int:
    return int(config.num_attention_heads)


@dataclass(frozen=True)
class Fused:
    """A module whose output holds several logical matrices, in `names` order.

    `sizes` gives each part's output features within one group; `groups` how many times the
    parts repeat (GPT-NeoX lays out q, k, v per attention head: [head][q|k|v][head_dim], so its
    groups are the heads; a plain concatenation is one group).
    """

    path: str
    names: tuple[str, ...]
    sizes: Sizes
    groups: Callable[[object], int] = _one_group


LLAMA_MATRICES: Mapping[str, str] = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}
"""Short name -> module path inside a decoder layer, for the Llama layout."""


@dataclass(frozen=True)
class Family:
    """Where one decoder family keeps its parts (paths are attribute paths, dot-separated).

        `base` is the decoder stack inside the causal LM; `embed`, `layers`, `norm`, `rotary` and
        `positions` (a learned position table, GPT-2) are inside `base`. Arguments a layer takes
    besides the hidden states, which the adapter passes as keywords, are named in `positional`
    where the model passes them by position. `windows` says where a
        layer's sliding attention window comes from: "none", "config" (`config.sliding_window` for
        every layer when set: Mistral, Phi-3) or "layer_types" (`config.sliding_window` for the
        layers whose `config.layer_types` entry is "sliding_attention": Qwen, Gemma).
        `rotary_by_layer_type`: the rotary embedding is called with the layer's type (Gemma 3's
        local and global layers rotate differently). `softcap` names the config field that caps the
        head's logits (Gemma 2 and 3), if any.
    """

    name: str
    base: str = "model"
    embed: str = "embed_tokens"
    positions: str | None = None
    layers: str = "layers"
    norm: str = "norm"
    rotary: str | None = "rotary_emb"
    rotary_by_layer_type: bool = False
    windows: str = "none"
    matrices: Mapping[str, str] = field(default_factory=lambda: dict(LLAMA_MATRICES))
    fused: tuple[Fused, ...] = ()
    softcap: str | None = None
    positional: tuple[str, ...] = ()
    """Arguments the model passes its layers by position after the hidden states (GPT-2)."""


LLAMA = Family("Llama")
_PHI3_MATRICES = {"o": "self_attn.o_proj", "down": "mlp.down_proj"}

FAMILIES: Mapping[str, Family] = {
    "llama": LLAMA,
    "mistral": replace(LLAMA, name="Mistral", windows="config"),
    "qwen2": replace(LLAMA, name="Qwen2", windows="layer_types"),
    "qwen3": replace(LLAMA, name="Qwen3", windows="layer_types"),
    "olmo2": replace(LLAMA, name="OLMo 2"),
    "gemma2": replace(
        LLAMA, name="Gemma 2", windows="layer_types", softcap="final_logit_softcapping"
    ),
    "gemma3_text": replace(
        LLAMA,
        name="Gemma 3",
        windows="layer_types",
        rotary_by_layer_type=True,
        softcap="final_logit_softcapping",
    ),
    "phi3": replace(
        LLAMA,
        name="Phi-3",
        windows="config",
        matrices=_PHI3_MATRICES,
        fused=(
            Fused("self_attn.qkv_proj", ("q", "k", "v"), _grouped_qkv),
            Fused("mlp.gate_up_proj", ("gate", "up"), _halves),
        ),
    ),
    "gpt_neox": Family(
        "GPT-NeoX",
        base="gpt_neox",
        embed="embed_in",
        norm="final_layer_norm",
        matrices={
            "o": "attention.dense",
            "up": "mlp.dense_h_to_4h",
            "down": "mlp.dense_4h_to_h",
        },
        fused=(Fused("attention.query_key_value", ("q", "k", "v"), _one_head_thirds, _heads),),
    ),
    "gpt2": Family(
        "GPT-2",
        base="transformer",
        embed="wte",
        positions="wpe",
        layers="h",
        norm="ln_f",
        rotary=None,
        matrices={"o": "attn.c_proj", "up": "mlp.c_fc", "down": "mlp.c_proj"},
        fused=(Fused("attn.c_attn", ("q", "k", "v"), _equal_thirds),),
        positional=("cache", "attention_mask", "encoder_hidden_states"),
    ),
}
"""model_type -> family: every family on the fast exact path."""


def family_of(model_type: str | None) -> Family | None:
    """The family of a config's `model_type`, or None when mutatui has no entry for it."""
    return FAMILIES.get(model_type or "")
