"""Site samplers: which sites of a matrix a screen mutates, in a fixed order.

Every sampler answers two questions for a matrix: how many sites (`count`) and which is the
i-th (`site_at`), so a screen can start, resume or shard anywhere in its enumeration without
walking it from the beginning. The order is row-major wherever there is a grid.

Samplers have a table form (the `[sites]` table of a TOML spec, and the canonical form stored
with a screen) and a short text form for the command line, e.g. `tiles:64`, `random:1000,seed=7`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mutatui.engine.forms import INDEX_DIGITS, LARGEST_SEED, parse_whole, quoted
from mutatui.engine.matrices import MatrixCatalog, MatrixInfo
from mutatui.engine.sites import Site, check_site_syntax, parse_site
from mutatui.errors import MutatuiError

SAMPLER_NAMES = ("tiles", "random", "stride", "lines", "region", "list", "full")
SAMPLER_FORMS = (
    "tiles:R[xC] | random:N[,seed=S] | stride:R[xC][,offset=R0xC0] | "
    "lines:rows|cols|both[,every=K] | region:R0:R1,C0:C1 | list:SITE;SITE... | full"
)

FIRST_EXAMPLES = {
    "tiles": "tiles:64",
    "random": "random:1000",
    "stride": "stride:16",
    "lines": "lines:rows",
}
"""The text form of the samplers whose first value has no default there."""

LARGEST_INDEX = 10**INDEX_DIGITS - 1
"""Counts, steps and coordinates have at most as many digits as a site's numbers."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Tiles:
    """Every non-overlapping `rows` x `cols` block; edge tiles are cut to fit the matrix."""

    rows: int
    cols: int

    def count(self, info: MatrixInfo) -> int:
        return _ceil_div(info.rows, self.rows) * _ceil_div(info.cols, self.cols)

    def site_at(self, info: MatrixInfo, index: int) -> Site:
        across = _ceil_div(info.cols, self.cols)
        r0, c0 = (index // across) * self.rows, (index % across) * self.cols
        return Site(
            info.layer,
            info.name,
            r0,
            min(r0 + self.rows, info.rows),
            c0,
            min(c0 + self.cols, info.cols),
        )

    def table(self) -> dict:
        return {"sampler": "tiles", "size": [self.rows, self.cols]}


@lru_cache(maxsize=64)
def _random_positions(
    seed: int, wanted: int, layer: int, name: str, rows: int, cols: int
) -> np.ndarray:
    """Flat positions of `wanted` distinct elements, sorted; the same for the same arguments."""
    rng = np.random.default_rng([seed, layer, zlib.crc32(name.encode())])
    total = rows * cols
    picked = rng.choice(total, size=min(wanted, total), replace=False)
    return np.sort(picked)


@dataclass(frozen=True)
class RandomElements:
    """`count` distinct elements per matrix, drawn from `seed`, the matrix's layer and name."""

    number: int
    seed: int = 0

    def count(self, info: MatrixInfo) -> int:
        return min(self.number, info.rows * info.cols)

    def site_at(self, info: MatrixInfo, index: int) -> Site:
        positions = _random_positions(
            self.seed, self.number, info.layer, info.name, info.rows, info.cols
        )
        row, col = divmod(int(positions[index]), info.cols)
        return Site.element(info.layer, info.name, row, col)

    def table(self) -> dict:
        return {"sampler": "random", "count": self.number, "seed": self.seed}


@dataclass(frozen=True)
class Stride:
    """Elements on a regular grid: rows `row_offset::row_step`, columns `col_offset::col_step`."""

    row_step: int
    col_step: int
    row_offset: int = 0
    col_offset: int = 0

    def _axes(self, info: MatrixInfo) -> tuple[range, range]:
        return (
            range(self.row_offset, info.rows, self.row_step),
            range(self.col_offset, info.cols, self.col_step),
        )

    def count(self, info: MatrixInfo) -> int:
        rows, cols = self._axes(info)
        return len(rows) * len(cols)

    def site_at(self, info: MatrixInfo, index: int) -> Site:
        rows, cols = self._axes(info)
        return Site.element(
            info.layer, info.name, rows[index // len(cols)], cols[index % len(cols)]
        )

    def table(self) -> dict:
        return {
            "sampler": "stride",
            "step": [self.row_step, self.col_step],
            "offset": [self.row_offset, self.col_offset],
        }


@dataclass(frozen=True)
class Lines:
    """Whole rows, whole columns, or both (rows first), every `every`-th one."""

    axis: str
    every: int = 1

    def _rows(self, info: MatrixInfo) -> range:
        return range(0, info.rows, self.every) if self.axis in ("rows", "both") else range(0)

    def _cols(self, info: MatrixInfo) -> range:
        return range(0, info.cols, self.every) if self.axis in ("cols", "both") else range(0)

    def count(self, info: MatrixInfo) -> int:
        return len(self._rows(info)) + len(self._cols(info))

    def site_at(self, info: MatrixInfo, index: int) -> Site:
        rows = self._rows(info)
        if index < len(rows):
            return Site(info.layer, info.name, rows[index], rows[index] + 1, 0, info.cols)
        col = self._cols(info)[index - len(rows)]
        return Site(info.layer, info.name, 0, info.rows, col, col + 1)

    def table(self) -> dict:
        return {"sampler": "lines", "axis": self.axis, "every": self.every}


@dataclass(frozen=True)
class Region:
    """Every element of the rectangle rows `row0:row1`, columns `col0:col1` (half-open)."""

    row0: int
    row1: int
    col0: int
    col1: int

    def count(self, info: MatrixInfo) -> int:
        if self.row1 > info.rows or self.col1 > info.cols:
            raise MutatuiError(
                f"region [{self.row0}:{self.row1},{self.col0}:{self.col1}] does not fit "
                f"{info.label} ({info.rows}x{info.cols}); choose matrices it fits or a smaller region"
            )
        return (self.row1 - self.row0) * (self.col1 - self.col0)

    def site_at(self, info: MatrixInfo, index: int) -> Site:
        width = self.col1 - self.col0
        return Site.element(
            info.layer, info.name, self.row0 + index // width, self.col0 + index % width
        )

    def table(self) -> dict:
        return {"sampler": "region", "rows": [self.row0, self.row1], "cols": [self.col0, self.col1]}


@dataclass(frozen=True)
class SiteList:
    """An explicit list of sites (elements or blocks), in the given order within each matrix."""

    sites: tuple[str, ...]

    def resolved(self, catalog: MatrixCatalog) -> dict[tuple[int, str], list[Site]]:
        """The sites grouped by matrix, each parsed and validated against the model."""
        grouped: dict[tuple[int, str], list[Site]] = {}
        for text in self.sites:
            site = parse_site(text, catalog)
            grouped.setdefault((site.layer, site.matrix), []).append(site)
        return grouped

    def table(self) -> dict:
        return {"sampler": "list", "sites": list(self.sites)}


@dataclass(frozen=True)
class Full:
    """Every element of the matrix."""

    def count(self, info: MatrixInfo) -> int:
        return info.rows * info.cols

    def site_at(self, info: MatrixInfo, index: int) -> Site:
        row, col = divmod(index, info.cols)
        return Site.element(info.layer, info.name, row, col)

    def table(self) -> dict:
        return {"sampler": "full"}


Sampler = Tiles | RandomElements | Stride | Lines | Region | SiteList | Full


def _pair(value: object, what: str) -> tuple[int, int]:
    """An int (the same for rows and columns) or a two-int list."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise MutatuiError(f"sites: {what} must be an integer or [rows, cols], got {value!r}")


def _positive(value: int, what: str, minimum: int = 1) -> int:
    if value < minimum:
        raise MutatuiError(f"sites: {what} must be at least {minimum}, got {value}")
    return value


def _int(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MutatuiError(f"sites: {what} must be an integer, got {value!r}")


def _seed(value: object) -> int:
    seed = _int(value, "seed")
    if not 0 <= seed <= LARGEST_SEED:
        raise MutatuiError(f"sites: seed must be between 0 and {LARGEST_SEED}, got {seed}")
    return seed


def _index(value: int, what: str) -> int:
    """A count, step or coordinate no matrix could exceed (the size of a site's numbers)."""
    if value > LARGEST_INDEX:
        raise MutatuiError(f"sites: {what} {value} is larger than any matrix ({LARGEST_INDEX})")
    return value


def sampler_from_table(table: Mapping[str, object]) -> Sampler:
    """Build a sampler from its table form; one clear line for anything wrong."""
    known = {
        "tiles": {"size"},
        "random": {"count", "seed"},
        "stride": {"step", "offset"},
        "lines": {"axis", "every"},
        "region": {"rows", "cols"},
        "list": {"sites"},
        "full": set(),
    }
    name = table.get("sampler")
    if name not in known:
        raise MutatuiError(f"sites: unknown sampler {name!r}; valid: {', '.join(known)}")
    extra = set(table) - known[name] - {"sampler"}
    if extra:
        raise MutatuiError(
            f"sites: {name} takes {', '.join(sorted(known[name])) or 'no options'}, "
            f"not {', '.join(sorted(extra))}"
        )
    if name == "tiles":
        rows, cols = _pair(table.get("size", 64), "size")
        return Tiles(
            _index(_positive(rows, "tile rows"), "tile rows"),
            _index(_positive(cols, "tile cols"), "tile cols"),
        )
    if name == "random":
        if "count" not in table:
            raise MutatuiError("sites: random needs count, the number of elements per matrix")
        number = _index(_positive(_int(table["count"], "count"), "count"), "count")
        return RandomElements(number, _seed(table.get("seed", 0)))
    if name == "stride":
        rows, cols = _pair(table.get("step", 16), "step")
        off_r, off_c = _pair(table.get("offset", 0), "offset")
        return Stride(
            _index(_positive(rows, "row step"), "row step"),
            _index(_positive(cols, "col step"), "col step"),
            _index(_positive(off_r, "row offset", 0), "row offset"),
            _index(_positive(off_c, "col offset", 0), "col offset"),
        )
    if name == "lines":
        axis = table.get("axis", "rows")
        if axis not in ("rows", "cols", "both"):
            raise MutatuiError(f"sites: lines axis {axis!r}; valid: rows, cols, both")
        every = _index(_positive(_int(table.get("every", 1), "every"), "every"), "every")
        return Lines(str(axis), every)
    if name == "region":
        if "rows" not in table or "cols" not in table:
            raise MutatuiError("sites: region needs rows = [R0, R1] and cols = [C0, C1]")
        r0, r1 = (_index(v, "region rows") for v in _pair(table["rows"], "rows"))
        c0, c1 = (_index(v, "region cols") for v in _pair(table["cols"], "cols"))
        if not (0 <= r0 < r1 and 0 <= c0 < c1):
            raise MutatuiError(
                f"sites: region rows {r0}:{r1}, cols {c0}:{c1} is empty; give half-open "
                "ranges with start < stop"
            )
        return Region(r0, r1, c0, c1)
    if name == "list":
        sites = table.get("sites")
        if (
            not isinstance(sites, Sequence)
            or isinstance(sites, str)
            or not sites
            or not all(isinstance(s, str) for s in sites)
        ):
            raise MutatuiError('sites: list needs sites = ["L3.v[1,2]", ...], a non-empty list')
        for site in sites:
            check_site_syntax(site)
        cleaned = tuple(s.strip() for s in sites)
        same = [s.replace(" ", "") for s in cleaned]
        twice = next((cleaned[i] for i, s in enumerate(same) if s in same[:i]), None)
        if twice is not None:
            raise MutatuiError(f"sites: {quoted(twice)} is listed twice; list each site once")
        return SiteList(cleaned)
    return Full()


def _text_int(text: str, what: str) -> int:
    return parse_whole(text, f"sites: {what}", maximum=LARGEST_INDEX)


def _text_pair(text: str, what: str) -> list[int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2):
        raise MutatuiError(f"sites: bad {what} {quoted(text)}; valid: N or RxC")
    numbers = [_text_int(part, what) for part in parts]
    return numbers * 2 if len(numbers) == 1 else numbers


def parse_sampler(text: str) -> Sampler:
    """The command-line form: `tiles:64`, `random:1000,seed=7`, `region:0:8,0:16`, ..."""
    name, _, rest = text.strip().partition(":")
    name = name.strip().lower()
    if name not in SAMPLER_NAMES:
        raise MutatuiError(f"sites: unknown sampler {name!r}; valid: {SAMPLER_FORMS}")
    if name == "region":
        bounds = [axis.split(":") for axis in rest.split(",")]
        if [len(axis) for axis in bounds] != [2, 2]:
            raise MutatuiError(f"sites: bad region {quoted(rest)}; valid: region:R0:R1,C0:C1")
        (r0, r1), (c0, c1) = ([_text_int(v, "region bound") for v in axis] for axis in bounds)
        return sampler_from_table({"sampler": "region", "rows": [r0, r1], "cols": [c0, c1]})
    if name == "list":
        sites = [s for s in rest.split(";") if s.strip()]
        return sampler_from_table({"sampler": "list", "sites": sites})
    positional, *options = [part.strip() for part in rest.split(",")] if rest else [""]
    table: dict[str, object] = {"sampler": name}
    first_key = {"tiles": "size", "random": "count", "stride": "step", "lines": "axis"}
    if positional:
        if name not in first_key:
            raise MutatuiError(f"sites: bad sampler {quoted(text)}; valid: {SAMPLER_FORMS}")
        table[first_key[name]] = positional
    elif name in first_key:
        raise MutatuiError(
            f"sites: {name} needs its {first_key[name]} after a colon (as in "
            f"{FIRST_EXAMPLES[name]}); valid: {SAMPLER_FORMS}"
        )
    for option in options:
        key, equals, value = (part.strip() for part in option.partition("="))
        if not equals:
            raise MutatuiError(
                f"sites: bad option {quoted(option)} in {quoted(text)}; valid: {SAMPLER_FORMS}"
            )
        if key in table:
            raise MutatuiError(f"sites: {key} is given twice in {quoted(text)}; give it once")
        table[key] = value
    for key in ("size", "step", "offset"):
        if isinstance(table.get(key), str):
            table[key] = _text_pair(str(table[key]), key)
    for key in ("count", "every"):
        if isinstance(table.get(key), str):
            table[key] = _text_int(str(table[key]), key)
    if isinstance(table.get("seed"), str):
        table["seed"] = parse_whole(str(table["seed"]), "sites: seed", maximum=LARGEST_SEED)
    return sampler_from_table(table)


def sampler_notes(sampler: Sampler, matrices: Sequence[MatrixInfo]) -> list[str]:
    """What a sampler does that its text does not say: a random count larger than a matrix
    screens that matrix whole."""
    if not isinstance(sampler, RandomElements):
        return []
    smaller = [m for m in matrices if m.rows * m.cols < sampler.number]
    if not smaller:
        return []
    first = smaller[0]
    more = f" and {len(smaller) - 1} more matrices" if len(smaller) > 1 else ""
    return [
        f"random:{sampler.number} is more than the {first.rows * first.cols} elements of "
        f"L{first.layer}.{first.name}{more}; each of those is screened whole"
    ]
