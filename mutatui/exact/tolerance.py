"""Near-tie tolerances measured, not guessed: how far the engine's batched logits are from the
naive path's lone logits, on this model, in this dtype and arithmetic, on this device.

A decision is safe to take from a batched pass when its margin (top1 - top2, relative to
1 + |top1|) is more than twice the largest difference between a batched and a lone logit: no
rounding difference can then flip it. `calibrate` runs a sample of mutations both ways (the
engine's teacher-forced pass; the naive path as `model.generate` computes it: the weight
edited, the prompt in one call, then one token at a time with a cache) and measures that
difference, up to each mutant's first different choice. The tolerance is `SAFETY` times the
largest seen, and never below the dtype's floor (`decoding.NEAR_TIE_EPSILONS`): a rare mutant
(a block set to its matrix's minimum, whose huge activations amplify rounding) can go further
than a sample shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TypeVar

import torch
from transformers import DynamicCache

from mutatui.engine.decoding import NEAR_TIE_EPSILONS
from mutatui.engine.kv import with_cache
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation, mutated

CALIBRATION_MUTATIONS = 12
"""Mutations a calibration holds against the naive path (evenly spread over what is screened)."""

SAFETY = 8.0
"""Tolerance over the largest measured difference: a margin moves by up to twice a logit's
difference, and a sample is a sample (a factor of four on top)."""


@dataclass(frozen=True)
class Tolerance:
    """Relative margins below which a decision is a near tie, settled on the naive path.

    `measured_element` and `measured_block` are the largest relative differences between a
    batched and a lone logit that calibration saw (None when not measured), over `mutations`
    mutants."""

    element: float
    block: float
    measured_element: float | None = None
    measured_block: float | None = None
    mutations: int = 0

    def of(self, mutation: Mutation | None) -> float:
        """The tolerance for `mutation` (None: the unmutated model, as an element)."""
        if mutation is None or mutation.site.is_element:
            return self.element
        return self.block

    def describe(self, dtype: torch.dtype) -> str:
        eps = torch.finfo(dtype).eps
        text = f"{self.element:.2g} elements, {self.block:.2g} blocks"
        text += f" ({self.element / eps:.0f} and {self.block / eps:.0f} eps)"
        if self.mutations:
            seen = [v for v in (self.measured_element, self.measured_block) if v is not None]
            text += f"; measured on {self.mutations} mutants, largest difference "
            text += f"{max(seen) / eps:.1f} eps" if seen else "none"
        return text


T = TypeVar("T")


def spread(items: Sequence[T], count: int = CALIBRATION_MUTATIONS) -> list[T]:
    """Up to `count` of `items`, evenly spread over them (a screen's layers differ in cost and
    in rounding, so a sample takes from all of them)."""
    step = max(1, len(items) // max(count, 1))
    return list(items[::step][:count])


def floor_tolerance(dtype: torch.dtype) -> Tolerance:
    """The unmeasured tolerance of an arithmetic dtype (`decoding.NEAR_TIE_EPSILONS`), which
    a measurement never goes below: a rare mutant can go further than a sample shows."""
    element, block = NEAR_TIE_EPSILONS.get(dtype, NEAR_TIE_EPSILONS[torch.float16])
    eps = torch.finfo(dtype).eps
    return Tolerance(element * eps, block * eps)


def lone_logits(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    mutation: Mutation | None,
    sequence: Sequence[int],
    prompt_length: int,
) -> torch.Tensor:
    """The naive path's logits at every decision of `sequence` (the prompt, then the tokens
    fed after it), as `model.generate` computes them: the weight edited, the prompt in one call,
    then one token at a time with a cache. (decisions, vocab), float32."""
    device = catalog.parameter(0, catalog.names[0]).device
    inputs = [list(sequence[:prompt_length]), *([token] for token in sequence[prompt_length:])]
    cache = DynamicCache(config=lm.model.config)
    steps = []
    with torch.inference_mode(), mutated(catalog, mutation) if mutation else nullcontext():
        for ids in inputs:
            output = lm.model(
                input_ids=torch.tensor([ids], device=device),
                **with_cache(lm.model, cache),
                logits_to_keep=1,
            )
            steps.append(output.logits[0, -1].float())
    return torch.stack(steps)


def relative_difference(batched: torch.Tensor, lone: torch.Tensor) -> float:
    """The largest |batched - lone| over steps and vocabulary, relative to 1 + |top1| of the
    lone logits at each step (how margins are measured)."""
    top = lone.max(dim=-1).values.abs()
    return float(((batched.float() - lone).abs().max(dim=-1).values / (1 + top)).max())


def from_measurements(
    dtype: torch.dtype, elements: Sequence[float], blocks: Sequence[float]
) -> Tolerance:
    """The tolerance for differences measured on element and block mutants."""
    floor = floor_tolerance(dtype)
    measured_element = max(elements) if elements else None
    measured_block = max(blocks) if blocks else None
    element = max(floor.element, SAFETY * (measured_element or 0.0))
    block = max(floor.block, element, SAFETY * (measured_block or 0.0))
    return Tolerance(element, block, measured_element, measured_block, len(elements) + len(blocks))
