"""Per-sample interventions: many different mutations in one batched forward pass.

A matrix computes y = x W^T (W as the catalog orients it, whatever the storage). Changing the
block W[R, C] by D changes only y[..., R], by x[..., C] @ D^T; for a part of a fused module,
R are the module's output features that the part's rows are (`Layout.outputs`). So instead of editing the weight, a forward hook adds that delta to the
output of the mutated matrix, for the batch rows (samples) that carry the mutation; other rows
see the unmutated model. This is the weight-level analogue of the hook points of TransformerLens
and nnsight, and it never touches the stored weights.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.mutations import Mutation, target_block


@dataclass(frozen=True)
class _BlockDelta:
    sample: int
    outputs: slice | torch.Tensor  # the module's output features of the site's rows
    cols: slice
    delta: torch.Tensor  # (rows, cols), the matrix's orientation (y = W x)


@dataclass
class _ModuleDeltas:
    """Every delta on one module, with element deltas packed for one vectorized update."""

    blocks: list[_BlockDelta]
    samples: torch.Tensor | None = None
    outputs: torch.Tensor | None = None
    cols: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def apply(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.samples is not None:
            gathered = x.movedim(-1, 1)[self.samples, self.cols]  # (n, *positions)
            shape = (-1,) + (1,) * (gathered.dim() - 1)
            update = gathered * self.values.to(gathered.dtype).view(shape)
            y.movedim(-1, 1).index_put_((self.samples, self.outputs), update, accumulate=True)
        for block in self.blocks:
            y[block.sample, ..., block.outputs] += x[block.sample, ..., block.cols] @ block.delta.T
        return y


def _pack(catalog: MatrixCatalog, assignments: Sequence[tuple[int, Mutation]]):
    grouped: dict[nn.Module, _ModuleDeltas] = {}
    elements: dict[nn.Module, list[tuple[int, int, int, float]]] = defaultdict(list)
    for sample, mutation in assignments:
        site = mutation.site
        info = catalog.get(site.layer, site.matrix)
        module = catalog.module(site.layer, site.matrix)
        entry = grouped.setdefault(module, _ModuleDeltas(blocks=[]))
        delta = target_block(mutation, catalog) - catalog.site_values(site)
        outputs = info.layout.outputs(site.row0, site.row1)
        if site.is_element:
            elements[module].append((sample, outputs.start, site.col0, float(delta)))
        else:
            if isinstance(outputs, torch.Tensor):
                outputs = outputs.to(delta.device)
            entry.blocks.append(_BlockDelta(sample, outputs, site.cols, delta))
    for module, items in elements.items():
        weight = module.weight
        entry = grouped[module]
        samples, outputs, cols, values = zip(*items, strict=True)
        as_index = {"dtype": torch.long, "device": weight.device}
        entry.samples = torch.tensor(samples, **as_index)
        entry.outputs = torch.tensor(outputs, **as_index)
        entry.cols = torch.tensor(cols, **as_index)
        entry.values = torch.tensor(values, dtype=weight.dtype, device=weight.device)
    return grouped


@contextmanager
def sample_deltas(
    catalog: MatrixCatalog, assignments: Sequence[tuple[int, Mutation]]
) -> Iterator[None]:
    """Within the block, batch row `sample` of every forward pass sees its mutation(s).

    `assignments` pairs a batch row with a mutation; rows without one run the unmutated model.
    Several mutations may share a row (a combined mutant) or a module.
    """
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for module, deltas in _pack(catalog, assignments).items():

            def hook(_module, args, output, deltas=deltas):
                return deltas.apply(args[0], output)

            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
