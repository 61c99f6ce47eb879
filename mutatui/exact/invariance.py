"""Matrix products whose batched rows come out bit for bit as lone rows do.

In half precision a batched logit and a lone one differ by a few epsilons of the dtype, enough
to flip most near decisions, because a matrix product's rounding depends on the order its
kernel adds the products in, and the library picks the kernel by the number of rows. Up to
some number of rows a CPU library may keep one kernel whose rows each accumulate in the same
order as a lone row's (oneDNN with AMX: up to 32 rows in bfloat16, beyond that AMX tiles), or
may not (an AVX-512 CPU without AMX: SmolLM2's down projection differs at two rows).
`row_chunk` measures it on every shape of the model, with inputs and weights built to reveal
the order of summation (kernels that add in different orders agree on real weights most of
the time, so a random probe passes by chance) and on the model's own weights.
`ChunkedLinears` then computes every product of a batch in chunks of at most that many rows,
and each mutant's own product alone with its weight edited, as the naive path computes it; a
product over more positions than a chunk holds (a long prompt) runs per row, in the lone
call's own shape.
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


ORDER_SCALE = 2.0**24
"""A weight of the order-revealing probe: float32 loses a unit added to it (2^24 + 1 rounds to
2^24), so a sum holding it and its negative depends on the order the products are added in."""


def order_probe(module: nn.Linear) -> nn.Linear:
    """A linear layer of `module`'s shape, dtype and device (what picks the kernel) whose
    products reveal the order they are summed in: each output row holds +2^24 and -2^24 at two
    inputs (a different pair per row) and units elsewhere, so its sum with inputs of +-1 counts
    the units the kernel added between the two. Two kernels that sum in different orders give
    different outputs on some row; on real weights they would agree most of the time, which is
    why random inputs alone miss them (SmolLM2's down projection in bfloat16 on an AVX-512 CPU
    without AMX: one row in ten)."""
    outputs, inputs = module.weight.shape
    rows = torch.arange(outputs)
    first = (rows * 7919) % inputs
    second = (rows * 104729 + inputs // 2 + 1) % inputs
    second = torch.where(second == first, (first + 1) % inputs, second)
    weight = torch.ones(outputs, inputs)
    weight[rows, first] = ORDER_SCALE
    weight[rows, second] = -ORDER_SCALE
    probe = nn.Linear(inputs, outputs, bias=module.bias is not None)
    probe.weight.data = weight.to(device=module.weight.device, dtype=module.weight.dtype)
    if module.bias is not None:
        bias = torch.where(rows % 2 == 0, ORDER_SCALE, 1.0)
        probe.bias.data = bias.to(device=module.bias.device, dtype=module.bias.dtype)
    return probe


def _order_input(weight: torch.Tensor, rows: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (rows, weight.shape[1]), generator=generator) * 2 - 1
    return signs.to(device=weight.device, dtype=weight.dtype)


def _probe_input(weight: torch.Tensor, rows: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(rows, weight.shape[1], generator=generator)
    scales = torch.rand(rows, 1, generator=generator) * 8
    return (values * scales).to(device=weight.device, dtype=weight.dtype)


def rows_agree(module: nn.Linear, chunk: int) -> bool:
    """Whether products of 2..`chunk` rows give every row as a lone row's product does: on the
    order-revealing probe of `module`'s shape, and on `module`'s own weight."""
    probe = order_probe(module)
    return _agree(probe, _order_input(probe.weight, chunk)) and _agree(
        module, _probe_input(module.weight, chunk)
    )


def _agree(module: nn.Linear, inputs: torch.Tensor) -> bool:
    weight, bias = module.weight, module.bias
    chunk = inputs.shape[0]
    lone = torch.cat([F.linear(inputs[row : row + 1], weight, bias) for row in range(chunk)])
    return all(
        torch.equal(F.linear(inputs[:rows], weight, bias), lone[:rows])
        for rows in range(2, chunk + 1)
    )


def row_chunk(modules: Iterable[nn.Module]) -> int:
    """The most rows per product for which every one of `modules` (all `nn.Linear`) computes
    each row as it computes a lone row: one when there is no such chunk (no batching then keeps
    the naive path's floats)."""
    shapes: dict[tuple, nn.Linear] = {}
    for module in modules:
        if type(module) is not nn.Linear:
            return 1
        weight = module.weight
        key = (*weight.shape, weight.dtype, weight.device, module.bias is None)
        shapes.setdefault(key, module)
    with torch.inference_mode():
        for chunk in ROW_CHUNKS:
            if all(rows_agree(module, chunk) for module in shapes.values()):
                return chunk
    return 1


@dataclass(frozen=True)
class RowEdit:
    """One mutation as a batch row sees it: the mutation and the module it edits."""

    mutation: Mutation
    module: nn.Linear


def row_edit(catalog: MatrixCatalog, mutation: Mutation) -> RowEdit:
    """The edit of `mutation` on its module."""
    site = mutation.site
    return RowEdit(mutation, catalog.module(site.layer, site.matrix))


@dataclass
class ChunkedLinears:
    """While entered, each of `modules` computes in chunks of at most `chunk` rows, and the
    rows in `edits[module]` ((row, edit) pairs) get their output recomputed alone with the
    weight edited, as the naive path computes it. `edits` may change between calls (rows move
    as a batch decodes)."""

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
            with mutated(self.catalog, edit.mutation):
                output[row] = F.linear(rows[row], module.weight, module.bias)
        return output.view(*inputs.shape[:-1], module.out_features)
