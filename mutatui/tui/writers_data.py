"""Writer mutations: outputs turned conversational or poetic, grouped by their first word.

Which outputs are writers is `screening.style.writer_outcomes`, the definition `mutatui
analyze` applies too: a writer style its probe's baseline answer does not have, opening with
a word the baseline does not open with, or a mutation tagged `writer`.

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
from mutatui.screening.style import opens_anew, writer_outcomes
from mutatui.store.effects import ROBUST_MARGIN
from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import Phenotypes


@dataclass(frozen=True)
class WriterSite:
    """One writer mutation: where it is (`position` in the screen data), the probe whose
    output it turned (the first, when it turned several), and the unmutated model's margin
    (top-1 minus top-2 logit) at the step that output diverged (None: not recorded)."""

    position: int
    site: Site
    probe_id: int
    margin: float | None = None

    @property
    def near_tie(self) -> bool:
        """Diverged where the unmutated model's own margin was under `ROBUST_MARGIN`: any
        small change of the weights could have turned that token."""
        return self.margin is not None and self.margin < ROBUST_MARGIN


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
    """Per changed result: whether it is a writer outcome that opens anew, so that it has a
    first-word group (`screening.style`)."""
    baselines = {p.probe_id: p.baseline_text for p in data.probes if p.kind == "text"}
    styles = np.array([*data.styles, ""], dtype=str)[data.phenotype_style]
    words = np.array([*(w.lower() for w in data.words), ""], dtype=str)[data.phenotype_word]
    tagged_mutations = np.zeros(len(data.mutation_id), dtype=bool)
    tagged_mutations[[p for p, tags in data.tags.items() if "writer" in tags]] = True
    tagged = tagged_mutations[data.phenotype_mutation]
    probe = data.phenotype_probe
    writers = writer_outcomes(probe, styles, words, tagged, baselines)
    return writers & opens_anew(probe, words, baselines)


def _recorded(margins: np.ndarray | None, result: int) -> float | None:
    if margins is None or np.isnan(margins[result]):
        return None
    return float(margins[result])


def writer_groups(data: ScreenData, phenotypes: Phenotypes, *, near_ties: bool = True) -> Writers:
    """The writer groups of the mutations `phenotypes` keeps; without `near_ties`, only the
    outputs that diverged at a margin of at least `ROBUST_MARGIN` (or one not recorded)."""
    rows = writer_results(data) & phenotypes.kept[data.phenotype_mutation]
    margins = data.phenotype_margin
    if not near_ties and margins is not None:
        rows &= ~(margins < ROBUST_MARGIN)  # NaN, not recorded, stays
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
        codes = np.unique(data.phenotype_style[members])
        styles = sorted(data.styles[s] for s in codes[codes >= 0])  # a tagged writer may have none
        entries = []
        for position, result in zip(positions, results[first], strict=True):
            site = data.site(int(position))
            probe = int(data.phenotype_probe[result])
            entries.append(WriterSite(int(position), site, probe, _recorded(margins, result)))
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
