"""Writer mutations: outputs turned conversational or poetic, grouped by their first word.

A writer output has a writer style its probe's baseline answer does not have
(`screening.style.writer_styles`), as in `mutatui analyze`.

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
from mutatui.screening.style import writer_styles
from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import Phenotypes


@dataclass(frozen=True)
class WriterSite:
    """One writer mutation: where it is (`position` in the screen data), and the probe whose
    output it turned (the first, when it turned several)."""

    position: int
    site: Site
    probe_id: int


@dataclass(frozen=True)
class WriterGroup:
    word: str
    results: int
    share: float
    """This word's share of every changed output in the screen: small means rare."""
    styles: tuple[str, ...]
    entries: tuple[WriterSite, ...]

    @property
    def sites(self) -> tuple[Site, ...]:
        return tuple(entry.site for entry in self.entries)


@dataclass(frozen=True)
class Writers:
    groups: list[WriterGroup]
    shared_rows: dict[tuple[int, int], set[str]]
    """(row0, row1) -> the matrices (L<layer>.<type>) with a writer mutation on that row,
    for rows found in more than one matrix."""


def writer_results(data: ScreenData) -> np.ndarray:
    """Per changed result: whether it took a writer style its probe's baseline does not have."""
    writers = np.zeros(len(data.phenotype_style), dtype=bool)
    for probe in data.probes:
        if probe.kind == "text":
            styles = writer_styles(probe.baseline_text)
            codes = [data.styles.index(style) for style in styles if style in data.styles]
            of_probe = data.phenotype_probe == probe.probe_id
            writers |= of_probe & np.isin(data.phenotype_style, codes)
    return writers


def writer_groups(data: ScreenData, phenotypes: Phenotypes) -> Writers:
    rows = writer_results(data) & (data.phenotype_word >= 0)
    rows &= phenotypes.kept[data.phenotype_mutation]
    all_words = np.bincount(
        data.phenotype_word[data.phenotype_word >= 0], minlength=len(data.words)
    )
    total = max(int(all_words.sum()), 1)
    groups = []
    matrices_by_row: dict[tuple[int, int], set[str]] = defaultdict(set)
    for code in np.unique(data.phenotype_word[rows]):
        members = rows & (data.phenotype_word == code)
        results = np.flatnonzero(members)
        positions, first = np.unique(data.phenotype_mutation[results], return_index=True)
        styles = sorted({data.styles[s] for s in np.unique(data.phenotype_style[members])})
        entries = []
        for position, result in zip(positions, results[first], strict=True):
            site = data.site(int(position))
            entries.append(WriterSite(int(position), site, int(data.phenotype_probe[result])))
            matrices_by_row[(site.row0, site.row1)].add(site.matrix_label)
        groups.append(
            WriterGroup(
                data.words[int(code)],
                int(members.sum()),
                int(all_words[code]) / total,
                tuple(styles),
                tuple(entries),
            )
        )
    groups.sort(key=lambda group: (-group.results, group.word))
    shared = {row: labels for row, labels in matrices_by_row.items() if len(labels) > 1}
    return Writers(groups, shared)
