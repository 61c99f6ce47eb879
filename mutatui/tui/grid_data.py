"""What the grid shows, computed from a `ScreenData` in memory with numpy (no Textual here).

`apply_filter` turns the screen's changed results into per-mutation phenotype counts and worst
severities under a `Filter`; `MatrixLayout` bins one matrix's mutations at a zoom level and
answers, one grid line at a time, what each cell holds. Lines are computed on demand (a 4096 x
11008 matrix at single-coordinate zoom has 45 million cells, of which a screen shows 2000), so
moving and zooming cost the visible lines only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mutatui.exact.noise import NoiseFloor, kl_floor
from mutatui.store.effects import ROBUST_MARGIN
from mutatui.store.published import ExperimentCounts
from mutatui.store.queries import KINDS, MatrixShape, ScreenData

MAX, MIN = KINDS.index("max"), KINDS.index("min")
EFFECT_LEVELS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""Effect sizes (mean KL, nats) in decades: a grid cell's colour level in the effect mode, and
the filter dialog's thresholds (`effect_levels` raises the lowest to a screen's noise
floor)."""


def effect_levels(noise: NoiseFloor | None) -> tuple[float, ...]:
    """The colour levels of a screen's effects: `EFFECT_LEVELS`, the lowest band starting at
    the noise floor where that is higher (an effect under the floor is none)."""
    floor = kl_floor(noise)
    if floor < EFFECT_LEVELS[0]:
        return EFFECT_LEVELS
    return (floor, *(level for level in EFFECT_LEVELS if level > floor))


@dataclass(frozen=True)
class Measure:
    """A per-mutation number the grid can colour cells by (the largest of a cell's kept
    mutations), in bands that start at `levels` (NaN or under the first: no colour)."""

    values: np.ndarray
    levels: tuple[float, ...]
    label: str


def measures_of(data: ScreenData) -> dict[str, Measure]:
    """The colour modes a screen has besides density and severity: its effect sizes, or for a
    published screen its Mmlu21 points lost, destruction and Drosophila dissimilarity."""
    found: dict[str, Measure] = {}
    if data.effect is not None:
        found["effect"] = Measure(data.effect, effect_levels(data.noise), "mean KL, nats")
    published = data.published
    if published is not None:
        found["score"] = Measure(
            published.baseline_score - published.score, SCORE_LEVELS, "Mmlu21 points lost"
        )
        found["destroyed"] = Measure(
            np.where(published.destructive, 1.0, np.nan), (1.0,), "destructive NSM"
        )
        found["cosine"] = Measure(1.0 - published.cosine, COSINE_LEVELS, "1 - Drosophila cosine")
    return found


SCORE_LEVELS = (4.0, 6.0, 8.0, 10.0, 12.0)
"""Mmlu21 points lost (of the standard model's 14): Table 2 lists the tiles that lost 4 or more."""
COSINE_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
"""1 - the Drosophila cosine: at 0.5 and above the paper's malignant similarity (<= 0.5)."""


@dataclass(frozen=True)
class Filter:
    """Which phenotypes count. Empty sets mean "any"."""

    kinds: frozenset[str] = frozenset()
    min_severity: int = 0
    styles: frozenset[str] = frozenset()
    first_word: str | None = None
    probes: frozenset[int] = frozenset()
    tag: str | None = None
    malignant: bool = False
    min_effect: float = 0.0
    """Only mutations whose effect size (mean KL, nats) reaches this count (0: any)."""
    robust: bool = False
    """Only changes at a baseline step whose margin is at least `ROBUST_MARGIN`."""

    @property
    def active(self) -> bool:
        return self != Filter()

    def describe(self, data: ScreenData | None = None) -> str:
        parts = []
        if self.kinds:
            parts.append("kind " + "/".join(sorted(self.kinds)))
        if self.min_severity:
            parts.append(f"severity>={self.min_severity}")
        if self.styles:
            parts.append("style " + "/".join(sorted(self.styles)))
        if self.first_word:
            parts.append(f"word {self.first_word!r}")
        if self.probes:
            names = {probe.probe_id: probe.name for probe in data.probes} if data else {}
            parts.append("prompt " + "/".join(names.get(p, str(p)) for p in sorted(self.probes)))
        if self.tag:
            parts.append(f"tag {self.tag}")
        if self.malignant:
            parts.append("malignant")
        if self.min_effect:
            parts.append(f"effect>={self.min_effect:g}")
        if self.robust:
            parts.append("robust")
        return ", ".join(parts) if parts else "no filter"


