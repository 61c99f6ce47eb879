"""Per-sample interventions: many different mutations in one batched forward pass.

A Linear layer computes y = x W^T. Changing the block W[R, C] by D changes only y[..., R],
by x[..., C] @ D^T. So instead of editing the weight, a forward hook adds that delta to the
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
    rows: slice
    cols: slice
    delta: torch.Tensor  # (rows, cols) in the weight's storage orientation


@dataclass
class _ModuleDeltas:
    """Every delta on one module, with element deltas packed for one vectorized update."""

    transposed: bool
    blocks: list[_BlockDelta]
    samples: torch.Tensor | None = None
    rows: torch.Tensor | None = None
    cols: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def apply(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Storage orientation: Linear weight is (out, in); Conv1D weight is (in, out).
        if self.samples is not None:
            outs, ins = (self.cols, self.rows) if self.transposed else (self.rows, self.cols)
            gathered = x.movedim(-1, 1)[self.samples, ins]  # (n, *positions)
            shape = (-1,) + (1,) * (gathered.dim() - 1)
            update = gathered * self.values.to(gathered.dtype).view(shape)
            y.movedim(-1, 1).index_put_((self.samples, outs), update, accumulate=True)
        for block in self.blocks:
            if self.transposed:
                y[block.sample, ..., block.cols] += x[block.sample, ..., block.rows] @ block.delta
            else:
                y[block.sample, ..., block.rows] += x[block.sample, ..., block.cols] @ block.delta.T
        return y


def _pack(catalog: MatrixCatalog, assignments: Sequence[tuple[int, Mutation]]):
    grouped: dict[tuple[int, str], _ModuleDeltas] = {}
    elements: dict[tuple[int, str], list[tuple[int, int, int, float]]] = defaultdict(list)
    for sample, mutation in assignments:
        site = mutation.site
        key = (site.layer, site.matrix)
        info = catalog.get(*key)
        weight = catalog.weight(*key)
        entry = grouped.setdefault(key, _ModuleDeltas(transposed=info.transposed, blocks=[]))
        delta = target_block(mutation, catalog) - weight[site.rows, site.cols].detach()
        if site.is_element:
            elements[key].append((sample, site.row0, site.col0, float(delta)))
        else:
            entry.blocks.append(_BlockDelta(sample, site.rows, site.cols, delta))
    for key, items in elements.items():
        weight = catalog.weight(*key)
        entry = grouped[key]
        samples, rows, cols, values = zip(*items, strict=True)
        as_index = {"dtype": torch.long, "device": weight.device}
        entry.samples = torch.tensor(samples, **as_index)
        entry.rows = torch.tensor(rows, **as_index)
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
        for key, deltas in _pack(catalog, assignments).items():
            module: nn.Module = catalog.module(*key)

            def hook(_module, args, output, deltas=deltas):
                return deltas.apply(args[0], output)

            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
