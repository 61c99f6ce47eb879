"""Writer mutations: descriptive answers turned conversational or poetic, grouped by first word.

The paper grouped its writer mutations by the first word of the mutant's output and looked at
the rare initial words of highest frequency: words the unmutated model does not start with, but
that many mutants do. A writer here is a changed outcome graded conversational or poetic where
the probe's baseline answer is not already of that style (`screening.style.writer_styles`: an
email that stays conversational is no writer), or a mutation a user tagged `writer` in the
explorer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mutatui.screening.style import first_word, writer_styles
from mutatui.store.frames import Probe, SiteFrame, StyledOutcomes


@dataclass
class FirstWordGroup:
    word: str
    outcomes: int
    mutations: int
    matrices: int
    layers: int
    conversational: int
    poetic: int
    changed_share: float
    """Fraction of all changed outcomes (writers or not) that start with this word."""


@dataclass
class WriterGroups:
    writer_outcomes: int
    writer_mutations: int
    changed_outcomes: int
    baseline_first_words: dict[str, str]
    groups: list[FirstWordGroup]
    """First words no baseline starts with, most frequent among writers first."""


def is_writer(styled: StyledOutcomes, probes: list[Probe]) -> np.ndarray:
    """Per outcome: a writer style its probe's baseline does not have, or tagged `writer`."""
    writers = styled.tagged_writer.copy()
    for probe in probes:
        if probe.kind == "text":
            of_probe = styled.probe == probe.name
            writers |= of_probe & np.isin(styled.style, writer_styles(probe.baseline_text))
    return writers


def writer_groups(styled: StyledOutcomes, probes: list[Probe], *, top: int = 10) -> WriterGroups:
    baseline = {
        probe.name: first_word(probe.baseline_text or "") or ""
        for probe in probes
        if probe.kind == "text"
    }
    writers = is_writer(styled, probes)
    usual = styled.first_word == np.array([baseline.get(p, "") for p in styled.probe], dtype=str)
    candidates = writers & ~usual & (styled.first_word != "")
    groups = []
    words, counts = np.unique(styled.first_word[candidates], return_counts=True)
    for index in np.lexsort((words, -counts))[:top]:
        word = str(words[index])
        mask = candidates & (styled.first_word == word)
        groups.append(
            FirstWordGroup(
                word=word,
                outcomes=int(counts[index]),
                mutations=len(np.unique(styled.mutation_id[mask])),
                matrices=len(
                    {(a, b) for a, b in zip(styled.layer[mask], styled.matrix[mask], strict=True)}
                ),
                layers=len(np.unique(styled.layer[mask])),
                conversational=int((styled.style[mask] == "conversational").sum()),
                poetic=int((styled.style[mask] == "poetic").sum()),
                changed_share=float((styled.first_word == word).sum() / max(len(styled), 1)),
            )
        )
    return WriterGroups(
        writer_outcomes=int(writers.sum()),
        writer_mutations=len(np.unique(styled.mutation_id[writers])),
        changed_outcomes=len(styled),
        baseline_first_words=baseline,
        groups=groups,
    )


def writer_mask(frame: SiteFrame, styled: StyledOutcomes) -> np.ndarray:
    """Which mutations of `frame` are writers on at least one probe."""
    return np.isin(frame.mutation_id, styled.mutation_id[is_writer(styled, frame.probes)])
