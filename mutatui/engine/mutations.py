"""Mutations: set every element of a site to its matrix's max, min, zero or an explicit value.

Applying a mutation writes only the site's elements, in place; restoring copies the saved
elements back, so the weights are bit-exactly the originals afterwards, also when the code in
between raises or is interrupted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import torch

from mutatui.engine.forms import KIND_FORMS, is_real, parse_real, quoted
from mutatui.engine.matrices import MatrixCatalog, MatrixInfo
from mutatui.engine.sites import Site, parse_site, validate_site
from mutatui.errors import MutatuiError


class Kind(StrEnum):
    MAX = "max"
    MIN = "min"
    ZERO = "zero"
    VALUE = "value"


@dataclass(frozen=True)
class Mutation:
    """A site and what its elements become. `value` is set only for `Kind.VALUE`."""

    site: Site
    kind: Kind
    value: float | None = None

    def target(self, info: MatrixInfo) -> float:
        """The value written into every element of the site (extremes of the unmutated matrix)."""
        if self.kind is Kind.MAX:
            return info.max
        if self.kind is Kind.MIN:
            return info.min
        if self.kind is Kind.ZERO:
            return 0.0
        assert self.value is not None
        return self.value

    @property
    def kind_text(self) -> str:
        return repr(self.value) if self.kind is Kind.VALUE else self.kind.value

    def __str__(self) -> str:
        return f"{self.site}={self.kind_text}"


def parse_kind(text: str) -> tuple[Kind, float | None]:
    """`max`, `min`, `zero` or a number as written (`1e4`; `inf`, `-inf` and `nan` spelled out:
    they are graded, not fatal). A number that a float would overflow or round to zero is
    refused: 1e400 is not a way to write inf."""
    lowered = text.strip().lower()
    if lowered in (Kind.MAX, Kind.MIN, Kind.ZERO):
        return Kind(lowered), None
    if not is_real(lowered, words=True):
        raise MutatuiError(f"bad mutation kind {quoted(text)}; valid: {KIND_FORMS}")
    return Kind.VALUE, parse_real(text, "the mutation kind", words=True)


def check_value(value: float | None, dtype: torch.dtype) -> None:
    """Refuse a written value the weights' dtype would store as another: beyond its range
    (infinity) or below its smallest step (zero). inf and nan written as such pass."""
    if value is None or not math.isfinite(value) or value == 0.0:
        return
    limits = torch.finfo(dtype)
    smallest = limits.tiny * limits.eps  # the smallest subnormal
    if abs(value) > limits.max or abs(value) < smallest / 2:
        name = str(dtype).removeprefix("torch.")
        raise MutatuiError(
            f"the value {value:g} does not fit the weights' {name}: it holds magnitudes from "
            f"{smallest:.3g} to {limits.max:.3g} (and 0, inf, nan)"
        )


def weight_dtype(catalog: MatrixCatalog, layer: int, name: str) -> torch.dtype:
    """The precision a value written into the matrix is stored in."""
    return catalog.value_dtype or catalog.parameter(layer, name).dtype


def make_mutation(site: Site | str, kind: str | Kind, catalog: MatrixCatalog) -> Mutation:
    """Build a validated mutation from text or parts."""
    resolved = parse_site(site, catalog) if isinstance(site, str) else site
    validate_site(resolved, catalog.get(resolved.layer, resolved.matrix))
    parsed_kind, value = parse_kind(kind if isinstance(kind, str) else kind.value)
    check_value(value, weight_dtype(catalog, resolved.layer, resolved.matrix))
    return Mutation(resolved, parsed_kind, value)


def target_block(mutation: Mutation, catalog: MatrixCatalog) -> torch.Tensor:
    """The site's new contents, shaped like the site, in the weight's dtype and device (a
    value rounded first to the weights' own precision when they are held wider)."""
    site = mutation.site
    weight = catalog.parameter(site.layer, site.matrix)
    value = mutation.target(catalog.get(site.layer, site.matrix))
    block = torch.full(site.shape, value, dtype=catalog.value_dtype or weight.dtype)
    return block.to(device=weight.device, dtype=weight.dtype)


@contextmanager
def mutated(catalog: MatrixCatalog, mutation: Mutation) -> Iterator[None]:
    """Apply `mutation` in place for the duration of the block; restore it bit-exactly after."""
    site = mutation.site
    saved = catalog.site_values(site)
    try:
        catalog.write_site(site, target_block(mutation, catalog))
        yield
    finally:
        catalog.write_site(site, saved)
