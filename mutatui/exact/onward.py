"""Decoding diverged mutants onward from where they left the baseline, all in one batch.

A mutant that diverged at step t has, from its teacher-forced run, the keys and values of the
prompt and baseline tokens 0..t-1 (its own for the layers it ran, the baseline's below). Every
row keeps the teacher-forced cache of the same length; a row masks out the positions past its own
prefix, and its new tokens take the positions after its prefix (rotary positions and sliding
windows count from its prefix, not from the cache slot). So rows diverged at different steps decode together, one
forward pass per step, with no padding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mutatui.engine.architecture import Positions
from mutatui.engine.decoding import Chooser, Decoding, too_close
from mutatui.engine.mutations import Mutation
from mutatui.exact.layers import BaselineTrace, KVStore, LayerRunner


@dataclass
class Diverged:
    """A mutant to decode onward: its tokens so far (the baseline's prefix, then its own token
    at the divergence step), and the keys and values it computed, for its layers and up."""

    index: int
    mutation: Mutation
    layer: int
    diverge_at: int
    tokens: list[int]
    keys: dict[int, torch.Tensor]  # layer -> (1, kv_heads, positions, head_dim)
    values: dict[int, torch.Tensor]
    tolerance: float  # its near-tie tolerance
    ties: list[int]  # its steps decided by a near tie so far
    nonfinite: bool
    stopped: bool = field(default=False)

    def note(self, step: int, margin: float, nonfinite: bool) -> None:
        if too_close(margin, self.tolerance):
            self.ties.append(step)
        self.nonfinite |= nonfinite


def _assemble_cache(rows: list[Diverged], trace: BaselineTrace, length: int) -> KVStore:
    kv = KVStore()
    for layer in trace.kv.keys:
        keys, values = [], []
        for row in rows:
            own = layer >= row.layer
            keys.append((row.keys if own else trace.kv.keys)[layer][..., :length, :])
            values.append((row.values if own else trace.kv.values)[layer][..., :length, :])
        kv.keys[layer] = torch.cat(keys)
        kv.values[layer] = torch.cat(values)
    return kv


def decode_onward(
    runner: LayerRunner,
    trace: BaselineTrace,
    prompt_length: int,
    rows: list[Diverged],
    chooser: Chooser,
    decoding: Decoding,
    eos: frozenset[int],
    observe: Callable[[Diverged, torch.Tensor], None] | None = None,
) -> None:
    """Decode every row until EOS or `max_new_tokens`, updating the rows in place.

    `observe(row, logits)`, if given, sees each row's logits at every step (for measuring how far
    batched logits are from lone ones: benchmarks/near_ties.py)."""
    active = [row for row in rows if len(row.tokens) < decoding.max_new_tokens]
    if not active:
        return
    device = runner.head_weight.device
    length = prompt_length + max(row.diverge_at for row in active)
    kv = _assemble_cache(active, trace, length)
    kv.reserve(decoding.max_new_tokens)
    slots = torch.arange(length, device=device)
    prefix = torch.tensor([prompt_length + row.diverge_at for row in active], device=device)
    visible = slots.view(1, -1) < prefix.view(-1, 1)
    key_positions = slots.view(1, -1).expand(len(active), -1)
    while active:
        tokens = torch.tensor([row.tokens[-1] for row in active], device=device)
        positions = torch.tensor(
            [prompt_length + len(row.tokens) - 1 for row in active], device=device
        ).view(-1, 1)
        key_positions = torch.cat([key_positions, positions], dim=1)
        visible = torch.cat([visible, visible.new_ones(len(active), 1)], dim=1)
        step = Positions(positions, key_positions, visible)
        logits = runner.step(tokens, step, kv, [row.mutation for row in active])
        nonfinite = (~torch.isfinite(logits).all(dim=-1)).tolist()
        steps = [len(row.tokens) for row in active]
        chosen, margins = chooser.choose(logits, steps)
        for offset, (row, step_index, token, margin) in enumerate(
            zip(active, steps, chosen.tolist(), margins.tolist(), strict=True)
        ):
            if observe is not None:
                observe(row, logits[offset])
            row.note(step_index, margin, nonfinite[offset])
            if token in eos:
                row.stopped = True
            else:
                row.tokens.append(token)
        keep = [
            offset
            for offset, row in enumerate(active)
            if not row.stopped and len(row.tokens) < decoding.max_new_tokens
        ]
        if len(keep) < len(active):
            chosen = torch.tensor(keep, dtype=torch.long, device=device)
            kv.select(chosen)
            visible = visible.index_select(0, chosen)
            key_positions = key_positions.index_select(0, chosen)
            active = [active[offset] for offset in keep]
