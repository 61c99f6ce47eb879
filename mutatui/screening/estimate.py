"""How long a screen will take and how much memory it needs, on this machine, before it runs.

A sample of the plan's mutations, spread evenly over it (so over its layers, whose cost
differs), is graded exactly as the screen grades a batch (every probe, the choice assay,
grading), in batches as full as the screen's will be (`Plan.batch_fill`), after one warm-up
mutation; the time per mutation, scaled by the mutations planned,
is the estimate. The memory is the peak seen while grading the sample, and the bound for a
full batch: the model's weights plus a batch of rows (`exact.screener.row_bytes`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mutatui.engine.models import LoadedModel
from mutatui.engine.steps import StepHook, no_steps
from mutatui.exact.screener import row_bytes
from mutatui.exact.selfcheck import peak_memory
from mutatui.exact.tolerance import spread
from mutatui.screening.plan import WHOLE, Shard
from mutatui.screening.runner import BatchGrader, prepare_screen
from mutatui.screening.spec import ScreenSpec

SAMPLE = 32
"""Mutations graded to measure the rate (fewer when the engine's batch or the plan is smaller)."""


@dataclass(frozen=True)
class Estimate:
    planned: int
    sampled: int
    seconds_per_mutation: float
    batch_size: int
    peak_memory: int
    batch_memory: int
    path: str
    setup: str
    notes: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return self.planned * self.seconds_per_mutation


def estimate_screen(
    lm: LoadedModel,
    spec: ScreenSpec,
    shard: Shard = WHOLE,
    batch_size: int | None = None,
    arithmetic: str | None = None,
    steps: StepHook = no_steps,
) -> Estimate:
    """Grade a sample of `spec`'s plan and scale its time to the whole (shard), in the
    arithmetic the screen would choose (`runner.prepare_screen`); `steps` hears of the
    preparation and of each batch of the sample."""
    notes: list[str] = []
    prepared = prepare_screen(
        lm, spec, shard, batch_size, arithmetic=arithmetic, note=notes.append, steps=steps
    )
    plan, screener = prepared.plan, prepared.screener
    grader = BatchGrader(lm, screener, spec, prepared.assays)
    ids = list(shard.ids(len(plan)))
    sample = [plan.mutation_at(i) for i in spread(ids, min(screener.batch_size, SAMPLE))]
    steps("timing a sample", 0, len(sample))
    grader.grade(sample[:1])  # warm-up: first-call allocations, the probes' traces, the embedder
    rows = plan.batch_fill(screener.batch_size)  # a screen's batches, not one of the sample
    started, checking = time.perf_counter(), screener.lockstep_check_seconds
    for first in range(0, len(sample), rows):
        grader.grade(sample[first : first + rows])
        steps("timing a sample", min(first + rows, len(sample)), len(sample))
    once = screener.lockstep_check_seconds - checking  # a screen's start, not its rate
    seconds = (time.perf_counter() - started - once) / max(len(sample), 1)
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    return Estimate(
        planned=len(ids),
        sampled=len(sample),
        seconds_per_mutation=seconds,
        batch_size=screener.batch_size,
        peak_memory=peak_memory(lm.device),
        batch_memory=weights + screener.batch_size * row_bytes(lm.model),
        path=screener.path,
        setup=lm.describe(),
        notes=tuple(notes),
    )
