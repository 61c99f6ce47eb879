"""The paper's quantities, computed from a screen's per-mutation phenotypes.

Every test here is a permutation test against sites drawn at random from the same tested set:
within each stratum (one matrix of one layer, one kind) the phenotypes are shuffled among the
sites that were tested there, which keeps the number of phenotypes and the tested design, and
destroys only where they sit. p-values are (1 + #null at least as extreme) / (1 + N), from N
permutations drawn from a seeded generator, so every figure is reproducible. Strata are
independent, so a screen-wide test sums the per-stratum z-scores, observed and permuted.

A site's line is its row (or column) in units of the site's own extent: a 64x64 tile at rows
128:192 is on tile row 2, an element at row 130 on row 130. Sites of different shapes are never
mixed: analyse one shape at a time (`shape_groups`).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from mutatui.analysis.depth import DEPTH_BANDS, band_label, depth_band
from mutatui.engine.families import MATRIX_ORDER
from mutatui.store.frames import SiteFrame

AXES = ("row", "col")
KINDS = ("max", "min")
SEVERE = 3
"""The severity grade (0-3) that counts as severe."""


def shape_groups(frame: SiteFrame) -> dict[tuple[int, int], SiteFrame]:
    """The frame split by site shape (rows x cols), largest group first."""
    shapes = np.stack([frame.row1 - frame.row0, frame.col1 - frame.col0], axis=1)
    unique, counts = np.unique(shapes, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {
        (int(unique[i][0]), int(unique[i][1])): frame.subset(
            (shapes[:, 0] == unique[i][0]) & (shapes[:, 1] == unique[i][1])
        )
        for i in order
    }


def line_index(frame: SiteFrame, axis: str) -> np.ndarray:
    """Each site's row or column in units of its own extent along that axis."""
    if axis == "row":
        return frame.row0 // np.maximum(frame.row1 - frame.row0, 1)
    if axis == "col":
        return frame.col0 // np.maximum(frame.col1 - frame.col0, 1)
    raise ValueError(f"axis must be one of {AXES}, not {axis!r}")


def phenotype(frame: SiteFrame, min_severity: int = 0) -> np.ndarray:
    """Changed outputs, optionally only those of at least `min_severity`."""
    return frame.changed & (frame.severity >= min_severity)


def strata(frame: SiteFrame, by_kind: bool = True) -> Iterator[tuple[tuple, np.ndarray]]:
    """(key, indices) of each matrix of each layer (and kind), sorted by key."""
    if len(frame) == 0:
        return
    matrix_names, matrix_codes = np.unique(frame.matrix, return_inverse=True)
    kind_names, kind_codes = np.unique(frame.kind, return_inverse=True)
    columns = [frame.layer, matrix_codes.ravel()] + ([kind_codes.ravel()] if by_kind else [])
    order = np.lexsort(columns[::-1])
    stacked = np.stack([column[order] for column in columns], axis=1)
    changes = np.flatnonzero(np.any(np.diff(stacked, axis=0) != 0, axis=1)) + 1
    bounds = [0, *changes.tolist(), len(order)]
    for start, stop in itertools.pairwise(bounds):
        row = stacked[start]
        key = (int(row[0]), str(matrix_names[row[1]]))
        if by_kind:
            key += (str(kind_names[row[2]]),)
        yield key, order[start:stop]


def rng_for(seed: int, *salt: object) -> np.random.Generator:
    """A generator for one stratum, independent of which other strata exist."""
    return np.random.default_rng([abs(seed), zlib.crc32(repr(salt).encode())])


def random_counts(
    rng: np.random.Generator, sizes: np.ndarray, k: int, permutations: int
) -> np.ndarray:
    """How many of k sites drawn without replacement fall in each group of `sizes` sites.

    One row per permutation: (permutations, len(sizes)), a multivariate hypergeometric draw,
    which is what shuffling k phenotypes among the tested sites does to per-group counts.
    """
    return rng.multivariate_hypergeometric(
        np.asarray(sizes, dtype=np.int64), k, size=permutations, method="count"
    )


