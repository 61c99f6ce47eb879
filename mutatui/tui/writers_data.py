"""Writer mutations: outputs turned conversational or poetic, grouped by their first word.

Hu et al. ranked the rare initial words by frequency and found that writer mutations tend to
share a row coordinate across matrices; `writer_groups` gives both: the groups, most frequent
first, each word's share of all changed outputs (how rare it is), and the rows that carry
writer mutations in more than one matrix.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from mutatui.engine.sites import Site
from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import Phenotypes

WRITER_STYLES = ("conversational", "poetic")


@dataclass(frozen=True)
class WriterGroup:
    word: str
    results: int
    share: float
    """This word's share of every changed output in the screen: small means rare."""
    styles: tuple[str, ...]
    sites: tuple[Site, ...]


@dataclass(frozen=True)
class Writers:
    groups: list[WriterGroup]
    shared_rows: dict[tuple[int, int], set[str]]
    """(row0, row1) -> the matrices (L<layer>.<type>) with a writer mutation on that row,
    for rows found in more than one matrix."""


def writer_groups(data: ScreenData, phenotypes: Phenotypes) -> Writers:
    codes = [data.styles.index(style) for style in WRITER_STYLES if style in data.styles]
    rows = np.isin(data.phenotype_style, codes) & (data.phenotype_word >= 0)
    rows &= phenotypes.kept[data.phenotype_mutation]
    all_words = np.bincount(
        data.phenotype_word[data.phenotype_word >= 0], minlength=len(data.words)
    )
    total = max(int(all_words.sum()), 1)
    groups = []
    matrices_by_row: dict[tuple[int, int], set[str]] = defaultdict(set)
    for code in np.unique(data.phenotype_word[rows]):
        members = rows & (data.phenotype_word == code)
        positions = np.unique(data.phenotype_mutation[members])
        styles = sorted({data.styles[s] for s in np.unique(data.phenotype_style[members])})
        sites = []
        for position in positions:
            site = data.site(int(position))
            sites.append(site)
            matrices_by_row[(site.row0, site.row1)].add(site.matrix_label)
        groups.append(
            WriterGroup(
                data.words[int(code)],
                int(members.sum()),
                int(all_words[code]) / total,
                tuple(styles),
                tuple(sites),
            )
        )
    groups.sort(key=lambda group: (-group.results, group.word))
    shared = {row: labels for row, labels in matrices_by_row.items() if len(labels) > 1}
    return Writers(groups, shared)
