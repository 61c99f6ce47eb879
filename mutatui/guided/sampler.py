"""The guided sampler: turn stored predictions into the sites a screen should test first.

Pure functions over what `mutatui.store.guided` reads (no SQL here): the best-scoring elements
across all matrices, each once, and optionally the whole row and column through each of them,
since phenotypes cluster on axes (Hu et al. 2024).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from mutatui.engine.sites import Site
from mutatui.errors import MutatuiError


class ScoredSite(Protocol):
    layer: int
    matrix: str
    row: int
    col: int
    score: float


def guided_sites(
    ranked: Iterable[ScoredSite],
    count: int,
    *,
    lines: bool = False,
    shapes: Mapping[tuple[int, str], tuple[int, int]] | None = None,
) -> list[Site]:
    """The first `count` distinct element sites of `ranked` (best first), then their lines.

    `ranked` may list one element several times (once per kind); it is kept once, at its best
    position. With `lines`, the whole row and the whole column through each chosen element
    follow, each once; `shapes` gives every matrix's (rows, cols) for that.
    """
    if count < 1:
        raise MutatuiError(f"guided site count must be at least 1, got {count}")
    chosen: list[Site] = []
    seen: set[Site] = set()
    for item in ranked:
        site = Site.element(item.layer, item.matrix, item.row, item.col)
        if site in seen:
            continue
        seen.add(site)
        chosen.append(site)
        if len(chosen) == count:
            break
    if not lines:
        return chosen
    if shapes is None:
        raise MutatuiError("guided lines need the matrices' shapes")
    extra: list[Site] = []
    for site in chosen:
        rows, cols = shapes[(site.layer, site.matrix)]
        for line in (
            Site(site.layer, site.matrix, site.row0, site.row1, 0, cols),
            Site(site.layer, site.matrix, 0, rows, site.col0, site.col1),
        ):
            if line not in seen:
                seen.add(line)
                extra.append(line)
    return chosen + extra


def write_site_list(sites: Iterable[Site], path: str) -> int:
    """Write one site per line (the explicit-list form a screen spec reads); return the count."""
    lines = [str(site) for site in sites]
    try:
        with open(path, "w", encoding="utf-8") as handle:  # noqa: PTH123 - a user path
            handle.write("".join(f"{line}\n" for line in lines))
    except OSError as error:
        raise MutatuiError(f"cannot write site list {path}: {error.strerror}") from error
    return len(lines)