def random_subsets(rng: np.random.Generator, n: int, k: int, permutations: int) -> np.ndarray:
    """`permutations` random k-subsets of range(n), one per row: (permutations, k) indices."""
    chosen = random_counts(rng, np.ones(n, dtype=np.int64), k, permutations)
    return np.nonzero(chosen)[1].reshape(permutations, k)


def _line_counts(lines: np.ndarray, count: int) -> np.ndarray:
    """Per row of `lines` (permutations, k): how many entries fall on each of `count` lines."""
    rows = lines.shape[0]
    offsets = (np.arange(rows)[:, None] * count + lines).ravel()
    return np.bincount(offsets, minlength=rows * count).reshape(rows, count)


def p_upper(observed: float, null: np.ndarray) -> float:
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + len(null)))


def p_lower(observed: float, null: np.ndarray) -> float:
    return float((1 + np.count_nonzero(null <= observed + 1e-12)) / (1 + len(null)))


def p_two_sided(observed: float, null: np.ndarray) -> float:
    center = float(np.mean(null))
    return float(
        (1 + np.count_nonzero(np.abs(null - center) >= abs(observed - center) - 1e-12))
        / (1 + len(null))
    )


@dataclass
class NullSummary:
    """An observed statistic against its permutation null."""

    observed: float
    null_mean: float
    null_sd: float
    z: float
    p: float


def summarize_null(
    observed: float, null: np.ndarray, tail: Callable[[float, np.ndarray], float]
) -> NullSummary:
    mean, sd = float(null.mean()), float(null.std())
    z = (observed - mean) / sd if sd > 0 else 0.0
    return NullSummary(float(observed), mean, sd, float(z), tail(observed, null))


class ZAccumulator:
    """Sums per-stratum z-scores, observed and per permutation, for a screen-wide test."""

    def __init__(self, permutations: int) -> None:
        self.observed = 0.0
        self.null = np.zeros(permutations)
        self.strata = 0

    def add(self, observed: float, null: np.ndarray) -> None:
        sd = float(null.std())
        if sd == 0:
            return
        mean = float(null.mean())
        self.observed += (observed - mean) / sd
        self.null += (null - mean) / sd
        self.strata += 1

    def summary(self, tail: Callable[[float, np.ndarray], float]) -> NullSummary | None:
        if self.strata == 0:
            return None
        return summarize_null(self.observed, self.null, tail)


# ---------------------------------------------------------------------------------------------
# Rates


@dataclass
class RateRow:
    """Mutations tested under one key and kind; `severe` and `malignant` count among `changed`."""

    key: str
    kind: str
    tested: int
    changed: int
    severe: int
    malignant: int
    destructive: int = 0
    """Mutations whose choice assay was destructive (an answer that is no choice at all)."""

    @property
    def rate(self) -> float:
        return self.changed / self.tested if self.tested else 0.0

    @property
    def severe_rate(self) -> float:
        return self.severe / self.tested if self.tested else 0.0


RATE_KEYS = ("matrix", "layer", "depth")


def rate_keys(frame: SiteFrame, by: str) -> tuple[np.ndarray, list[str]]:
    """Each mutation's key (its matrix type, its layer, or its band of relative depth, fifths
    of the model's stack) and the keys in order."""
    if by == "matrix":
        keys = frame.matrix
        return keys, sorted(set(keys.tolist()), key=_type_order)
    if by == "layer":
        keys = frame.layer.astype(str)
        return keys, sorted(set(keys.tolist()), key=int)
    if by == "depth":
        layers = max((shape.layer for shape in frame.matrices), default=0) + 1
        labels = [band_label(band) for band in range(DEPTH_BANDS)]
        keys = np.array([labels[depth_band(int(layer), layers)] for layer in frame.layer])
        present = set(keys.tolist())
        return keys, [label for label in labels if label in present]
    raise ValueError(f"by must be one of {RATE_KEYS}, not {by!r}")


