"""The mutable weight matrices of a model, by layer and short name, in the orientation y = W x.

For a family with an architecture entry (`engine.families`) the matrices are the entry's: short
names (q, k, v, o, gate, up, down), fused modules split into their logical parts. For any other
model every 2-D Linear (or GPT-2 Conv1D) weight inside its decoder layers is a matrix named by
its module path. Either way a site's row is an output feature and its column an input feature,
and reading or writing a site goes through the catalog, which knows where the logical matrix
sits in its module's weight (`Layout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

import torch
from torch import nn

from mutatui.engine.architecture import text_config
from mutatui.engine.families import MATRIX_ORDER, Family, family_of
from mutatui.engine.sites import Site
from mutatui.errors import MutatuiError


@dataclass(frozen=True)
class Layout:
    """Where a logical matrix (out features x in features) sits in its module's weight.

    `transposed`: the weight is stored (in, out), as GPT-2's Conv1D stores it. The module's
    output features are `groups` repetitions of `stride` features, and this matrix owns `width`
    of each, from `offset` on (a plain matrix: one group, offset 0, all of them).
    """

    transposed: bool = False
    offset: int = 0
    width: int = 0
    stride: int = 0
    groups: int = 1

    def outputs(self, start: int, stop: int) -> slice | torch.Tensor:
        """The module's output features for logical rows start:stop (a slice when they are
        contiguous there)."""
        if self.groups == 1 or start // self.width == (stop - 1) // self.width:
            first = (start // self.width) * self.stride + self.offset + start % self.width
            return slice(first, first + stop - start)
        rows = torch.arange(start, stop)
        return (rows // self.width) * self.stride + self.offset + rows % self.width

    def logical(self, stored: torch.Tensor) -> torch.Tensor:
        """The logical matrix out of a tensor shaped like the module's weight (the weight
        itself or its gradient): a view, except for interleaved parts (a copy)."""
        matrix = stored.T if self.transposed else stored
        if self.groups == 1:
            return matrix[self.offset : self.offset + self.width]
        grouped = matrix.reshape(self.groups, self.stride, matrix.shape[-1])
        return grouped[:, self.offset : self.offset + self.width].reshape(-1, matrix.shape[-1])


@dataclass(frozen=True)
class MatrixInfo:
    """One logical weight matrix of one decoder layer, with the extremes of its values."""

    layer: int
    name: str
    path: str
    rows: int
    cols: int
    min: float
    max: float
    layout: Layout = Layout()

    @property
    def label(self) -> str:
        return f"L{self.layer}.{self.name}"


def _is_matrix_module(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return False
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D"


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder blocks: the family's, or for a model without an entry the
    longest ModuleList whose length is the layer count."""
    family = family_of(getattr(text_config(model), "model_type", None))
    if family is not None:
        path = f"{family.base}.{family.layers}"
        try:
            return path, attrgetter(path)(model)
        except AttributeError:
            pass
    expected = getattr(text_config(model), "num_hidden_layers", None)
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


def _plain(module: nn.Module) -> Layout:
    stored = module.weight
    rows = stored.shape[1] if _is_conv1d(module) else stored.shape[0]
    return Layout(_is_conv1d(module), 0, rows, rows, 1)


def _family_matrices(family: Family, config: object, layer: nn.Module):
    """(name, inner path, module, layout) of every matrix of one layer of a known family."""
    found = []
    for name, path in family.matrices.items():
        module = attrgetter(path)(layer)
        found.append((name, path, module, _plain(module)))
    for fused in family.fused:
        module = attrgetter(fused.path)(layer)
        sizes, groups = fused.sizes(config), fused.groups(config)
        stride = sum(sizes)
        for index, name in enumerate(fused.names):
            layout = Layout(_is_conv1d(module), sum(sizes[:index]), sizes[index], stride, groups)
            found.append((name, f"{fused.path}:{name}", module, layout))
    return found


def _discovered_matrices(layer: nn.Module):
    """(name, path, module, layout) of every 2-D Linear or Conv1D weight of one layer."""
    return [
        (path, path, module, _plain(module))
        for path, module in layer.named_modules()
        if path and _is_matrix_module(module)
    ]


class MatrixCatalog:
    """The mutable matrices of a model, addressable by (layer, name)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers_path, layers = decoder_layers(model)
        self.num_layers = len(layers)
        family = family_of(getattr(text_config(model), "model_type", None))
        self.family: Family | None = family
        self.value_dtype: torch.dtype | None = getattr(model, "mutatui_weight_dtype", None)
        """The precision a written value is rounded to when the weights are held in a wider
        dtype than their own (half-precision weights in float32 arithmetic); None otherwise."""
        self._modules: dict[tuple[int, str], nn.Module] = {}
        self._infos: dict[tuple[int, str], MatrixInfo] = {}
        names: list[str] = []
        for index, layer in enumerate(layers):
            found = (
                _family_matrices(family, text_config(model), layer)
                if family is not None
                else _discovered_matrices(layer)
            )
            for name, inner_path, module, layout in found:
                matrix = layout.logical(module.weight.detach())
                rows, cols = matrix.shape
                self._modules[(index, name)] = module
                self._infos[(index, name)] = MatrixInfo(
                    layer=index,
                    name=name,
                    path=f"{self.layers_path}.{index}.{inner_path}",
                    rows=int(rows),
                    cols=int(cols),
                    min=float(matrix.min()),
                    max=float(matrix.max()),
                    layout=layout,
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
        """The module whose weight holds the matrix (shared by the parts of a fused module)."""
        self.get(layer, name)
        return self._modules[(layer, name)]

    def parameter(self, layer: int, name: str) -> torch.Tensor:
        """The stored weight the matrix lives in (for gradients); see `weight` for the matrix."""
        return self.module(layer, name).weight

    def weight(self, layer: int, name: str) -> torch.Tensor:
        """The matrix as (out features, in features): a view of the stored weight, except for
        interleaved fused parts (a copy). Write through `write_site`, never into this."""
        return self.get(layer, name).layout.logical(self.parameter(layer, name))

    def outputs(self, layer: int, name: str, output: torch.Tensor) -> torch.Tensor:
        """The matrix's own features of its module's output (..., out features)."""
        info = self.get(layer, name)
        return output[..., info.layout.outputs(0, info.rows)]

    def site_values(self, site: Site) -> torch.Tensor:
        """A copy of the site's current values, shaped (rows, cols) as the site is."""
        index, transposed = self._index(site)
        values = self.parameter(site.layer, site.matrix)[index].detach()
        return (values.T if transposed else values).clone()

    def write_site(self, site: Site, values: torch.Tensor) -> None:
        """Write (rows, cols) values into the site, in place in the stored weight."""
        index, transposed = self._index(site)
        with torch.no_grad():
            self.parameter(site.layer, site.matrix)[index] = values.T if transposed else values

    def _index(self, site: Site) -> tuple[tuple, bool]:
        """The site's index into the stored weight, and whether that is stored transposed."""
        layout = self.get(site.layer, site.matrix).layout
        outputs = layout.outputs(site.row0, site.row1)
        if isinstance(outputs, torch.Tensor):
            outputs = outputs.to(self.parameter(site.layer, site.matrix).device)
        index = (site.cols, outputs) if layout.transposed else (outputs, site.cols)
        return index, layout.transposed
