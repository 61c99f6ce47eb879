"""Writer mutations: descriptive answers turned conversational or poetic, grouped by first word.

The paper grouped its writer mutations by the first word of the mutant's output and looked at
the rare initial words of highest frequency: words the unmutated model does not start with, but
that many mutants do. A writer here is a changed outcome graded conversational or poetic, or a
mutation a user tagged `writer` in the explorer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mutatui.analysis.stats import WRITER_STYLES
from mutatui.store.frames import Probe, SiteFrame, StyledOutcomes

_WORD = re.compile(r"[\w']+")


def first_word(text: str | None) -> str:
    """The first word of a text, lower-cased ('' when there is none)."""
    match = _WORD.search(text or "")
    return match.group(0).lower() if match else ""


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


def is_writer(styled: StyledOutcomes) -> np.ndarray:
    return np.isin(styled.style, WRITER_STYLES) | styled.tagged_writer


def writer_groups(styled: StyledOutcomes, probes: list[Probe], *, top: int = 10) -> WriterGroups:
    baseline = {
        probe.name: first_word(probe.baseline_text) for probe in probes if probe.kind == "text"
    }
    writers = is_writer(styled)
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
    return np.isin(frame.mutation_id, styled.mutation_id[is_writer(styled)])
