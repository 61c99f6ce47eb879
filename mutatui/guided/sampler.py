"""The guided sampler: turn stored predictions into the sites a screen should test first.

Pure functions over what `mutatui.store.guided` reads (no SQL here): the best-scoring elements
across all matrices, each once, and optionally the whole row and column through each of them,
since phenotypes cluster on axes (Hu et al. 2024).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
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


def site_list_spec(sites: Iterable[Site], *, model: str, kinds: Iterable[str]) -> str:
    """A screen spec (TOML) whose `list` sampler holds exactly these sites.

    `mutatui screen --spec FILE` runs it (flags such as --probe and --db add the rest), and the
    spec stays self-contained: the screen records the sites, not a pointer to the prediction.
    """
    lines = [
        "# A guided screen: sites ranked by `mutatui predict` (docs/guide/guided.md).",
        f"model = {json.dumps(model)}",
        f"kinds = [{', '.join(json.dumps(kind) for kind in kinds)}]",
        "",
        "[sites]",
        'sampler = "list"',
        "sites = [",
        *(f"    {json.dumps(str(site))}," for site in sites),
        "]",
    ]
    return "\n".join(lines) + "\n"


def write_site_list(sites: Iterable[Site], path: str, *, model: str, kinds: Iterable[str]) -> int:
    """Write the sites to `path`: a screen spec if it ends in .toml, else one site per line."""
    chosen = list(sites)
    if path.endswith(".toml"):
        text = site_list_spec(chosen, model=model, kinds=kinds)
    else:
        text = "".join(f"{site}\n" for site in chosen)
    try:
        Path(path).expanduser().write_text(text, encoding="utf-8")
    except OSError as error:
        raise MutatuiError(f"cannot write site list {path}: {error.strerror}") from error
    return len(chosen)