@dataclass
class Phenotypes:
    """Per mutation, under one filter: does it count, how many phenotypes, how severe."""

    kept: np.ndarray
    count: np.ndarray
    worst: np.ndarray

    @property
    def phenotypic(self) -> np.ndarray:
        return self.count > 0


def _member(codes: np.ndarray, wanted: list[int], size: int) -> np.ndarray:
    """codes in wanted, by table lookup (np.isin sorts, and is ten times slower here)."""
    table = np.zeros(max(size, 1) + 1, dtype=bool)
    table[wanted] = True
    return table[codes]


def apply_filter(data: ScreenData, selection: Filter) -> Phenotypes:
    n = len(data.mutation_id)
    kept = data.tested > 0
    if selection.kinds:
        codes = [KINDS.index(kind) for kind in selection.kinds if kind in KINDS]
        kept &= _member(data.kind, codes, len(KINDS))
    if selection.tag:
        tagged = np.zeros(n, dtype=bool)
        for position, tags in data.tags.items():
            if selection.tag in tags:
                tagged[position] = True
        kept &= tagged
    if selection.min_effect and data.effect is not None:
        # NaN (not recorded) never reaches it, nor an effect under the noise floor
        kept &= (data.effect >= selection.min_effect) & (data.effect > kl_floor(data.noise))
    rows = data.phenotype_severity >= max(selection.min_severity, 0)
    if selection.styles:
        codes = [data.styles.index(s) for s in selection.styles if s in data.styles]
        rows &= _member(data.phenotype_style, codes, len(data.styles))
    if selection.first_word is not None:
        code = data.words.index(selection.first_word) if selection.first_word in data.words else -2
        rows &= data.phenotype_word == code
    if selection.probes:
        top = int(data.phenotype_probe.max(initial=0))
        rows &= _member(
            data.phenotype_probe, [p for p in selection.probes if 0 <= p <= top], top + 1
        )
    if selection.malignant:
        rows &= data.phenotype_malignant
    if selection.robust and data.phenotype_margin is not None:
        rows &= data.phenotype_margin >= ROBUST_MARGIN  # NaN (not recorded) is not robust
    owners = data.phenotype_mutation[rows]
    severity = data.phenotype_severity[rows]
    count = np.bincount(owners, minlength=n).astype(np.int32)
    worst = np.zeros(n, dtype=np.int8)
    # assigned in rising severity, so each mutation keeps its worst (faster than maximum.at)
    order = np.argsort(severity, kind="stable")
    worst[owners[order]] = severity[order]
    count *= kept
    worst *= kept
    return Phenotypes(kept, count, worst)


PUBLISHED_KINDS = 3
"""The kinds the paper screened every tile with: max, min and zero."""


