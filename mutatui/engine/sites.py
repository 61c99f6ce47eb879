"""Mutation sites: one element or a rectangular block of one matrix, and their text form.

`L29.down[12,345]` is the element at row 12, column 345 of layer 29's down projection;
`L29.down[0:64,320:384]` is a 64x64 block (half-open ranges, as in Python); `L3.v[:,17]` is
a whole column (open ends need the model's matrix shapes to resolve).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from mutatui.engine.forms import INDEX_DIGITS, quoted
from mutatui.errors import MutatuiError


class MatrixBounds(Protocol):
    """What validating a site needs of its matrix (a `matrices.MatrixInfo` is one). A protocol,
    not an import: the parser needs no torch, and matrices builds on sites, not the reverse."""

    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def label(self) -> str: ...


class MatrixLookup(Protocol):
    """Where a site's matrix is found by layer and name (a `matrices.MatrixCatalog` is one)."""

    def get(self, layer: int, name: str) -> MatrixBounds: ...


SITE_FORMS = "L<layer>.<matrix>[<row>,<col>] or a block L<layer>.<matrix>[r0:r1,c0:c1]"

_NUMBER = rf"[0-9]{{1,{INDEX_DIGITS}}}"
_SITE_PATTERN = re.compile(
    rf"^L(?P<layer>{_NUMBER})\.(?P<matrix>[A-Za-z_][\w.]*)\[(?P<index>[^\]]*)\]$", re.ASCII
)
_AXIS_PATTERN = re.compile(
    rf"^(?:(?P<single>{_NUMBER})|(?P<start>(?:{_NUMBER})?):(?P<stop>(?:{_NUMBER})?))$",
    re.ASCII,
)
"""Digits are 0-9 alone (re.ASCII): Python's \\d and int() would read other scripts' digits."""


@dataclass(frozen=True, order=True)
class Site:
    """Rows `row0:row1` and columns `col0:col1` (half-open) of one matrix of one layer."""

    layer: int
    matrix: str
    row0: int
    row1: int
    col0: int
    col1: int

    @classmethod
    def element(cls, layer: int, matrix: str, row: int, col: int) -> Site:
        return cls(layer, matrix, row, row + 1, col, col + 1)

    @property
    def is_element(self) -> bool:
        return self.row1 - self.row0 == 1 and self.col1 - self.col0 == 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.row1 - self.row0, self.col1 - self.col0

    @property
    def size(self) -> int:
        rows, cols = self.shape
        return rows * cols

    @property
    def matrix_label(self) -> str:
        """`L<layer>.<type>`: the matrix the site lies in."""
        return f"L{self.layer}.{self.matrix}"

    @property
    def rows(self) -> slice:
        return slice(self.row0, self.row1)

    @property
    def cols(self) -> slice:
        return slice(self.col0, self.col1)

    def __str__(self) -> str:
        rows, cols = _axis_text(self.row0, self.row1), _axis_text(self.col0, self.col1)
        return f"{self.matrix_label}[{rows},{cols}]"


def _axis_text(start: int, stop: int) -> str:
    return str(start) if stop == start + 1 else f"{start}:{stop}"


def _parse_axis(text: str, whole: str) -> tuple[int | None, int | None]:
    match = _AXIS_PATTERN.match(text.strip())
    if match is None:
        raise MutatuiError(f"bad {whole} index {quoted(text.strip())}; valid: N, A:B, :")
    if match["single"] is not None:
        value = int(match["single"])
        return value, value + 1
    start = int(match["start"]) if match["start"] else None
    stop = int(match["stop"]) if match["stop"] else None
    return start, stop


def _parse_parts(
    text: str,
) -> tuple[int, str, tuple[int | None, int | None], tuple[int | None, int | None]]:
    cleaned = text.strip().replace(" ", "")
    match = _SITE_PATTERN.match(cleaned)
    if match is None:
        raise MutatuiError(f"bad site {quoted(text)}; valid: {SITE_FORMS}")
    parts = match["index"].split(",")
    if len(parts) != 2:
        raise MutatuiError(f"bad site {quoted(text)}: give a row and a column; valid: {SITE_FORMS}")
    rows, cols = _parse_axis(parts[0], "row"), _parse_axis(parts[1], "column")
    return int(match["layer"]), match["matrix"], rows, cols


def check_site_syntax(text: str) -> None:
    """Raise the one-line error for malformed site text, before any model is loaded."""
    _parse_parts(text)


def parse_site(text: str, catalog: MatrixLookup | None = None) -> Site:
    """Parse the text form of a site; with a catalog, also resolve open ranges and validate.

    Every failure is a `MutatuiError` whose one line says what was wrong and what is valid.
    """
    layer, matrix, (row0, row1), (col0, col1) = _parse_parts(text)
    if catalog is None:
        if None in (row0, row1, col0, col1):
            raise MutatuiError(
                f"site {quoted(text)} has an open range; it needs the model to resolve"
            )
        return Site(layer, matrix, row0, row1, col0, col1)  # type: ignore[arg-type]
    info = catalog.get(layer, matrix)
    site = Site(
        layer,
        matrix,
        0 if row0 is None else row0,
        info.rows if row1 is None else row1,
        0 if col0 is None else col0,
        info.cols if col1 is None else col1,
    )
    validate_site(site, info)
    return site


def validate_site(site: Site, info: MatrixBounds) -> None:
    """Raise a one-line error when the site does not fit inside its matrix."""
    for axis, start, stop, limit in (
        ("row", site.row0, site.row1, info.rows),
        ("column", site.col0, site.col1, info.cols),
    ):
        if not 0 <= start < stop <= limit:
            shown = _axis_text(start, stop) if stop > start else f"{start}:{stop}"
            raise MutatuiError(
                f"{axis} {shown} out of range for {info.label} ({info.rows}x{info.cols}); "
                f"valid {axis}s: 0..{limit - 1}"
            )
