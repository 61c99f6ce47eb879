"""Matrix products whose batched rows come out bit for bit as lone rows do.

In half precision a batched logit and a lone one differ by a few epsilons of the dtype, enough
to flip most near decisions, because a matrix product's rounding depends on the kernel the
library picks, and that depends on the number of rows. Up to some number of rows, though, a
CPU library keeps one kernel whose rows each accumulate in the same order as a lone row's
(oneDNN on an AVX-512 machine: up to 32 rows in bfloat16; beyond that it switches to AMX tiles),
and restricting such a product to some output features gives those features unchanged.
`row_chunk` measures that on the model's own weights. `ChunkedLinears` then computes every
product of a batch in chunks of at most that many rows, and recomputes the outputs a mutant's
edit changes from its edited weights, as the naive path computes them; a product over more
positions than a chunk holds (a long prompt) runs per row, in the lone call's own shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.mutations import Mutation, mutated

ROW_CHUNKS = (32, 16, 8, 4, 2)
"""Chunk sizes `row_chunk` tries, largest first."""

_PROBE_SLICES = ((0, 1), (1, 2), (0, 64), (64, 128), (-1, None))
"""Output features a probe recomputes alone (first and second, two blocks of 64, the last)."""


def _probe_input(weight: torch.Tensor, rows: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(rows, weight.shape[1], generator=generator)
    scales = torch.rand(rows, 1, generator=generator) * 8
    return (values * scales).to(device=weight.device, dtype=weight.dtype)


def _rows_agree(module: nn.Linear, chunk: int) -> bool:
    """Whether products of 2..`chunk` rows, and of one row and of `chunk` rows restricted to
    some output features, equal lone rows' products on `module`'s weight."""
    weight, bias = module.weight, module.bias
    inputs = _probe_input(weight, chunk)
    lone = torch.cat([F.linear(inputs[row : row + 1], weight, bias) for row in range(chunk)])
    for rows in range(2, chunk + 1):
        if not torch.equal(F.linear(inputs[:rows], weight, bias), lone[:rows]):
            return False
    for start, stop in _PROBE_SLICES:
        part = slice(start, stop)
        part_bias = None if bias is None else bias[part]
        for rows in (1, chunk):
            alone = F.linear(inputs[:rows], weight[part], part_bias)
            if not torch.equal(alone, lone[:rows, part]):
                return False
    return True


def row_chunk(modules: Iterable[nn.Module]) -> int:
    """The most rows per product for which every one of `modules` (all `nn.Linear`) computes
    each row as it computes a lone row, and any of its output features as the whole product
    does: one when there is no such chunk (no batching then keeps the naive path's floats)."""
    shapes: dict[tuple, nn.Linear] = {}
    for module in modules:
        if type(module) is not nn.Linear:
            return 1
        weight = module.weight
        key = (*weight.shape, weight.dtype, weight.device, module.bias is None)
        shapes.setdefault(key, module)
    with torch.inference_mode():
        for chunk in ROW_CHUNKS:
            if all(_rows_agree(module, chunk) for module in shapes.values()):
                return chunk
    return 1


@dataclass(frozen=True)
class RowEdit:
    """One mutation as a batch row sees it: its module, the output features it changes, and
    the module's weight (and bias) rows for them with the edit in place."""

    mutation: Mutation
    module: nn.Linear
    outputs: slice | torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None


def row_edit(catalog: MatrixCatalog, mutation: Mutation) -> RowEdit:
    """The edit of `mutation`, read from the weight as the naive path edits it
    (`mutations.mutated`), so its rounding is the naive path's."""
    site = mutation.site
    module = catalog.module(site.layer, site.matrix)
    outputs = catalog.get(site.layer, site.matrix).layout.outputs(site.row0, site.row1)
    if isinstance(outputs, torch.Tensor):
        outputs = outputs.to(module.weight.device)
    with mutated(catalog, mutation):
        weight = module.weight[outputs].clone()
    bias = None if module.bias is None else module.bias[outputs]
    return RowEdit(mutation, module, outputs, weight, bias)


@dataclass
class ChunkedLinears:
    """While entered, each of `modules` computes in chunks of at most `chunk` rows, and the
    rows in `edits[module]` ((row, edit) pairs) get the outputs their mutation changes
    recomputed from their edited weights. `edits` may change between calls (rows move as a
    batch decodes)."""

    catalog: MatrixCatalog
    modules: Sequence[nn.Linear]
    chunk: int
    edits: dict[nn.Module, list[tuple[int, RowEdit]]] = field(default_factory=dict)

    @contextmanager
    def active(self) -> Iterator[ChunkedLinears]:
        try:
            for module in self.modules:
                module.forward = partial(self._forward, module)
            yield self
        finally:
            for module in self.modules:
                module.__dict__.pop("forward", None)

    def _forward(self, module: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
        rows = inputs.reshape(inputs.shape[0], -1, inputs.shape[-1])
        output = rows.new_empty(*rows.shape[:2], module.out_features)
        positions = rows.shape[1]
        per_call = max(1, self.chunk // positions)
        for start in range(0, rows.shape[0], per_call):
            part = slice(start, start + per_call)
            flat = rows[part].reshape(-1, rows.shape[-1])  # a 2-D product, as a lone row's is
            output[part] = F.linear(flat, module.weight, module.bias).view_as(output[part])
        for row, edit in self.edits.get(module, ()):
            output[row] = self._edited(module, rows[row], output[row], edit)
        return output.view(*inputs.shape[:-1], module.out_features)

    def _edited(
        self, module: nn.Linear, inputs: torch.Tensor, output: torch.Tensor, edit: RowEdit
    ) -> torch.Tensor:
        """One row's output with its edit: only the changed features, from the edited weight
        rows; a product over more positions than a chunk runs whole with the weight edited
        (the lone call's kernel need not give a slice of features unchanged)."""
        if inputs.shape[0] > self.chunk:
            with mutated(self.catalog, edit.mutation):
                return F.linear(inputs, module.weight, module.bias)
        output[:, edit.outputs] = F.linear(inputs, edit.weight, edit.bias)
        return output
