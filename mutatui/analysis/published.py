"""The paper's claims on the paper's own published data, and what its tables cannot answer.

A published screen (`mutatui import-paper`) holds two kinds of numbers. Table 1 counts the
non-silent mutations (NSMs) of every experiment per matrix, over every 64x64 tile and every
kind (max, min, zero), with the totals split by kind but not the per-matrix counts; it gives no
coordinates. Table 2 lists the tiles of one experiment, Mmlu21, whose score fell to at most 10
of 21: a selection by severity of an exhaustive screen, so a tile it does not list was screened
and did not score that low. Each claim is tested where these numbers can carry it, and said to
be untestable, with the reason, where they cannot:

- NSM rates by matrix type and by relative depth, every experiment: Table 1.
- Clustering on rows and columns, max/min complementarity, the rearranged map's shape: on
  Table 2's tiles against the same number of tiles placed at random in the whole matrix (the
  permutation tests of `stats`, with every tile of the matrix as the tested set). They then
  speak of the tiles that cost at least 11 of 21 Mmlu21 answers, not of NSMs in general.
- Writers sharing rows: on the writers the tables name (Zephyr's), against tiles placed at
  random in their matrices.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mutatui.analysis.depth import DEPTH_BANDS, band_label, depth_band
from mutatui.analysis.stats import (
    NullSummary,
    ZAccumulator,
    clustering_null,
    clustering_statistic,
    jaccard,
    line_presence,
    p_lower,
    p_two_sided,
    p_upper,
    random_counts,
    random_subsets,
    rearranged_statistics,
    rng_for,
    summarize_null,
)
from mutatui.analysis.stripes import (
    StripeReport,
    known_super_weights,
    published_stripes,
    stripe_report,
)
from mutatui.engine.families import MATRIX_ORDER
from mutatui.errors import MutatuiError
from mutatui.store.catalog import ScreenSummary
from mutatui.store.published import (
    PUBLISHED,
    ExperimentCounts,
    PublishedTiles,
    WriterSite,
    experiment_counts,
    published_tiles,
    published_writer_sites,
)

SIGNIFICANT = 0.01
"""A stratum's p below this counts as significant in the per-stratum tallies."""


@dataclass
class TypeRate:
    """One matrix type in one experiment of Table 1."""

    matrix: str
    tiles: int
    """Tiles of all matrices of this type (each screened once per kind)."""
    nsms: int
    rate: float
    """NSMs per tile and kind screened (max, min and zero)."""
    max_min: tuple[float, float]
    """The rate over max and min alone, as bounds: Table 1 does not split a matrix's count by
    kind, so the zero NSMs (the experiment's total) may or may not be among them."""
    distinct: float | None
    """Distinct phenotypes per matrix, the mean over the type's matrices."""


@dataclass
class DepthRate:
    band: str
    layers: str
    tiles: int
    nsms: int
    rate: float


@dataclass
class ExperimentRates:
    name: str
    type: str
    totals: dict[str, int]
    rate_by_kind: dict[str, float]
    """NSMs of each kind per tile: exact, Table 1's totals are split by kind."""
    by_type: list[TypeRate]
    by_depth: list[DepthRate]


@dataclass
class SelectionRow:
    """Table 2's tiles of one matrix type and kind, against every tile of that type."""

    matrix: str
    kind: str
    tiles: int
    listed: int
    destructive: int

    @property
    def share(self) -> float:
        return self.listed / self.tiles if self.tiles else 0.0


@dataclass
class ClaimTest:
    """One of the paper's claims, on the published numbers or said to be beyond them."""

    claim: str
    data: str
    """What it is tested on, or why it cannot be."""
    testable: bool
    result: NullSummary | None = None
    observed: str = ""
    """The statistic in words (a mean Jaccard index, a pair count)."""
    strata: int = 0
    significant: int = 0