def rates(frame: SiteFrame, by: str) -> list[RateRow]:
    """Phenotype rate per matrix type (`by="matrix"`), per layer (`"layer"`) or per fifth of
    the stack (`"depth"`), per kind."""
    keys, ordered = rate_keys(frame, by)
    severe = frame.changed & (frame.severity >= SEVERE)
    rows = []
    for key in ordered:
        for kind in sorted(set(frame.kind.tolist()), key=_kind_order):
            mask = (keys == key) & (frame.kind == kind)
            rows.append(
                RateRow(
                    key,
                    kind,
                    int(mask.sum()),
                    int(frame.changed[mask].sum()),
                    int(severe[mask].sum()),
                    int((frame.changed & frame.malignant)[mask].sum()),
                    int(frame.destructive[mask].sum()),
                )
            )
    return rows


def _type_order(name: str) -> tuple[int, str]:
    return (MATRIX_ORDER.index(name) if name in MATRIX_ORDER else len(MATRIX_ORDER), name)


def _kind_order(kind: str) -> tuple[int, str]:
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), kind)


@dataclass
class KindBalance:
    """Per matrix: is it sensitive to both kinds, or almost only to one?

    The max share is max rate / (max rate + min rate); "max-only" means at least `only` of it.
    Matrices with fewer than `min_phenotypes` phenotypes are not classified.
    """

    mixed: int
    max_only: int
    min_only: int
    unclassified: int
    only: float
    min_phenotypes: int
    shares: list[tuple[int, str, float, int]]


def kind_balance(frame: SiteFrame, only: float = 0.9, min_phenotypes: int = 5) -> KindBalance:
    counts = {"mixed": 0, "max_only": 0, "min_only": 0, "unclassified": 0}
    shares = []
    for (layer, matrix), indices in strata(frame, by_kind=False):
        kinds = frame.kind[indices]
        changed = frame.changed[indices]
        tested_max = int((kinds == "max").sum())
        tested_min = int((kinds == "min").sum())
        found = int(changed.sum())
        if not tested_max or not tested_min or found < min_phenotypes:
            counts["unclassified"] += 1
            continue
        rate_max = changed[kinds == "max"].sum() / tested_max
        rate_min = changed[kinds == "min"].sum() / tested_min
        share = float(rate_max / (rate_max + rate_min))
        shares.append((layer, matrix, share, found))
        side = _side(share, only)
        counts[f"{side}_only" if side else "mixed"] += 1
    return KindBalance(**counts, only=only, min_phenotypes=min_phenotypes, shares=shares)


def _side(share: float, only: float) -> str | None:
    """ "max" or "min" when a matrix's max share makes it one-sided, None when mixed."""
    if share >= only:
        return "max"
    if share <= 1 - only:
        return "min"
    return None


def one_sided(balance: KindBalance) -> dict[str, list[str]]:
    """The matrices sensitive almost only to one kind, as "L<layer>.<matrix>", per kind."""
    sides: dict[str, list[str]] = {"max": [], "min": []}
    for layer, matrix, share, _ in balance.shares:
        side = _side(share, balance.only)
        if side:
            sides[side].append(f"L{layer}.{matrix}")
    return sides


# ---------------------------------------------------------------------------------------------
# Clustering on axes


@dataclass
class StratumTest:
    layer: int
    matrix: str
    kind: str
    tested: int
    phenotypes: int
    lines: int
    result: NullSummary


@dataclass
class ClusteringResult:
    """Do phenotypes pile up on a few rows (or columns) more than random sites would?

    Statistic per stratum: the sum over lines of (phenotypes on the line)^2, which for a fixed
    number of phenotypes grows with their variance across lines.
    """

    axis: str
    min_severity: int
    permutations: int
    strata: list[StratumTest]
    combined: NullSummary | None

    @property
    def significant(self) -> int:
        return sum(1 for s in self.strata if s.result.p < 0.01)


def clustering_statistic(hit_lines: np.ndarray, count: int) -> float:
    """The clustering statistic of phenotypes on `count` lines: the sum of squared counts."""
    return float((np.bincount(hit_lines, minlength=count) ** 2).sum())


def clustering_null(
    rng: np.random.Generator, sizes: np.ndarray, k: int, permutations: int
) -> np.ndarray:
    """The statistic for k phenotypes shuffled among lines of `sizes` tested sites."""
    return (random_counts(rng, sizes, k, permutations) ** 2).sum(axis=1).astype(float)


