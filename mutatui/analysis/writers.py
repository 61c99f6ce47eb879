"""Writer mutations: descriptive answers turned conversational or poetic, grouped by first word.

The paper grouped its writer mutations by the first word of the mutant's output and looked at
the rare initial words of highest frequency: words the unmutated model does not start with, but
that many mutants do. A writer is defined once, in `screening.style.writer_outcomes`, for the
analysis and the explorer's writers view alike: a changed outcome graded conversational or
poetic where the probe's baseline answer is not already of that style (an email that stays
conversational is no writer) and that does not open as the baseline does, or a mutation a user
tagged `writer` in the explorer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mutatui.screening.style import first_word, opens_anew, writer_outcomes
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


def text_baselines(probes: list[Probe]) -> dict[str, str | None]:
    """Each text probe's name -> its baseline answer: the probes whose outcomes can be writers."""
    return {probe.name: probe.baseline_text for probe in probes if probe.kind == "text"}


def is_writer(styled: StyledOutcomes, probes: list[Probe]) -> np.ndarray:
    """Per outcome: whether it is a writer outcome (`screening.style.writer_outcomes`)."""
    return writer_outcomes(
        styled.probe, styled.style, styled.first_word, styled.tagged_writer, text_baselines(probes)
    )


def writer_groups(styled: StyledOutcomes, probes: list[Probe], *, top: int = 10) -> WriterGroups:
    baselines = text_baselines(probes)
    baseline = {name: first_word(text or "") or "" for name, text in baselines.items()}
    writers = is_writer(styled, probes)
    candidates = writers & opens_anew(styled.probe, styled.first_word, baselines)
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
