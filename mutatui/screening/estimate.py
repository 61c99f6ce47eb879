"""How long a screen will take, how much memory and disk it needs, on this machine, before it
runs.

A sample of the plan's mutations, spread evenly over it (so over its layers, whose cost
differs), is graded exactly as the screen grades a batch (every probe, the choice assay,
grading), in batches as full as the screen's will be (`Plan.batch_fill`), after one warm-up
mutation, for at most `SAMPLE_SECONDS` (at least one batch); the time per mutation, scaled by
the mutations planned, is the estimate, and the slowest and fastest batch give its range (a
sample of one batch is timed twice, so the range says how steady this machine is). The
memory is the peak seen while grading the sample, and the bound for a full batch: the model's
weights plus a batch of rows (`exact.sizing.row_bytes`). The disk is the bytes of the
sample's rows as the store writes them, before DuckDB compresses them: a bound. Timing on a
busy machine (a load average above its cores) is said, since it makes the estimate long.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation
from mutatui.engine.steps import StepHook, no_steps
from mutatui.exact.selfcheck import peak_memory
from mutatui.exact.sizing import row_bytes
from mutatui.exact.tolerance import spread
from mutatui.screening.plan import WHOLE, Shard
from mutatui.screening.prepare import prepare_screen
from mutatui.screening.runner import BatchGrader, mutation_row
from mutatui.screening.spec import ScreenSpec

T = TypeVar("T")

SAMPLE = 32
"""Mutations graded to measure the rate (fewer when the engine's batch or the plan is smaller)."""
SAMPLE_SECONDS = 45.0
"""No batch of the sample starts after this long: a slow model's estimate takes about a minute
(plus its preparation), not a sample of 32 at its own pace."""


@dataclass(frozen=True)
class Estimate:
    planned: int
    sampled: int
    seconds_per_mutation: float
    batch_size: int
    fastest: float
    """Seconds per mutation of the sample's fastest batch (its slowest: `slowest`)."""
    slowest: float
    bytes_per_mutation: float
    """The sample's rows as written, per mutation, before compression."""
    load: float | None
    """The load average per core while it timed (None where the system does not say)."""
    peak_memory: int
    batch_memory: int
    path: str
    setup: str
    notes: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return self.planned * self.seconds_per_mutation

    @property
    def disk_bytes(self) -> float:
        return self.planned * self.bytes_per_mutation

    @property
    def busy(self) -> bool:
        """The machine had more work than cores while the sample was timed."""
        return self.load is not None and self.load > 1.0


def stored_bytes(rows: Sequence[Sequence[object] | Mapping[str, object]]) -> int:
    """The bytes of rows as stored, before compression: text as UTF-8, a number or flag as 8."""
    size = 0
    for row in rows:
        for value in row.values() if isinstance(row, Mapping) else row:
            if isinstance(value, str):
                size += len(value.encode())
            elif isinstance(value, list | tuple):
                size += 8 * len(value)
            elif value is not None:
                size += 8
    return size


def _timed(
    grader: BatchGrader, mutations: list[Mutation], rates: list[float]
) -> list[list[dict[str, object]]]:
    """Grade one batch, adding its seconds per mutation to `rates`; its result rows."""
    screener = grader.screener
    checking, began = screener.lockstep_check_seconds, time.perf_counter()
    results, _ = grader.grade(mutations)
    once = screener.lockstep_check_seconds - checking  # a screen's start, not its rate
    rates.append((time.perf_counter() - began - once) / len(mutations))
    return results


def prefixes_spread(items: Sequence[T]) -> list[T]:
    """`items` reordered so that every prefix is spread over them too (by the bit-reversed
    position: 0, 16, 8, 24, ... of 32): a sample cut short by `SAMPLE_SECONDS` still spans
    the plan's layers, where the first batches alone would be its first layers, the slowest."""
    bits = max(len(items) - 1, 0).bit_length()

    def reversed_bits(position: int) -> int:
        return int(format(position, f"0{bits}b")[::-1], 2) if bits else 0

    return [items[position] for position in sorted(range(len(items)), key=reversed_bits)]


def load_per_core() -> float | None:
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return None


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
    sample_ids = spread(ids, min(screener.batch_size, SAMPLE))
    steps("timing a sample", 0, len(sample_ids))
    grader.grade([plan.mutation_at(sample_ids[0])])  # warm-up: first-call allocations, traces
    rows = plan.batch_fill(screener.batch_size)  # a screen's batches, not one of the sample
    batches = [sample_ids[first : first + rows] for first in range(0, len(sample_ids), rows)]
    started = time.perf_counter()
    rates: list[float] = []
    timed = written = 0
    for batch in prefixes_spread(batches):
        if rates and time.perf_counter() - started > SAMPLE_SECONDS:
            break
        mutations = [plan.mutation_at(i) for i in batch]
        results = _timed(grader, mutations, rates)
        timed += len(batch)
        written += sum(stored_bytes(per_mutation) for per_mutation in results)
        written += stored_bytes(
            [mutation_row(i, m, plan.matrix_of(i)) for i, m in zip(batch, mutations, strict=True)]
        )
        steps("timing a sample", timed, len(sample_ids))
    if len(rates) == 1 and time.perf_counter() - started < SAMPLE_SECONDS:
        _timed(grader, [plan.mutation_at(i) for i in batches[0]], rates)  # a range needs two
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    return Estimate(
        planned=len(ids),
        sampled=timed,
        seconds_per_mutation=sum(rates) / len(rates),
        batch_size=screener.batch_size,
        fastest=min(rates),
        slowest=max(rates),
        bytes_per_mutation=written / max(timed, 1),
        load=load_per_core(),
        peak_memory=peak_memory(lm.device),
        batch_memory=weights + screener.batch_size * row_bytes(lm.model),
        path=screener.path,
        setup=lm.describe(),
        notes=tuple(notes),
    )
