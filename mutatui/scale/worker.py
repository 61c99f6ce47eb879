"""One screen worker: loads the model once, then grades whole parts of the plan on demand.

A Ray actor wraps this class (`ray_runner`); nothing here knows about Ray, so a worker runs
in-process just as well. The worker returns rows and never opens the database: the driver is
the database's only writer.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from mutatui.engine.machine import Machine, this_machine
from mutatui.engine.models import ModelOptions
from mutatui.exact.noise import NoiseFloor
from mutatui.screening.plan import WHOLE, Plan, Shard
from mutatui.screening.prepare import (
    calibration_sample,
    make_screener,
    measure_assays,
    prepare_engine,
)
from mutatui.screening.runner import BatchGrader, grade_batch, matrix_rows
from mutatui.screening.spec import ScreenSpec
from mutatui.store.engines import EngineRecord


@dataclass(frozen=True)
class WorkerInfo:
    """A started worker: where it runs, and what its model gives, to check against the others."""

    host: str
    pid: int
    device: str
    probe_rows: list[dict[str, object]]
    matrix_rows: list[dict[str, object]]
    planned: int
    engine: EngineRecord
    machine: Machine

    @property
    def label(self) -> str:
        return f"{self.host}:{self.pid} ({self.device})"


@dataclass(frozen=True)
class PartResult:
    """A graded part: its rows in plan order, ready for `store.parts.write_part`."""

    part: int
    mutations: list[list[object]]
    results: list[dict[str, object]]
    phenotypes: int
    seconds: float
    noise: NoiseFloor | None = None


class ScreenWorker:
    """Runs parts K/N of one spec's plan. `start` loads the model (once per process: a worker
    restarted after a crash loads it again on its first call)."""

    def __init__(
        self, spec: ScreenSpec, options: ModelOptions, batch_size: int | None, threads: int | None
    ) -> None:
        self._spec = spec
        self._options = options
        self._batch_size = batch_size
        self._threads = threads
        self._state: tuple[Plan, BatchGrader, WorkerInfo] | None = None

    def start(self) -> WorkerInfo:
        return self._ready()[2]

    def _ready(self) -> tuple[Plan, BatchGrader, WorkerInfo]:
        if self._state is None:
            self._state = self._load()
        return self._state

    def _load(self) -> tuple[Plan, BatchGrader, WorkerInfo]:
        import torch

        from mutatui.engine.matrices import MatrixCatalog
        from mutatui.engine.models import load_with

        if self._threads:
            torch.set_num_threads(self._threads)
        spec = self._spec
        lm = load_with(spec.model, self._options)
        catalog = MatrixCatalog(lm.model)
        plan = spec.plan(catalog)
        screener = make_screener(lm, catalog, spec, self._batch_size)
        assays = measure_assays(lm, catalog, screener, spec)
        engine = prepare_engine(lm, screener, assays, calibration_sample(plan, WHOLE))
        grader = BatchGrader(lm, screener, spec, assays)
        info = WorkerInfo(
            host=socket.gethostname(),
            pid=os.getpid(),
            device=str(lm.device),
            probe_rows=assays.probe_rows(spec),
            matrix_rows=matrix_rows(plan.matrices),
            planned=len(plan),
            engine=engine,
            machine=this_machine(lm.device),
        )
        return plan, grader, info

    def run_part(self, part: int, parts: int) -> PartResult:
        """Grade every mutation of part `part` of `parts`, batch by batch, in id order."""
        plan, grader, _ = self._ready()
        mutations: list[list[object]] = []
        results: list[dict[str, object]] = []
        phenotypes = 0
        seconds = 0.0
        noise: NoiseFloor | None = None
        for batch in plan.batches(Shard(part, parts), size=grader.screener.batch_size):
            graded = grade_batch(grader, plan, batch)
            mutations += graded.mutations
            results += graded.results
            phenotypes += graded.phenotypes
            seconds += graded.seconds
            if graded.noise is not None:
                noise = graded.noise if noise is None else noise.merged(graded.noise)
        return PartResult(part, mutations, results, phenotypes, seconds, noise)