def axis_clustering(
    frame: SiteFrame, axis: str, *, min_severity: int = 0, permutations: int = 1000, seed: int = 0
) -> ClusteringResult:
    lines_all = line_index(frame, axis)
    hits_all = phenotype(frame, min_severity)
    tests = []
    total = ZAccumulator(permutations)
    for (layer, matrix, kind), indices in strata(frame):
        hits = hits_all[indices]
        n, k = len(indices), int(hits.sum())
        _, lines = np.unique(lines_all[indices], return_inverse=True)
        count = int(lines.max()) + 1
        if k < 2 or k == n or count < 2:
            continue
        observed = clustering_statistic(lines[hits], count)
        rng = rng_for(seed, "cluster", axis, min_severity, layer, matrix, kind)
        null = clustering_null(rng, np.bincount(lines, minlength=count), k, permutations)
        tests.append(
            StratumTest(layer, matrix, kind, n, k, count, summarize_null(observed, null, p_upper))
        )
        total.add(observed, null)
    return ClusteringResult(axis, min_severity, permutations, tests, total.summary(p_upper))


# ---------------------------------------------------------------------------------------------
# Max/min complementarity


@dataclass
class ComplementTest:
    layer: int
    matrix: str
    max_lines: int
    min_lines: int
    shared_lines: int
    result: NullSummary


@dataclass
class ComplementarityResult:
    """Do max-sensitive and min-sensitive lines overlap less than chance?

    Per matrix: the Jaccard index of the set of lines holding a max phenotype and the set
    holding a min phenotype; max and min phenotypes are shuffled separately (lower tail).
    """

    axis: str
    permutations: int
    matrices: list[ComplementTest]
    combined: NullSummary | None
    mean_jaccard: float
    mean_null_jaccard: float

    @property
    def significant(self) -> int:
        return sum(1 for m in self.matrices if m.result.p < 0.01)


