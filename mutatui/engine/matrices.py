"""Discover the mutable weight matrices of a model: every 2-D Linear (or GPT-2 Conv1D) weight
inside its decoder layers, with short names for the Llama family and module paths otherwise."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mutatui.errors import MutatuiError

LLAMA_SHORT_NAMES: dict[str, str] = {
    "self_attn.q_proj": "q",
    "self_attn.k_proj": "k",
    "self_attn.v_proj": "v",
    "self_attn.o_proj": "o",
    "mlp.gate_proj": "gate",
    "mlp.up_proj": "up",
    "mlp.down_proj": "down",
}
"""Module path inside a decoder layer -> the short name used in sites (`L3.down[1,2]`)."""

MATRIX_ORDER = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class MatrixInfo:
    """One weight matrix of one decoder layer, with the extremes of its unmutated values.

    `rows` and `cols` index the weight as PyTorch stores it (`weight[row, col]`). For `nn.Linear`
    a row is an output feature; GPT-2's Conv1D stores the transpose (`transposed=True`).
    """

    layer: int
    name: str
    path: str
    rows: int
    cols: int
    min: float
    max: float
    transposed: bool = False

    @property
    def label(self) -> str:
        return f"L{self.layer}.{self.name}"


def _is_matrix_module(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return False
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder blocks: the longest ModuleList whose length is the layer count."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if config is not None else None
    expected = getattr(text_config, "num_hidden_layers", None)
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0
    ]
    if expected is not None:
        matching = [item for item in candidates if len(item[1]) == expected]
        if matching:
            return matching[0]
    if not candidates:
        raise MutatuiError(f"{type(model).__name__} has no list of decoder layers to mutate")
    return max(candidates, key=lambda item: len(item[1]))


class MatrixCatalog:
    """The mutable matrices of a model, addressable by (layer, name)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers_path, layers = decoder_layers(model)
        self.num_layers = len(layers)
        self._modules: dict[tuple[int, str], nn.Module] = {}
        self._infos: dict[tuple[int, str], MatrixInfo] = {}
        names: list[str] = []
        for index, layer in enumerate(layers):
            for inner_path, module in layer.named_modules():
                if not inner_path or not _is_matrix_module(module):
                    continue
                name = LLAMA_SHORT_NAMES.get(inner_path, inner_path)
                weight = module.weight.detach()
                rows, cols = weight.shape
                self._modules[(index, name)] = module
                self._infos[(index, name)] = MatrixInfo(
                    layer=index,
                    name=name,
                    path=f"{self.layers_path}.{index}.{inner_path}",
                    rows=int(rows),
                    cols=int(cols),
                    min=float(weight.min()),
                    max=float(weight.max()),
                    transposed=type(module).__name__ == "Conv1D",
                )
                if name not in names:
                    names.append(name)
        if not self._infos:
            raise MutatuiError(f"{type(model).__name__} has no 2-D weight matrices in its layers")
        order = {name: position for position, name in enumerate(MATRIX_ORDER)}
        self.names: tuple[str, ...] = tuple(sorted(names, key=lambda n: order.get(n, len(order))))

    def __iter__(self):
        return iter(sorted(self._infos.values(), key=self._sort_key))

    def __len__(self) -> int:
        return len(self._infos)

    def _sort_key(self, info: MatrixInfo) -> tuple[int, int]:
        return info.layer, self.names.index(info.name)

    def get(self, layer: int, name: str) -> MatrixInfo:
        """The matrix at (layer, name), or a one-line error that says what is valid."""
        if not 0 <= layer < self.num_layers:
            raise MutatuiError(f"layer {layer} out of range; valid: 0..{self.num_layers - 1}")
        info = self._infos.get((layer, name))
        if info is None:
            raise MutatuiError(f"unknown matrix {name!r}; valid: {', '.join(self.names)}")
        return info

    def module(self, layer: int, name: str) -> nn.Module:
        self.get(layer, name)
        return self._modules[(layer, name)]

    def weight(self, layer: int, name: str) -> torch.Tensor:
        return self.module(layer, name).weight
