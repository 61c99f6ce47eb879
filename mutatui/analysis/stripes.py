"""Stripes: whole rows or columns of sites in one matrix where most of the sites are phenotypes.

A line (a row or a column of sites, in units of the site's extent: a 64x64 tile screen's tile
rows) is a stripe when more than half of its sites are phenotypes of one kind, among at least
`MIN_LINE_SITES` sites tested on it. A computed screen counts the sites it tested on the line;
a published screen's table lists phenotypes of an exhaustive screen, so every site of the line
was tested and the table's silence is no phenotype. Each stripe covers a range of channels in
a space (`engine.families.MATRIX_SPACES`): a row of `down` is a range of residual-stream
channels, a column one of the layer's own MLP intermediate.

Super weights (single weights whose removal destroys a model, Yu et al. 2024, "The Super Weight
in Large Language Models") sit at known coordinates for some models: the published ones are in
`PUBLISHED_SUPER_WEIGHTS`, and a `mutatui superweights` run in the database adds its own. A
super weight is in a stripe when the stripe runs through its row or column of its own matrix,
and shares its channel with a stripe elsewhere that covers the same residual channel (any
layer) or the same intermediate or head channel (its own layer).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from mutatui.analysis.stats import line_index, shape_groups, strata
from mutatui.engine.families import MATRIX_SPACES
from mutatui.store.frames import SiteFrame
from mutatui.store.guided import super_weights
from mutatui.store.published import PublishedTiles

STRIPE_SHARE = 0.5
"""A stripe holds phenotypes at more than this share of its line's sites."""

MIN_LINE_SITES = 4
"""Lines with fewer sites tested are not judged (an element screen's random sample)."""

RESIDUAL = "residual"


def space_of(matrix: str, axis: str) -> str:
    """What a matrix's rows (or columns) index; a matrix without a short name indexes its own."""
    spaces = MATRIX_SPACES.get(matrix)
    if spaces is None:
        return f"{matrix} {'rows' if axis == 'row' else 'columns'}"
    return spaces[0 if axis == "row" else 1]


@dataclass(frozen=True)
class Stripe:
    layer: int
    matrix: str
    kind: str
    axis: str
    line: int
    """In units of the site's extent along the axis (a tile row)."""
    start: int
    stop: int
    """The channels it covers, start:stop, in `space`."""
    space: str
    phenotypes: int
    sites: int
    """Sites tested on the line."""
    matrix_share: float
    """The share of phenotypes over the whole matrix, this kind."""

    @property
    def share(self) -> float:
        return self.phenotypes / self.sites

    @property
    def label(self) -> str:
        return f"L{self.layer}.{self.matrix} {self.kind} {self.axis} {self.line}"

    @property
    def channels(self) -> str:
        if self.stop - self.start == 1:
            return f"{self.space} {self.start}"
        return f"{self.space} {self.start}-{self.stop - 1}"

    def covers(self, layer: int, space: str, channel: int) -> bool:
        """Whether the stripe covers `channel` of `space` as seen from `layer`: the residual
        stream is one space through the model, every other a layer's own."""
        same_space = self.space == space and (space == RESIDUAL or self.layer == layer)
        return same_space and self.start <= channel < self.stop


@dataclass(frozen=True)
class SuperWeight:
    layer: int
    matrix: str
    row: int
    col: int
    source: str

    @property
    def site(self) -> str:
        return f"L{self.layer}.{self.matrix}[{self.row},{self.col}]"


PUBLISHED_SUPER_WEIGHTS: Mapping[str, tuple[SuperWeight, ...]] = {
    "meta-llama/Llama-2-7b-hf": (SuperWeight(1, "down", 2533, 7890, "Yu et al. 2024, Llama-2-7B"),),
    "mistralai/Mistral-7B-v0.1": (
        SuperWeight(1, "down", 2070, 7310, "Yu et al. 2024, Mistral-7B-v0.1"),
    ),
    "HuggingFaceH4/zephyr-7b-beta": (
        SuperWeight(1, "down", 2070, 7310, "Yu et al. 2024, of its base model Mistral-7B-v0.1"),
    ),
}
"""Super weights of the LLMSuperWeight paper's table (layers[l].mlp.down_proj [row, col]) by
Hugging Face id. Zephyr-7B-beta is a fine-tune of Mistral-7B-v0.1 and is given its base model's
coordinate, as the paper found super weights to survive fine-tuning."""


