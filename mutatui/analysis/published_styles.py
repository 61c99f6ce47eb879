"""mutatui's style grader against the authors' own labels of Zephyr's writer outputs.

Table 3 gives a few outputs of each writer mutation on four prompts, with the authors' label of
each as the cell's fill: poem, dialogue, first-person narrative or other. Document 2B gives
twelve writers' outputs on 151 inputs (2A the standard model's), unlabelled. The grader
(`screening.style.style_label`) names descriptive, conversational, poetic or other; a poem is
its poetic, a dialogue its conversational, and a writer is either of those two in mutatui as
any coloured cell is in the paper. First-word groups: each writer's most frequent first word
over its Document 2B outputs, against the RIHF ("staring", "otta", "tugging") Table 3 names.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from mutatui.errors import MutatuiError
from mutatui.screening.style import WRITER_STYLES, first_word, style_label
from mutatui.store.published import PublishedOutput, published_outputs, published_writers

AUTHORS_LABELS = ("poem", "dialogue", "narrative", "other")
OUR_STYLES = ("poetic", "conversational", "descriptive", "other")
COUNTERPART = {"poem": "poetic", "dialogue": "conversational"}
"""The authors' labels that have a style of mutatui's as their counterpart."""
STANDARD = "standard"


@dataclass
class StyleAgreement:
    """The grader against the authors' labels of Table 3's outputs."""

    confusion: dict[str, dict[str, int]]
    """authors' label -> mutatui's style -> outputs."""
    matched: int
    """Poems graded poetic and dialogues conversational."""
    comparable: int
    """Outputs labelled poem or dialogue."""
    writer_agreed: int
    """Outputs where both say writer (a coloured cell; poetic or conversational) or both not."""
    outputs: int


@dataclass
class WriterWords:
    """One Document 2B writer's first words."""

    writer: str
    outputs: int
    word: str | None
    """Its most frequent first word."""
    share: float
    published: str | None
    """The RIHF Table 3 gives for the same mutation, if it does."""
    styles: dict[str, int]
    """mutatui's styles of its outputs."""


@dataclass
class PublishedStyles:
    screen: str
    agreement: StyleAgreement
    writers: list[WriterWords]
    """The standard model (Document 2A) first, then the writers of Document 2B."""
    groups: dict[str, list[str]]
    """Our first-word groups: most frequent first word -> writers."""
    published_groups: dict[str, list[str]]
    """The paper's: Table 3's RIHF -> its writers (Table 3's letter, and the writer's name in
    Document 2B where it is there too)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _agreement(outputs: list[PublishedOutput]) -> StyleAgreement:
    confusion = {label: dict.fromkeys(OUR_STYLES, 0) for label in AUTHORS_LABELS}
    matched = comparable = writer_agreed = 0
    for output in outputs:
        label = output.style or "other"
        ours = style_label(output.text or "")
        confusion.setdefault(label, dict.fromkeys(OUR_STYLES, 0))[ours] += 1
        comparable += label in COUNTERPART
        matched += COUNTERPART.get(label) == ours
        writer_agreed += (label != "other") == (ours in WRITER_STYLES)
    return StyleAgreement(confusion, matched, comparable, writer_agreed, len(outputs))


def _words(writer: str, outputs: list[PublishedOutput], rihf: str | None) -> WriterWords:
    words = Counter(output.first_word for output in outputs if output.first_word)
    word, count = words.most_common(1)[0] if words else (None, 0)
    styles = Counter(style_label(output.text or "") for output in outputs)
    return WriterWords(
        writer,
        len(outputs),
        word,
        count / len(outputs) if outputs else 0.0,
        rihf,
        {style: styles.get(style, 0) for style in OUR_STYLES},
    )


def grade_published_styles(path: str | Path, screen_id: int, screen: str) -> PublishedStyles:
    """Grade Table 3's and Documents 2A/2B's outputs; the screen must hold their texts."""
    outputs = published_outputs(path, screen_id)
    if not outputs:
        raise MutatuiError(f"{screen!r} holds no published outputs to grade (only Zephyr has)")
    if all(output.text is None for output in outputs):
        raise MutatuiError(
            f"{screen!r} was imported without its texts (--no-texts, as the bundled screens.db "
            "is): import the files of the paper again without it to grade them"
        )
    writers = published_writers(path, screen_id)
    rihf_of = {
        w.mutation_id: first_word(w.rihf) for w in writers if w.source == "table3" and w.rihf
    }
    mutation_of = {(w.writer, w.source): w.mutation_id for w in writers}
    labelled = [o for o in outputs if o.source == "table3" and o.text is not None]
    by_writer: dict[tuple[str, str], list[PublishedOutput]] = defaultdict(list)
    for output in outputs:
        if output.source != "table3" and output.text is not None:
            by_writer[(output.writer, output.source)].append(output)
    found = []
    for (writer, source), own in sorted(by_writer.items(), key=lambda item: item[0][1]):
        name = STANDARD if source == "document2a" else writer
        found.append(_words(name, own, rihf_of.get(mutation_of.get((writer, source)))))
    groups: dict[str, list[str]] = defaultdict(list)
    for words in found:
        if words.writer != STANDARD and words.word:
            groups[words.word].append(words.writer)
    in_document = {
        w.mutation_id: w.writer
        for w in writers
        if w.source == "document2b" and w.mutation_id is not None
    }
    published: dict[str, list[str]] = defaultdict(list)
    for writer in writers:
        if writer.source == "table3" and writer.rihf:
            also = in_document.get(writer.mutation_id)
            name = f"{writer.writer} ({also})" if also else writer.writer
            published[first_word(writer.rihf) or writer.rihf].append(name)
    return PublishedStyles(screen, _agreement(labelled), found, dict(groups), dict(published))