@dataclass
class PublishedAnalysis:
    screen: ScreenSummary
    citation: str
    selection: str
    listed: int
    permutations: int
    seed: int
    experiments: list[ExperimentRates]
    selection_rows: list[SelectionRow]
    claims: list[ClaimTest]
    stripes: StripeReport

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def tiles_of(shape: tuple[int, int], tile: int) -> tuple[int, int]:
    """A matrix of `shape` in tiles: (tile rows, tile columns), a partial tile counting."""
    return -(-shape[0] // tile), -(-shape[1] // tile)


def experiment_rates(
    experiment: ExperimentCounts, shapes: dict[tuple[int, str], tuple[int, int]], tile: int
) -> ExperimentRates:
    kinds = len(experiment.totals)
    tiles = {key: int(np.prod(tiles_of(shape, tile))) for key, shape in shapes.items()}
    all_tiles = sum(tiles.values())
    zero = experiment.totals.get("zero", 0)
    by_type = []
    for matrix in [m for m in MATRIX_ORDER if any(k[1] == m for k in tiles)]:
        keys = [key for key in tiles if key[1] == matrix]
        count = sum(tiles[key] for key in keys)
        nsms = sum(experiment.nsms.get(key, 0) for key in keys)
        distinct = [experiment.distinct[k] for k in keys if experiment.distinct.get(k) is not None]
        by_type.append(
            TypeRate(
                matrix,
                count,
                nsms,
                nsms / (count * kinds),
                (max(nsms - min(zero, count), 0) / (2 * count), min(nsms / (2 * count), 1.0)),
                float(np.mean(distinct)) if distinct else None,  # type: ignore[arg-type]
            )
        )
    layers = max(layer for layer, _ in tiles) + 1
    by_depth = []
    for band in range(DEPTH_BANDS):
        keys = [key for key in tiles if depth_band(key[0], layers) == band]
        in_band = sorted({layer for layer, _ in keys})
        count = sum(tiles[key] for key in keys)
        nsms = sum(experiment.nsms.get(key, 0) for key in keys)
        by_depth.append(
            DepthRate(
                band_label(band),
                f"{in_band[0]}-{in_band[-1]}" if in_band else "-",
                count,
                nsms,
                nsms / (count * kinds) if count else 0.0,
            )
        )
    return ExperimentRates(
        experiment.name,
        experiment.type,
        dict(experiment.totals),
        {kind: total / all_tiles for kind, total in experiment.totals.items()},
        by_type,
        by_depth,
    )


def selection_rows(tiles: PublishedTiles) -> list[SelectionRow]:
    per_type: dict[str, int] = defaultdict(int)
    for key, shape in tiles.shapes.items():
        per_type[key[1]] += int(np.prod(tiles_of(shape, tiles.tile)))
    rows = []
    for matrix in [m for m in MATRIX_ORDER if m in per_type]:
        for kind in tiles.kinds:
            chosen = (tiles.matrix == matrix) & (tiles.kind == kind)
            rows.append(
                SelectionRow(
                    matrix,
                    kind,
                    per_type[matrix],
                    int(chosen.sum()),
                    int(tiles.destructive[chosen].sum()),
                )
            )
    return rows


def _groups(tiles: PublishedTiles, by_kind: bool) -> dict[tuple, np.ndarray]:
    """Indices of the listed tiles per (layer, matrix[, kind]), sorted by key."""
    found: dict[tuple, list[int]] = defaultdict(list)
    for index in range(len(tiles)):
        key: tuple = (int(tiles.layer[index]), str(tiles.matrix[index]))
        found[key + ((str(tiles.kind[index]),) if by_kind else ())].append(index)
    return {key: np.array(found[key]) for key in sorted(found)}


def _lines(tiles: PublishedTiles, indices: np.ndarray, axis: str) -> np.ndarray:
    starts = tiles.row0 if axis == "row" else tiles.col0
    return starts[indices] // tiles.tile


def _grid(tiles: PublishedTiles, layer: int, matrix: str) -> tuple[int, int]:
    return tiles_of(tiles.shapes[(layer, matrix)], tiles.tile)


def clustering_claim(
    tiles: PublishedTiles, axis: str, *, permutations: int, seed: int
) -> ClaimTest:
    """Table 2's tiles per matrix and kind: do they pile up on a few lines?"""
    total = ZAccumulator(permutations)
    strata = significant = 0
    for (layer, matrix, kind), indices in _groups(tiles, by_kind=True).items():
        rows, cols = _grid(tiles, layer, matrix)
        count, across = (rows, cols) if axis == "row" else (cols, rows)
        if len(indices) < 2 or count < 2:
            continue
        observed = clustering_statistic(_lines(tiles, indices, axis), count)
        rng = rng_for(seed, "published cluster", axis, layer, matrix, kind)
        null = clustering_null(rng, np.full(count, across), len(indices), permutations)
        total.add(observed, null)
        strata += 1
        significant += summarize_null(observed, null, p_upper).p < SIGNIFICANT
    name = "rows" if axis == "row" else "columns"
    return ClaimTest(
        f"clustering on {name}",
        "Table 2's tiles, per matrix and kind",
        True,
        total.summary(p_upper),
        "Σz over matrices and kinds",
        strata,
        significant,
    )


def complementarity_claim(
    tiles: PublishedTiles, axis: str, *, permutations: int, seed: int
) -> ClaimTest:
    """Do the lines of Table 2's max tiles and of its min tiles overlap less than chance?"""
    total = ZAccumulator(permutations)
    observed_mean, strata, significant = [], 0, 0
    for (layer, matrix), indices in _groups(tiles, by_kind=False).items():
        rows, cols = _grid(tiles, layer, matrix)
        count, across = (rows, cols) if axis == "row" else (cols, rows)
        kinds = tiles.kind[indices]
        lines = _lines(tiles, indices, axis)
        is_max, is_min = kinds == "max", kinds == "min"
        if count < 2 or not is_max.any() or not is_min.any():
            continue
        rng = rng_for(seed, "published complement", axis, layer, matrix)
        sizes = np.full(count, across)
        max_obs, max_null = line_presence(sizes, lines[is_max], rng, permutations)
        min_obs, min_null = line_presence(sizes, lines[is_min], rng, permutations)
        observed = float(jaccard(max_obs, min_obs))
        null = jaccard(max_null, min_null).astype(float)
        total.add(observed, null)
        observed_mean.append(observed)
        strata += 1
        significant += summarize_null(observed, null, p_lower).p < SIGNIFICANT
    name = "rows" if axis == "row" else "columns"
    return ClaimTest(
        f"max/min complementarity on {name}",
        "the lines of Table 2's max tiles and of its min tiles, per matrix",
        True,
        total.summary(p_lower),
        f"mean Jaccard {np.mean(observed_mean):.3f}" if observed_mean else "",
        strata,
        significant,
    )


def shape_claim(
    tiles: PublishedTiles, matrix: str, statistic: str, *, permutations: int, seed: int
) -> ClaimTest:
    """The rearranged map of Table 2's tiles of one matrix type (`stats.RearrangedResult`):
    `corner` (piled in one corner, upper tail) or `diagonal` (reaching further along one
    axis, two-sided), against tiles placed at random in the whole matrix, kind by kind."""
    total = ZAccumulator(permutations)
    tail = p_upper if statistic == "corner" else p_two_sided
    values, strata, significant = [], 0, 0
    for (layer, name), indices in _groups(tiles, by_kind=False).items():
        if name != matrix or len(indices) < 2:
            continue
        rows, cols = _grid(tiles, layer, name)
        rng = rng_for(seed, "published rearranged", layer, name)
        null_rows, null_cols = [], []
        for kind in tiles.kinds:
            count = int((tiles.kind[indices] == kind).sum())
            if count:
                cells = random_subsets(rng, rows * cols, count, permutations)
                null_rows.append(cells // cols)
                null_cols.append(cells % cols)
        observed = rearranged_statistics(
            _lines(tiles, indices, "row")[None, :],
            _lines(tiles, indices, "col")[None, :],
            rows,
            cols,
        )
        null = rearranged_statistics(
            np.concatenate(null_rows, axis=1), np.concatenate(null_cols, axis=1), rows, cols
        )
        pick = 0 if statistic == "corner" else 1
        value = float(observed[pick][0])
        total.add(value, null[pick])
        values.append(value)
        strata += 1
        significant += summarize_null(value, null[pick], tail).p < SIGNIFICANT
    label = "corner" if statistic == "corner" else "axis skew"
    return ClaimTest(
        f"the {matrix} map's shape, rearranged: {label}",
        f"Table 2's {matrix} tiles, per layer",
        True,
        total.summary(tail),
        f"mean {np.mean(values):+.3f}" if values else "",
        strata,
        significant,
    )


def writer_rows_claim(
    tiles: PublishedTiles, writers: Sequence[WriterSite], *, permutations: int, seed: int
) -> ClaimTest:
    """Do the named writers in different matrices share tile rows more than tiles placed at
    random in their matrices would? Pairs of writers in different matrices on one tile row
    (rows of matrices of the same height are the same channels)."""
    claim = "writers share rows"
    if len(writers) < 2:
        return ClaimTest(claim, "the tables name no writers of this model", False)
    by_matrix: dict[tuple[int, str], list[int]] = defaultdict(list)
    for writer in writers:
        by_matrix[(writer.layer, writer.matrix)].append(writer.row0 // tiles.tile)
    heights = {_grid(tiles, *key)[0] for key in by_matrix}
    if len(heights) > 1:
        return ClaimTest(claim, "the writers' matrices differ in height", False)
    count = heights.pop()
    observed_sum, observed_squares = np.zeros(count), np.zeros(count)
    null_sum, null_squares = np.zeros((permutations, count)), np.zeros((permutations, count))
    for key, rows in sorted(by_matrix.items()):
        across = _grid(tiles, *key)[1]
        counts = np.bincount(rows, minlength=count).astype(float)
        rng = rng_for(seed, "published writers", *key)
        null = random_counts(rng, np.full(count, across), len(rows), permutations).astype(float)
        observed_sum += counts
        observed_squares += counts**2
        null_sum += null
        null_squares += null**2
    pairs = float(((observed_sum**2).sum() - observed_squares.sum()) / 2)
    null_pairs = ((null_sum**2).sum(axis=1) - null_squares.sum(axis=1)) / 2
    top = int(np.argmax(observed_sum))
    return ClaimTest(
        claim,
        f"the {len(writers)} writer tiles the tables name, in {len(by_matrix)} matrices",
        True,
        summarize_null(pairs, null_pairs, p_upper),
        f"{int(pairs)} pairs; tile row {top} holds {int(observed_sum[top])} of "
        f"{len(writers)} writers",
        len(by_matrix),
    )


UNTESTABLE = (
    ClaimTest(
        "clustering, complementarity and shape of NSMs in the other experiments",
        "Table 1 counts NSMs per matrix and gives no coordinates",
        False,
    ),
    ClaimTest(
        "max-only and min-only matrices",
        "Table 1 splits only its totals by kind, not a matrix's count; Table 2 splits the "
        "selected tiles (the table of tiles by type and kind)",
        False,
    ),
    ClaimTest(
        "how NSMs outside the selection change the text",
        "Table 2 lists only tiles scoring at most 10 of 21 on Mmlu21, with their Drosophila "
        "cosine; milder NSMs are counted in Table 1, not listed",
        False,
    ),
)


def analyze_published(
    path: str | Path, screen: ScreenSummary, *, permutations: int, seed: int
) -> PublishedAnalysis:
    if screen.kind != PUBLISHED:
        raise MutatuiError(f"screen {screen.name!r} is not a published screen")
    tiles = published_tiles(path, screen.screen_id)
    options = {"permutations": permutations, "seed": seed}
    claims = [clustering_claim(tiles, axis, **options) for axis in ("row", "col")]
    claims += [complementarity_claim(tiles, axis, **options) for axis in ("row", "col")]
    claims += [
        shape_claim(tiles, matrix, statistic, **options)
        for matrix in ("gate", "down")
        for statistic in ("corner", "diagonal")
    ]
    writers = published_writer_sites(path, screen.screen_id)
    claims.append(writer_rows_claim(tiles, writers, **options))
    claims += [dataclasses.replace(claim) for claim in UNTESTABLE]
    selection = str(tiles.description.get("selection", "the table's selection"))
    return PublishedAnalysis(
        screen=screen,
        citation=str(tiles.description.get("citation", "")),
        selection=selection,
        listed=len(tiles),
        permutations=permutations,
        seed=seed,
        experiments=[
            experiment_rates(experiment, tiles.shapes, tiles.tile)
            for experiment in experiment_counts(path, screen.screen_id)
        ],
        selection_rows=selection_rows(tiles),
        claims=claims,
        stripes=stripe_report(
            f"listed in the table ({selection})",
            published_stripes(tiles),
            known_super_weights(path, screen.model),
        ),
    )
