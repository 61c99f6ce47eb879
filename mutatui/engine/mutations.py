"""Mutations: set every element of a site to its matrix's max, min, zero or an explicit value.

Applying a mutation writes only the site's elements, in place; restoring copies the saved
elements back, so the weights are bit-exactly the originals afterwards, also when the code in
between raises or is interrupted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import torch

from mutatui.engine.forms import KIND_FORMS, quoted
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
    """`max`, `min`, `zero` or a number (`1e4`, `-inf` and `nan` too: they are graded, not fatal)."""
    lowered = text.strip().lower()
    if lowered in (Kind.MAX, Kind.MIN, Kind.ZERO):
        return Kind(lowered), None
    try:
        return Kind.VALUE, float(lowered)
    except ValueError:
        raise MutatuiError(f"bad mutation kind {quoted(text)}; valid: {KIND_FORMS}") from None


def make_mutation(site: Site | str, kind: str | Kind, catalog: MatrixCatalog) -> Mutation:
    """Build a validated mutation from text or parts."""
    resolved = parse_site(site, catalog) if isinstance(site, str) else site
    validate_site(resolved, catalog.get(resolved.layer, resolved.matrix))
    parsed_kind, value = parse_kind(kind if isinstance(kind, str) else kind.value)
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