def published_trials(shape: MatrixShape) -> int:
    """How many mutations the paper screened of a matrix: its 64x64 tiles times the kinds."""
    return -(-shape.rows // 64) * -(-shape.cols // 64) * PUBLISHED_KINDS


def nsm_rates(data: ScreenData, experiment: ExperimentCounts) -> dict[tuple[int, str], float]:
    """Per matrix of a published screen, an experiment's NSMs over its 64x64 tiles times the
    kinds screened."""
    return {
        (shape.layer, shape.matrix): experiment.nsms.get((shape.layer, shape.matrix), 0)
        / published_trials(shape)
        for shape in data.matrices
    }


def overview_counts(data: ScreenData, phenotypes: Phenotypes) -> tuple[np.ndarray, np.ndarray]:
    """Phenotypic mutations per matrix, for max and for min (indexed like data.matrices)."""
    m = len(data.matrices)
    valid = data.matrix_index >= 0
    hit = phenotypes.phenotypic & valid
    index = data.matrix_index
    by_max = np.bincount(index[hit & (data.kind == MAX)], minlength=m)
    by_min = np.bincount(index[hit & (data.kind == MIN)], minlength=m)
    return by_max, by_min


@dataclass
class CellLine:
    """One grid line: per bin column, counts of tested and phenotypic mutations."""

    tested: np.ndarray
    max_hits: np.ndarray
    min_hits: np.ndarray
    other_hits: np.ndarray
    worst: np.ndarray
    effect: np.ndarray
    """Per bin column, the largest effect size of its kept mutations (0 where none)."""

    @property
    def phenotypic(self) -> np.ndarray:
        return self.max_hits + self.min_hits + self.other_hits


@dataclass
class MatrixLayout:
    """One matrix binned at one zoom level: a cell is `bin_rows` x `bin_cols` coordinates.

    The finest zoom is the screen's own resolution (a 64x64 tile screen stops at tiles, an
    element screen at single coordinates); `zoom_rows` and `zoom_cols` count doublings of the
    bin above it, per axis, so a tall matrix can fill the width too.
    """

    shape: MatrixShape
    row0: np.ndarray
    col0: np.ndarray
    kind: np.ndarray
    kept: np.ndarray
    count: np.ndarray
    worst: np.ndarray
    effect: np.ndarray
    """Per mutation, the measure the grid colours by (`Measure`; 0 where none)."""
    effect_levels: tuple[float, ...]
    """Its colour levels (for effect sizes, from the screen's noise floor)."""
    unit_rows: int
    unit_cols: int
    zoom_rows: int
    zoom_cols: int
    rearranged: bool = False
    exhaustive: bool = False
    """Every cell was screened, the mutations listed are the phenotypes (a published screen's
    table): a cell without one is silent, not untested."""
    row_order: np.ndarray = field(init=False)
    col_order: np.ndarray = field(init=False)
    row_totals: np.ndarray = field(init=False)
    col_totals: np.ndarray = field(init=False)
    _bin_row: np.ndarray = field(init=False)
    _sorted: np.ndarray = field(init=False)
    """Positions of the mutations, sorted by bin row."""
    _bounds: np.ndarray = field(init=False)
    """_sorted[_bounds[r]:_bounds[r + 1]] are the mutations of bin row r."""
    _bin_col: np.ndarray = field(init=False)
    _has_effect: bool = field(init=False)

    def __post_init__(self) -> None:
        self._has_effect = bool(self.effect.any())
        bin_row = self.row0 // self.bin_rows
        bin_col = self.col0 // self.bin_cols
        hits = self.count > 0
        self.row_totals = np.bincount(bin_row[hits], minlength=self.rows).astype(np.int64)
        self.col_totals = np.bincount(bin_col[hits], minlength=self.cols).astype(np.int64)
        if self.rearranged:
            self.row_order = np.argsort(-self.row_totals, kind="stable")
            self.col_order = np.argsort(-self.col_totals, kind="stable")
        else:
            self.row_order = np.arange(self.rows)
            self.col_order = np.arange(self.cols)
        self._sorted = np.argsort(bin_row, kind="stable")
        self._bin_row = bin_row[self._sorted]
        self._bounds = np.searchsorted(self._bin_row, np.arange(self.rows + 1))
        self._bin_col = bin_col

    @property
    def bin_rows(self) -> int:
        return self.unit_rows << self.zoom_rows

    @property
    def bin_cols(self) -> int:
        return self.unit_cols << self.zoom_cols

    @property
    def rows(self) -> int:
        return -(-self.shape.rows // self.bin_rows)

    @property
    def cols(self) -> int:
        return -(-self.shape.cols // self.bin_cols)

    def line(self, display_row: int) -> CellLine:
        """The cells of one displayed line, in display (possibly rearranged) column order."""
        natural = int(self.row_order[display_row])
        members = self._sorted[self._bounds[natural] : self._bounds[natural + 1]]
        columns = self._bin_col[members]
        kept = self.kept[members]
        hits = self.count[members] > 0
        kinds = self.kind[members]
        n = self.cols
        tested = np.bincount(columns[kept], minlength=n)
        if self.exhaustive:
            tested = np.maximum(tested, 1)
        max_hits = np.bincount(columns[hits & (kinds == MAX)], minlength=n)
        min_hits = np.bincount(columns[hits & (kinds == MIN)], minlength=n)
        other_hits = np.bincount(columns[hits & (kinds != MAX) & (kinds != MIN)], minlength=n)
        worst = np.zeros(n, dtype=np.int8)
        np.maximum.at(worst, columns, self.worst[members])
        effect = np.zeros(n)
        if self._has_effect:
            np.maximum.at(effect, columns[kept], self.effect[members][kept])
        order = self.col_order
        return CellLine(
            tested[order],
            max_hits[order],
            min_hits[order],
            other_hits[order],
            worst[order],
            effect[order],
        )

    def cell_bounds(self, display_row: int, display_col: int) -> tuple[int, int, int, int]:
        """Coordinates (row0, row1, col0, col1) covered by one displayed cell."""
        row = int(self.row_order[display_row])
        col = int(self.col_order[display_col])
        return (
            row * self.bin_rows,
            min((row + 1) * self.bin_rows, self.shape.rows),
            col * self.bin_cols,
            min((col + 1) * self.bin_cols, self.shape.cols),
        )

    def display_cell_of(self, row: int, col: int) -> tuple[int, int]:
        """The displayed cell holding coordinate (row, col)."""
        natural_row, natural_col = row // self.bin_rows, col // self.bin_cols
        display_row = int(np.flatnonzero(self.row_order == natural_row)[0])
        display_col = int(np.flatnonzero(self.col_order == natural_col)[0])
        return display_row, display_col

    def members(self, display_row: int, display_col: int) -> np.ndarray:
        """Positions (into the layout's arrays) of the mutations in one displayed cell."""
        natural_row = int(self.row_order[display_row])
        natural_col = int(self.col_order[display_col])
        members = self._sorted[self._bounds[natural_row] : self._bounds[natural_row + 1]]
        return members[self._bin_col[members] == natural_col]


def unit_of(data: ScreenData, position: int) -> tuple[int, int]:
    """The finest resolution of one matrix's sites: its smallest block (1 for elements)."""
    part = data.matrix_slices[position]
    if part.stop <= part.start:
        return 1, 1
    heights = data.row1[part] - data.row0[part]
    widths = data.col1[part] - data.col0[part]
    return max(int(heights.min()), 1), max(int(widths.min()), 1)


def _fit_axis(size: int, unit: int, space: int) -> int:
    zoom = 0
    while -(-size // (unit << zoom)) > max(space, 1) and zoom < 40:
        zoom += 1
    return zoom


def fit_zoom(shape: MatrixShape, unit: tuple[int, int], height: int, width: int) -> tuple[int, int]:
    """Per axis, the finest zoom at which the whole matrix fits in height x width cells."""
    return _fit_axis(shape.rows, unit[0], height), _fit_axis(shape.cols, unit[1], width)


def zoomed(fit: tuple[int, int], level: int) -> tuple[int, int]:
    """`level` doublings finer than the fit, never finer than the screen's resolution."""
    return max(fit[0] - level, 0), max(fit[1] - level, 0)


def layout_for(
    data: ScreenData,
    phenotypes: Phenotypes,
    position: int,
    zoom: tuple[int, int],
    *,
    rearranged: bool = False,
    measure: Measure | None = None,
) -> MatrixLayout:
    """One matrix of the screen at a zoom, its cells coloured (in a measure's mode) by
    `measure`."""
    part = data.matrix_slices[position]
    unit = unit_of(data, position)
    values = (
        np.zeros(part.stop - part.start)
        if measure is None
        else np.nan_to_num(measure.values[part], nan=0.0)
    )
    return MatrixLayout(
        shape=data.matrices[position],
        row0=data.row0[part],
        col0=data.col0[part],
        kind=data.kind[part],
        kept=phenotypes.kept[part],
        count=phenotypes.count[part],
        worst=phenotypes.worst[part],
        effect=values,
        effect_levels=measure.levels if measure is not None else EFFECT_LEVELS,
        unit_rows=unit[0],
        unit_cols=unit[1],
        zoom_rows=zoom[0],
        zoom_cols=zoom[1],
        rearranged=rearranged,
        exhaustive=data.published is not None,
    )


LIVE_CHOICES = 8
"""At most this many of a cell's screened sites are offered for a live run."""


def live_choices(
    data: ScreenData,
    phenotypes: Phenotypes,
    positions: np.ndarray,
    bounds: tuple[int, int, int, int],
    shape: MatrixShape,
) -> list[tuple[str, str]]:
    """What a live run from a grid cell may be, as (label, site). A cell holding one screened
    site (or one coordinate) has one answer: that site. Otherwise the choices are the cell's
    screened sites, most phenotypic first, one element (the cell's first coordinate), and the
    whole cell as a block, named with its size."""
    sites: dict[str, int] = {}
    for position in positions[np.argsort(-phenotypes.count[positions], kind="stable")]:
        site = str(data.site(int(position)))
        sites[site] = sites.get(site, 0) + int(phenotypes.count[position])
    row0, row1, col0, col1 = bounds
    element = f"{shape.label}[{row0},{col0}]"
    if len(sites) == 1:
        only = next(iter(sites))
        return [(only, only)]
    if (row1 - row0, col1 - col0) == (1, 1):
        return [(element, element)]
    block = f"{shape.label}[{row0}:{row1},{col0}:{col1}]"
    choices = [
        (f"{site}  screened, {count} phenotypes", site)
        for site, count in list(sites.items())[:LIVE_CHOICES]
    ]
    if element not in sites:
        choices.append((f"{element}  one element, the cell's first", element))
    if block not in sites:
        weights = (row1 - row0) * (col1 - col0)
        choices.append((f"{block}  the whole cell as a block: {weights:,} weights", block))
    return choices


def phenotype_order(data: ScreenData, phenotypes: Phenotypes) -> np.ndarray:
    """Positions of the mutations with a phenotype under the filter, in the order `n` visits
    them: matrix by matrix; within one the largest effect size first where the screen
    recorded them (one not recorded comes last), then the most severe, then the most
    phenotypes, then the screen's own order."""
    found = np.flatnonzero(phenotypes.kept & phenotypes.phenotypic)
    keys = [found, -phenotypes.count[found], -phenotypes.worst[found]]
    if data.effect is not None:
        keys.append(-np.nan_to_num(data.effect[found], nan=-np.inf))
    keys.append(data.matrix_index[found])
    return found[np.lexsort(keys)]


def first_tested(
    data: ScreenData, phenotypes: Phenotypes, position: int, anchor: tuple[int, int]
) -> tuple[int, int]:
    """`anchor`, or when no mutation tested under the filter starts there, the (row, col) of
    the matrix's first one."""
    part = data.matrix_slices[position]
    kept = np.flatnonzero(phenotypes.kept[part]) + part.start
    if not len(kept):
        return anchor
    starts = set(zip(data.row0[kept].tolist(), data.col0[kept].tolist(), strict=True))
    if anchor in starts:
        return anchor
    first = kept[np.lexsort((data.col0[kept], data.row0[kept]))[0]]
    return int(data.row0[first]), int(data.col0[first])


SATURATED = 0.9
"""A screen where more than this share of tested mutations has a phenotype opens graded: "any
change" says nothing there (most 64x64 tiles change the text)."""


@dataclass(frozen=True)
class Opening:
    """How a screen opens: its filter, the grid's colour mode, and the line that says why when
    the filter is not "none"."""

    selection: Filter
    colour: str = "density"
    why: str | None = None
    title: str = "saturated"


def opening(data: ScreenData) -> Opening:
    """A saturated screen opens at robust changes, coloured by effect size, when it has every
    effect size (a tie cannot explain what is left); else at the lowest minimum severity at
    which at most `SATURATED` of tested mutations count."""
    if data.published is not None:
        return Opening(
            Filter(),
            "score",
            "its table's non-silent tiles, coloured by Mmlu21 points lost (s: destruction, the "
            "Drosophila cosine); every other tile was silent there",
            "published",
        )
    phenotypes = apply_filter(data, Filter())
    tested = max(int(phenotypes.kept.sum()), 1)
    counted = phenotypes.kept & phenotypes.phenotypic
    changed = int(counted.sum()) / tested
    if changed <= SATURATED:
        return Opening(Filter())
    said = f"{changed:.1%} of tested mutations change some output: opened at"
    if data.effect is not None and not np.isnan(data.effect[phenotypes.kept]).any():
        robust = apply_filter(data, Filter(robust=True))
        share = int((robust.kept & robust.phenotypic).sum()) / tested
        if share <= SATURATED:
            return Opening(
                Filter(robust=True),
                "effect",
                f"{said} robust changes ({share:.1%}: not at a baseline step whose margin is "
                f"under {ROBUST_MARGIN:g} logit), coloured by effect size; F shows every change",
            )
    # a mutation counts at level k when its worst severity is at least k
    shares = [int((counted & (phenotypes.worst >= level)).sum()) / tested for level in range(4)]
    level = next((k for k in range(1, 4) if shares[k] <= SATURATED), 3)
    names = ("any", "mild", "moderate", "severe")
    return Opening(
        Filter(min_severity=level),
        why=f"{said} severity {names[level]} or worse ({shares[level]:.1%}); F shows every change",
    )
