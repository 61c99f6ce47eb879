"""The two models of Hu et al.'s screens, as their public configs define them (no weights), and
the tables' names of their matrices.

Llama-2-7b: 32 layers, hidden 4096, intermediate 11008, 32 heads (of 128), as many key-value
heads. Zephyr-7b-beta is a Mistral-7B: 32 layers, hidden 4096, intermediate 14336, 32 heads, 8
key-value heads (so its k and v matrices have 1024 rows). The tables give tiles of 64x64 in the
weights' own [out, in] layout: `loc1` the tile row, `loc2` the tile column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mutatui.engine.families import MATRIX_ORDER

TILE = 64
"""The edge of the squares the authors' code overwrote (their maps count in these units)."""

CITATION = (
    'Hu et al., "Mutagenesis screen to map the functionals of parameters of Large Language '
    'Models" (2024), supplementary material'
)


@dataclass(frozen=True)
class PaperModel:
    """A model of the paper: its name in the tables, its Hugging Face id (for live mode, from
    the local cache) and the shape of its decoder."""

    name: str
    hub_id: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int

    def shape(self, matrix: str) -> tuple[int, int]:
        """(rows, cols) of a matrix type, [out, in] as the weights store it."""
        kv = self.hidden // self.heads * self.kv_heads
        return {
            "q": (self.hidden, self.hidden),
            "k": (kv, self.hidden),
            "v": (kv, self.hidden),
            "o": (self.hidden, self.hidden),
            "gate": (self.intermediate, self.hidden),
            "up": (self.intermediate, self.hidden),
            "down": (self.hidden, self.intermediate),
        }[matrix]

    def tiles(self, matrix: str) -> tuple[int, int]:
        """The matrix in 64x64 tiles: (tile rows, tile columns)."""
        rows, cols = self.shape(matrix)
        return -(-rows // TILE), -(-cols // TILE)


LLAMA2_7B = PaperModel("Llama2-7b", "meta-llama/Llama-2-7b-hf", 32, 4096, 11008, 32, 32)
ZEPHYR_7B = PaperModel("Zephyr", "HuggingFaceH4/zephyr-7b-beta", 32, 4096, 14336, 32, 8)
PAPER_MODELS = {model.name: model for model in (LLAMA2_7B, ZEPHYR_7B)}

_TABLE_TYPES = {
    "attn.q": "q",
    "attn.k": "k",
    "attn.v": "v",
    "attn.o": "o",
    "mlp.gate": "gate",
    "mlp.up": "up",
    "mlp.down": "down",
}
_MATRIX_NAME = re.compile(r"^L?(\d+)[._](attn\.[qkvo]|mlp\.(?:gate|up|down))$")


def parse_matrix(text: object) -> tuple[int, str] | None:
    """(layer, type) of a table's matrix name: `0.attn.q` (Table 2), `L0_attn.q` (Table 1), or
    None when it is neither."""
    match = _MATRIX_NAME.match(str(text).strip())
    if match is None:
        return None
    return int(match.group(1)), _TABLE_TYPES[match.group(2)]


def matrix_names(model: PaperModel) -> list[tuple[int, str]]:
    """Every (layer, type) of the model, in mutatui's order."""
    return [(layer, matrix) for layer in range(model.layers) for matrix in MATRIX_ORDER]