def line_presence(
    sizes: np.ndarray, hit_lines: np.ndarray, rng: np.random.Generator, permutations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which lines hold a phenotype, observed and with the phenotypes shuffled among lines of
    `sizes` tested sites: (lines,) and (permutations, lines) booleans."""
    observed = np.bincount(hit_lines, minlength=len(sizes)) > 0
    return observed, random_counts(rng, sizes, len(hit_lines), permutations) > 0


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    union = (a | b).sum(axis=-1)
    return np.where(union > 0, (a & b).sum(axis=-1) / np.maximum(union, 1), 0.0)


def complementarity(
    frame: SiteFrame, axis: str, *, permutations: int = 1000, seed: int = 0
) -> ComplementarityResult:
    lines_all = line_index(frame, axis)
    tests = []
    total = ZAccumulator(permutations)
    for (layer, matrix), indices in strata(frame, by_kind=False):
        _, lines = np.unique(lines_all[indices], return_inverse=True)
        count = int(lines.max()) + 1
        kinds = frame.kind[indices]
        hits = frame.changed[indices]
        is_max, is_min = kinds == "max", kinds == "min"
        k_max, k_min = int(hits[is_max].sum()), int(hits[is_min].sum())
        if count < 2 or not k_max or not k_min:
            continue
        if k_max == is_max.sum() or k_min == is_min.sum():
            continue
        rng = rng_for(seed, "complement", axis, layer, matrix)
        max_obs, max_null = line_presence(
            np.bincount(lines[is_max], minlength=count),
            lines[is_max & hits],
            rng,
            permutations,
        )
        min_obs, min_null = line_presence(
            np.bincount(lines[is_min], minlength=count),
            lines[is_min & hits],
            rng,
            permutations,
        )
        observed = float(jaccard(max_obs, min_obs))
        null = jaccard(max_null, min_null).astype(float)
        tests.append(
            ComplementTest(
                layer,
                matrix,
                int(max_obs.sum()),
                int(min_obs.sum()),
                int((max_obs & min_obs).sum()),
                summarize_null(observed, null, p_lower),
            )
        )
        total.add(observed, null)
    return ComplementarityResult(
        axis,
        permutations,
        tests,
        total.summary(p_lower),
        float(np.mean([t.result.observed for t in tests])) if tests else 0.0,
        float(np.mean([t.result.null_mean for t in tests])) if tests else 0.0,
    )


# ---------------------------------------------------------------------------------------------
# The rearranged map's asymmetry


@dataclass
class RearrangedTest:
    layer: int
    matrix: str
    phenotypes: int
    corner: NullSummary
    diagonal: NullSummary
    corner_fixed: NullSummary | None
    """Against maps with the same row and column phenotype counts (complete grids only)."""
    diagonal_fixed: NullSummary | None


@dataclass
class RearrangedResult:
    """Shape of a matrix's phenotype map once rows and columns are sorted by phenotype count.

    Rows and columns are each ranked by their phenotype count (most first), giving every
    phenotype a position (u, v) in [0, 1]^2. `corner` is the mass with u + v < 1 minus the mass
    with u + v > 1 (phenotypes piled into one corner, a triangle); `diagonal` is the mass with
    v > u minus the mass with u > v (the map reaching further along one axis than the other).
    Both are fractions of all phenotypes, in [-1, 1], against maps of shuffled sites that are
    sorted the same way. Max and min phenotypes are counted together, shuffled separately.

    Shuffled sites lose the row and column sensitivities too, so clustering alone raises both
    statistics. The `_fixed` tests ask whether the map has a shape beyond its marginals: the
    null maps keep every row's and column's phenotype count per kind (curveball swaps), which
    needs a complete grid (every site of the matrix tested, as in a tile screen). A perfectly
    nested map is the only one with its marginals: its fixed null is degenerate (p = 1).
    """

    matrix: str
    permutations: int
    layers: list[RearrangedTest]
    corner: NullSummary | None
    diagonal: NullSummary | None
    corner_fixed: NullSummary | None
    diagonal_fixed: NullSummary | None


def _ranks(totals: np.ndarray) -> np.ndarray:
    """Rank of each line by descending total (ties by index), along the last axis."""
    order = np.argsort(-totals, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(totals.shape[-1])[None, :], axis=-1)
    return ranks


def rearranged_statistics(
    rows: np.ndarray, cols: np.ndarray, row_count: int, col_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Corner and diagonal statistics for each row of (permutations, k) phenotype positions."""
    row_rank = np.take_along_axis(_ranks(_line_counts(rows, row_count)), rows, axis=1)
    col_rank = np.take_along_axis(_ranks(_line_counts(cols, col_count)), cols, axis=1)
    u = (row_rank + 0.5) / row_count
    v = (col_rank + 0.5) / col_count
    k = rows.shape[1]
    corner = np.sign(1.0 - u - v).sum(axis=1) / k
    diagonal = np.sign(v - u).sum(axis=1) / k
    return corner, diagonal


def curveball(grid: np.ndarray, rng: np.random.Generator, samples: int, steps: int) -> np.ndarray:
    """`samples` random 0/1 matrices with the row and column sums of `grid` (Strona et al. 2014).

    All chains start at `grid` and run `steps` trades in parallel: two random rows pool the
    columns where exactly one of them has a 1 and deal them back at random, each row keeping
    its count; columns keep theirs because each pooled column still holds exactly one 1.
    """
    state = np.repeat(grid.astype(bool)[None], samples, axis=0)
    rows = grid.shape[0]
    chains = np.arange(samples)
    for _ in range(steps):
        first = rng.integers(0, rows, samples)
        second = (first + rng.integers(1, rows, samples)) % rows
        a, b = state[chains, first], state[chains, second]
        both, pooled = a & b, a ^ b
        keep = (a & ~b).sum(axis=1)
        keys = np.where(pooled, rng.random(a.shape), 2.0)
        ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
        to_first = pooled & (ranks < keep[:, None])
        state[chains, first] = both | to_first
        state[chains, second] = both | (pooled & ~to_first)
    return state


def _grid_weights(row_totals: np.ndarray, col_totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corner and diagonal weight of every cell, from the rank of its row and column."""
    u = (_ranks(row_totals[None])[0] + 0.5) / len(row_totals)
    v = (_ranks(col_totals[None])[0] + 0.5) / len(col_totals)
    return np.sign(1.0 - u[:, None] - v[None, :]), np.sign(v[None, :] - u[:, None])


def _fixed_margin_nulls(
    grids: list[np.ndarray], rng: np.random.Generator, permutations: int
) -> tuple[float, np.ndarray, float, np.ndarray]:
    """Observed corner and diagonal of the summed grids, and their fixed-marginal nulls."""
    observed = sum(grid.astype(np.int64) for grid in grids)
    corner_w, diagonal_w = _grid_weights(observed.sum(axis=1), observed.sum(axis=0))
    steps = max(50, 5 * observed.shape[0])
    null = sum(curveball(grid, rng, permutations, steps).astype(np.int64) for grid in grids)
    total = observed.sum()
    return (
        float((observed * corner_w).sum() / total),
        (null * corner_w).sum(axis=(1, 2)) / total,
        float((observed * diagonal_w).sum() / total),
        (null * diagonal_w).sum(axis=(1, 2)) / total,
    )


def rearranged_asymmetry(
    frame: SiteFrame, matrix: str = "gate", *, permutations: int = 1000, seed: int = 0
) -> RearrangedResult:
    tests = []
    corner_total = ZAccumulator(permutations)
    diagonal_total = ZAccumulator(permutations)
    corner_fixed_total = ZAccumulator(permutations)
    diagonal_fixed_total = ZAccumulator(permutations)
    selected = frame.subset(frame.matrix == matrix)
    rows_all, cols_all = line_index(selected, "row"), line_index(selected, "col")
    for (layer, name), indices in strata(selected, by_kind=False):
        _, rows = np.unique(rows_all[indices], return_inverse=True)
        _, cols = np.unique(cols_all[indices], return_inverse=True)
        row_count, col_count = int(rows.max()) + 1, int(cols.max()) + 1
        hits = selected.changed[indices]
        kinds = selected.kind[indices]
        if hits.sum() < 2 or row_count < 2 or col_count < 2:
            continue
        rng = rng_for(seed, "rearranged", layer, name)
        observed_rows, observed_cols, null_rows, null_cols = [], [], [], []
        grids: list[np.ndarray] | None = []
        for kind in sorted(set(kinds.tolist()), key=_kind_order):
            of_kind = np.flatnonzero(kinds == kind)
            k = int(hits[of_kind].sum())
            cells = rows[of_kind] * col_count + cols[of_kind]
            if grids is not None and len(np.unique(cells)) == len(cells) == row_count * col_count:
                grid = np.zeros((row_count, col_count), dtype=bool)
                grid[rows[of_kind], cols[of_kind]] = hits[of_kind]
                grids.append(grid)
            else:
                grids = None
            observed_rows.append(rows[of_kind][hits[of_kind]])
            observed_cols.append(cols[of_kind][hits[of_kind]])
            chosen = of_kind[random_subsets(rng, len(of_kind), k, permutations)]
            null_rows.append(rows[chosen])
            null_cols.append(cols[chosen])
        corner_obs, diagonal_obs = rearranged_statistics(
            np.concatenate(observed_rows)[None, :],
            np.concatenate(observed_cols)[None, :],
            row_count,
            col_count,
        )
        corner_null, diagonal_null = rearranged_statistics(
            np.concatenate(null_rows, axis=1),
            np.concatenate(null_cols, axis=1),
            row_count,
            col_count,
        )
        corner_fixed = diagonal_fixed = None
        if grids:
            fixed = _fixed_margin_nulls(grids, rng_for(seed, "fixed", layer, name), permutations)
            corner_fixed = summarize_null(fixed[0], fixed[1], p_upper)
            diagonal_fixed = summarize_null(fixed[2], fixed[3], p_two_sided)
            corner_fixed_total.add(fixed[0], fixed[1])
            diagonal_fixed_total.add(fixed[2], fixed[3])
        tests.append(
            RearrangedTest(
                layer,
                name,
                int(hits.sum()),
                summarize_null(float(corner_obs[0]), corner_null, p_upper),
                summarize_null(float(diagonal_obs[0]), diagonal_null, p_two_sided),
                corner_fixed,
                diagonal_fixed,
            )
        )
        corner_total.add(float(corner_obs[0]), corner_null)
        diagonal_total.add(float(diagonal_obs[0]), diagonal_null)
    return RearrangedResult(
        matrix,
        permutations,
        tests,
        corner_total.summary(p_upper),
        diagonal_total.summary(p_two_sided),
        corner_fixed_total.summary(p_upper),
        diagonal_fixed_total.summary(p_two_sided),
    )


def rearranged_order(frame: SiteFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one matrix: the phenotype count grid (row lines x col lines), rows and cols sorted.

    Returns (grid, row_lines, col_lines): grid[i, j] counts phenotypes on the i-th most
    sensitive row line and the j-th most sensitive column line; row_lines and col_lines give
    the original line index of each sorted position.
    """
    rows, cols = line_index(frame, "row"), line_index(frame, "col")
    row_values, row_pos = np.unique(rows, return_inverse=True)
    col_values, col_pos = np.unique(cols, return_inverse=True)
    grid = np.zeros((len(row_values), len(col_values)), dtype=np.int64)
    np.add.at(grid, (row_pos[frame.changed], col_pos[frame.changed]), 1)
    row_order = np.argsort(-grid.sum(axis=1), kind="stable")
    col_order = np.argsort(-grid.sum(axis=0), kind="stable")
    return grid[row_order][:, col_order], row_values[row_order], col_values[col_order]


# ---------------------------------------------------------------------------------------------
# Lines shared across matrices (writers on rows; V on columns)


@dataclass
class SharedLinesResult:
    """Do flagged mutations in different matrices sit on the same line more than chance?

    Lines are comparable between matrices of the same extent along the axis (a row of any
    576-row matrix is the same residual-stream coordinate). Statistic: the number of pairs of
    flagged mutations in different matrices that share a line. Null: in every stratum (matrix,
    kind), the same number of flagged sites drawn at random from that stratum's tested sites.
    """

    axis: str
    flagged: int
    permutations: int
    pairs: NullSummary | None
    shared_fraction: float
    """Fraction of flagged mutations on a line flagged in another matrix too."""
    top_lines: list[tuple[int, int, int]]
    """(extent, line, matrices flagged on it), most matrices first."""


def shared_lines(
    frame: SiteFrame,
    flagged: np.ndarray,
    axis: str,
    extents: dict[tuple[int, str], tuple[int, int]],
    *,
    permutations: int = 1000,
    seed: int = 0,
    top: int = 5,
) -> SharedLinesResult:
    """`extents` maps (layer, matrix) to its (rows, cols); lines are keyed by (extent, line)."""
    flagged_count = int(flagged.sum())
    if flagged_count < 2:
        return SharedLinesResult(axis, flagged_count, permutations, None, 0.0, [])
    lines = line_index(frame, axis)
    slot = 0 if axis == "row" else 1
    extent = np.array(
        [
            extents.get((int(layer), str(matrix)), (0, 0))[slot]
            for layer, matrix in zip(frame.layer, frame.matrix, strict=True)
        ],
        dtype=np.int64,
    )
    stride = int(lines.max()) + 1
    key_values, keys = np.unique(extent * stride + lines, return_inverse=True)
    keys = keys.ravel()
    # Per key: the sum over matrices of flagged counts, and of their squares; pairs in different
    # matrices on a key are ((sum)^2 - sum of squares) / 2.
    observed_sum = np.zeros(len(key_values))
    observed_squares = np.zeros(len(key_values))
    null_sum = np.zeros((permutations, len(key_values)))
    null_squares = np.zeros((permutations, len(key_values)))
    matrices_on_key = np.zeros(len(key_values), dtype=np.int64)
    for (layer, matrix), indices in strata(frame, by_kind=False):
        local_values, local = np.unique(keys[indices], return_inverse=True)
        local = local.ravel()
        observed = np.bincount(local[flagged[indices]], minlength=len(local_values))
        null = np.zeros((permutations, len(local_values)))
        kinds = frame.kind[indices]
        for kind in sorted(set(kinds.tolist())):
            of_kind = kinds == kind
            k = int(flagged[indices][of_kind].sum())
            if k:
                rng = rng_for(seed, "shared", axis, layer, matrix, kind)
                sizes = np.bincount(local[of_kind], minlength=len(local_values))
                null += random_counts(rng, sizes, k, permutations)
        observed_sum[local_values] += observed
        observed_squares[local_values] += observed.astype(float) ** 2
        matrices_on_key[local_values] += observed > 0
        null_sum[:, local_values] += null
        null_squares[:, local_values] += null**2
    pairs = float(((observed_sum**2).sum() - observed_squares.sum()) / 2)
    null_pairs = ((null_sum**2).sum(axis=1) - null_squares.sum(axis=1)) / 2
    shared = int(observed_sum[matrices_on_key > 1].sum())
    order = np.lexsort((key_values, -matrices_on_key))
    top_lines = [
        (int(key_values[i] // stride), int(key_values[i] % stride), int(matrices_on_key[i]))
        for i in order[:top]
        if matrices_on_key[i] > 1
    ]
    return SharedLinesResult(
        axis,
        flagged_count,
        permutations,
        summarize_null(pairs, null_pairs, p_upper),
        shared / flagged_count,
        top_lines,
    )


# ---------------------------------------------------------------------------------------------
# Whole lines of elements against random elements of the same matrix


@dataclass
class LineTest:
    """One fully tested line (every element of a row or column, one kind) of one matrix."""

    layer: int
    matrix: str
    axis: str
    line: int
    kind: str
    tested: int
    phenotypes: int
    against_tested: int
    against_phenotypes: int
    test: NullSummary
    """Phenotypes on the line, against the pooled line and random sites shuffled."""


@dataclass
class LineEnrichmentResult:
    """Are the elements of whole lines more often phenotypes than random elements?

    For every line an element screen tested in full (a row or a column, per kind), its
    phenotype count is set against the other screen's elements of the same matrix and kind: the
    null shuffles the phenotypes among the pooled sites, so the line's count is hypergeometric.
    Screen-wide: the summed z over lines.
    """

    against: str
    permutations: int
    lines: list[LineTest]
    overall: NullSummary | None


def full_lines(frame: SiteFrame) -> Iterator[tuple[int, str, str, int, str, np.ndarray]]:
    """(layer, matrix, axis, line, kind, indices) of every row and column whose elements were
    all tested with one kind; `frame` holds element sites only."""
    extents = frame.extents()
    for (layer, matrix, kind), indices in strata(frame):
        rows, cols = extents[(layer, matrix)]
        for axis, along, extent in (("row", frame.row0, cols), ("col", frame.col0, rows)):
            lines, counts = np.unique(along[indices], return_counts=True)
            for line in lines[counts == extent]:
                yield layer, matrix, axis, int(line), kind, indices[along[indices] == line]


def line_enrichment(
    frame: SiteFrame,
    against: SiteFrame,
    *,
    permutations: int = 1000,
    seed: int = 0,
) -> LineEnrichmentResult:
    """Every full line of `frame` against `against`'s sites of the same matrix and kind (both
    element screens, phenotypes already decided: `SiteFrame.with_min_severity`)."""
    random_sites = dict(strata(against))
    tests: list[LineTest] = []
    total = ZAccumulator(permutations)
    for layer, matrix, axis, line, kind, indices in full_lines(frame):
        pool = random_sites.get((layer, matrix, kind))
        if pool is None:
            continue
        tested, hits = len(indices), int(frame.changed[indices].sum())
        pooled_hits = hits + int(against.changed[pool].sum())
        pooled = tested + len(pool)
        rng = rng_for(seed, "line", layer, matrix, axis, line, kind)
        null = rng.hypergeometric(pooled_hits, pooled - pooled_hits, tested, size=permutations)
        total.add(hits, null)
        tests.append(
            LineTest(
                layer,
                matrix,
                axis,
                line,
                kind,
                tested,
                hits,
                len(pool),
                pooled_hits - hits,
                summarize_null(hits, null, p_upper),
            )
        )
    return LineEnrichmentResult(against.screen.name, permutations, tests, total.summary(p_upper))