def known_super_weights(path: str | Path, model: str) -> list[SuperWeight]:
    """The model's super weights: the published ones, then those of its newest `mutatui
    superweights` run in the database."""
    found = list(PUBLISHED_SUPER_WEIGHTS.get(model, ()))
    found += [
        SuperWeight(
            w.layer,
            w.matrix,
            w.row,
            w.col,
            f"mutatui superweights, {w.perplexity:.4g} probe perplexity when zeroed",
        )
        for w in super_weights(path, model)
    ]
    return found


@dataclass(frozen=True)
class SuperWeightStripes:
    weight: SuperWeight
    own: list[Stripe]
    """Stripes of its own matrix through its row or its column."""
    channel: list[Stripe]
    """Stripes of other matrices over its row's or its column's channel."""


@dataclass
class StripeScan:
    """The stripes of a screen, and how many lines were judged and would be stripes by chance."""

    judged: int = 0
    """Lines with at least `MIN_LINE_SITES` sites."""
    expected: float = 0.0
    """Stripes expected if every matrix's phenotypes fell on its sites at random: the sum over
    judged lines of the chance that more than half of them are phenotypes at the matrix's
    share. Near the number found, the stripes say no more than the matrix's rate does."""
    stripes: list[Stripe] = field(default_factory=list)

    def add(self, other: StripeScan) -> None:
        self.judged += other.judged
        self.expected += other.expected
        self.stripes += other.stripes


@dataclass
class StripeReport:
    phenotype: str
    """What counts as a phenotype here."""
    lines: int
    """Lines judged (with at least `MIN_LINE_SITES` sites)."""
    expected: float
    """Stripes expected by chance (`StripeScan.expected`)."""
    stripes: list[Stripe]
    super_weights: list[SuperWeightStripes]

    def by_matrix(self) -> dict[str, int]:
        """Stripes per matrix type, in the order they first appear."""
        counts: dict[str, int] = defaultdict(int)
        for stripe in self.stripes:
            counts[stripe.matrix] += 1
        return dict(counts)


@lru_cache(maxsize=4096)
def majority_chance(sites: int, share: float) -> float:
    """The chance that more than half of `sites` sites are phenotypes, each one at `share`
    (a binomial tail, summed in logarithms: a line of elements has thousands of sites)."""
    if share <= 0.0 or share >= 1.0:
        return float(share >= 1.0)
    log_p, log_q, whole = math.log(share), math.log1p(-share), math.lgamma(sites + 1)
    return sum(
        math.exp(
            whole
            - math.lgamma(k + 1)
            - math.lgamma(sites - k + 1)
            + k * log_p
            + (sites - k) * log_q
        )
        for k in range(int(sites * STRIPE_SHARE) + 1, sites + 1)
    )


def line_stripes(
    key: tuple[int, str, str],
    axis: str,
    unit: int,
    sites: np.ndarray,
    phenotypes: np.ndarray,
    extent: int,
) -> StripeScan:
    """The stripes among one matrix's lines along `axis`, for one kind (`key` is (layer,
    matrix, kind)): `sites` and `phenotypes` per line, lines `unit` channels wide, the axis
    `extent` channels long."""
    layer, matrix, kind = key
    share = float(phenotypes.sum() / max(int(sites.sum()), 1))
    judged = sites >= MIN_LINE_SITES
    counts, repeats = np.unique(sites[judged], return_counts=True)
    expected = sum(
        int(r) * majority_chance(int(n), round(share, 9))
        for n, r in zip(counts, repeats, strict=True)
    )
    chosen = np.flatnonzero(judged & (phenotypes > STRIPE_SHARE * sites))
    stripes = [
        Stripe(
            layer,
            matrix,
            kind,
            axis,
            int(line),
            int(line) * unit,
            min((int(line) + 1) * unit, extent),
            space_of(matrix, axis),
            int(phenotypes[line]),
            int(sites[line]),
            share,
        )
        for line in chosen
    ]
    return StripeScan(int(judged.sum()), float(expected), stripes)


