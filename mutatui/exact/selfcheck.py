"""The engine held against the naive path on the user's own machine, model, dtype and device:
a sample of mutations (elements and tiles over every matrix type) through both, compared
output by output, timed, with the tolerance in use and the peak memory (`mutatui doctor`,
benchmarks/screen_throughput.py)."""

from __future__ import annotations

import random
import resource
import time
from dataclasses import dataclass, field

import torch

from mutatui.engine.decoding import Decoding, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation, make_mutation
from mutatui.engine.sites import Site
from mutatui.engine.steps import StepHook, no_steps
from mutatui.exact.noise import NoiseFloor
from mutatui.exact.screener import Screener
from mutatui.exact.tolerance import Tolerance, spread

KINDS = ("max", "min")
TILE = 64


def element_mutations(catalog: MatrixCatalog, count: int, seed: int) -> list[Mutation]:
    """Random element sites over every matrix of every layer, max and min alternating."""
    rng = random.Random(seed)
    matrices = list(catalog)
    mutations = []
    for number in range(count):
        info = rng.choice(matrices)
        site = Site.element(
            info.layer, info.name, rng.randrange(info.rows), rng.randrange(info.cols)
        )
        mutations.append(make_mutation(site, KINDS[number % 2], catalog))
    return mutations


def tile_mutations(
    catalog: MatrixCatalog, count: int, seed: int, size: int = TILE
) -> list[Mutation]:
    """Random tiles of the size x size grid (smaller where a matrix is) over every matrix."""
    rng = random.Random(seed)
    matrices = list(catalog)
    mutations = []
    for number in range(count):
        info = rng.choice(matrices)
        rows, cols = min(size, info.rows), min(size, info.cols)
        row = rng.randrange(info.rows // rows) * rows
        col = rng.randrange(info.cols // cols) * cols
        site = Site(info.layer, info.name, row, row + rows, col, col + cols)
        mutations.append(make_mutation(site, KINDS[number % 2], catalog))
    return mutations


def every_type(catalog: MatrixCatalog, seed: int) -> list[Mutation]:
    """One element (max) and one tile (min) of every matrix type, in random layers."""
    rng = random.Random(seed)
    mutations = []
    for name in catalog.names:
        info = catalog.get(rng.randrange(catalog.num_layers), name)
        element = Site.element(info.layer, name, rng.randrange(info.rows), rng.randrange(info.cols))
        rows, cols = min(TILE, info.rows), min(TILE, info.cols)
        tile = Site(info.layer, name, 0, rows, 0, cols)
        mutations += [make_mutation(element, "max", catalog), make_mutation(tile, "min", catalog)]
    return mutations


@dataclass
class SelfCheck:
    """Engine and naive path on the same mutations: how many outputs are equal, and how fast."""

    path: str
    setup: str
    tolerance: Tolerance
    mutations: int = 0
    mismatches: list[str] = field(default_factory=list)
    changed: int = 0
    settled: int = 0
    engine_seconds: float = 0.0
    naive_seconds: float = 0.0
    calibration_seconds: float = 0.0
    peak_memory: int | None = None
    lockstep: str | None = None
    """How the lockstep decoder fared (`Screener.lockstep`): None when it was not needed."""
    noise: NoiseFloor = field(default_factory=NoiseFloor)
    """The noise floor of the effect sizes the engine measured (as a screen records them)."""

    @property
    def equal(self) -> int:
        return self.mutations - len(self.mismatches)

    @property
    def ratio(self) -> float:
        """Naive seconds per mutation over the engine's."""
        return self.naive_seconds / self.engine_seconds if self.engine_seconds > 0 else 0.0


def peak_memory(device: torch.device) -> int:
    """Peak bytes so far: the GPU's allocator peak, or this process's peak resident memory."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def self_check(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    decoding: Decoding,
    prompt: list[int],
    mutations: list[Mutation],
    *,
    batch_size: int | None = None,
    steps: StepHook = no_steps,
) -> SelfCheck:
    """Screen `mutations` on `prompt` with the engine (after measuring its tolerance, as a
    screen does, and with effect sizes, as a screen records them by default) and on the naive
    path, and compare every output; `steps` hears of each stage and each naive mutation."""
    if lm.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(lm.device)
    screener = Screener(lm, catalog, decoding, batch_size=batch_size, effects=True)
    steps("baseline and near-tie tolerances", 0, 1)
    baseline = screener.baseline(prompt)
    started = time.perf_counter()
    screener.calibrate(prompt, baseline, spread(mutations))
    steps("baseline and near-tie tolerances", 1, 1)
    calibration = time.perf_counter() - started
    check = SelfCheck(screener.path, lm.describe(), screener.tolerances)
    check.calibration_seconds = calibration
    started = time.perf_counter()
    steps("engine", 0, len(mutations))
    outcomes = screener.screen_text(prompt, baseline, mutations)
    steps("engine", len(mutations), len(mutations))
    check.engine_seconds = time.perf_counter() - started
    check.lockstep = screener.lockstep
    check.noise = screener.noise
    started = time.perf_counter()
    for done, (mutation, outcome) in enumerate(zip(mutations, outcomes, strict=True), 1):
        reference = naive_generate(lm, catalog, prompt, mutation, decoding)
        if (reference.tokens, reference.stopped) != (outcome.tokens, outcome.stopped):
            check.mismatches.append(str(mutation))
        steps("naive path", done, len(mutations))
    check.naive_seconds = time.perf_counter() - started
    check.mutations = len(mutations)
    check.changed = sum(outcome.diverge_at is not None for outcome in outcomes)
    check.settled = sum(outcome.settled_naively for outcome in outcomes)
    check.peak_memory = peak_memory(lm.device)
    return check