def frame_stripes(frame: SiteFrame) -> StripeScan:
    """The stripes of a computed screen: its phenotypes among the sites it tested."""
    extents = frame.extents()
    scan = StripeScan()
    for group in shape_groups(frame).values():
        units = {
            "row": int(group.row1[0] - group.row0[0]),
            "col": int(group.col1[0] - group.col0[0]),
        }
        for axis, slot in (("row", 0), ("col", 1)):
            lines_all = line_index(group, axis)
            for key, indices in strata(group):
                lines = lines_all[indices]
                count = int(lines.max()) + 1
                sites = np.bincount(lines, minlength=count)
                hits = np.bincount(lines[group.changed[indices]], minlength=count)
                extent = extents[(key[0], key[1])][slot]
                scan.add(line_stripes(key, axis, units[axis], sites, hits, extent))
    scan.stripes = _ordered(scan.stripes)
    return scan


def published_stripes(tiles: PublishedTiles) -> StripeScan:
    """The stripes of a published screen's table: every tile of a matrix was screened with
    every kind, the table lists the phenotypes."""
    unit = tiles.tile
    listed: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for index, key in enumerate(zip(tiles.layer, tiles.matrix, tiles.kind, strict=True)):
        listed[(int(key[0]), str(key[1]), str(key[2]))].append(index)
    scan = StripeScan()
    for (layer, matrix), (rows, cols) in sorted(tiles.shapes.items()):
        grid = (-(-rows // unit), -(-cols // unit))
        for kind in tiles.kinds:
            indices = np.array(listed.get((layer, matrix, kind), []), dtype=np.int64)
            for axis, slot, starts in (("row", 0, tiles.row0), ("col", 1, tiles.col0)):
                lines = starts[indices] // unit
                sites = np.full(grid[slot], grid[1 - slot])
                hits = np.bincount(lines, minlength=grid[slot])
                extent = (rows, cols)[slot]
                scan.add(line_stripes((layer, matrix, kind), axis, unit, sites, hits, extent))
    scan.stripes = _ordered(scan.stripes)
    return scan


def _ordered(stripes: Iterable[Stripe]) -> list[Stripe]:
    return sorted(stripes, key=lambda s: (-s.share, -s.phenotypes, s.layer, s.matrix, s.label))


def super_weight_stripes(
    stripes: Sequence[Stripe], weights: Iterable[SuperWeight]
) -> list[SuperWeightStripes]:
    """For each super weight, the stripes through it and those over its channels."""
    found = []
    for weight in weights:
        own, channel = [], []
        row_space, col_space = space_of(weight.matrix, "row"), space_of(weight.matrix, "col")
        for stripe in stripes:
            in_matrix = stripe.layer == weight.layer and stripe.matrix == weight.matrix
            through = stripe.start <= (weight.row if stripe.axis == "row" else weight.col)
            through &= (weight.row if stripe.axis == "row" else weight.col) < stripe.stop
            if in_matrix and through:
                own.append(stripe)
            elif stripe.covers(weight.layer, row_space, weight.row) or stripe.covers(
                weight.layer, col_space, weight.col
            ):
                channel.append(stripe)
        found.append(SuperWeightStripes(weight, own, channel))
    return found


def stripe_report(phenotype: str, scan: StripeScan, weights: Iterable[SuperWeight]) -> StripeReport:
    return StripeReport(
        phenotype,
        scan.judged,
        scan.expected,
        scan.stripes,
        super_weight_stripes(scan.stripes, weights),
    )
