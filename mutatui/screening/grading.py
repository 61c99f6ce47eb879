"""Phenotype grading: what a mutation did to each probe, by simple rules docs/design/grading.md states.

Per text probe (`grade_text`): changed or not, where it diverged, normalized token edit
distance, sentence-embedding cosine (changed outputs only; computed by the caller in a batch
with `Embedder`, or here through `embedder=`), the text and its first word, degenerate flags
(empty, repetitive, garbage, nonfinite), a style label and a severity 0-3. Per choice probe
(`grade_choice`): score, delta to the baseline, destructive, severity. Per mutation
(`finalize`): the overall severity and the paper's malignant class; `result_rows` gives the
same as rows of the `results` table (text probes first, then the choice probe).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from mutatui.engine.compare import first_divergence
from mutatui.engine.questions import ChoiceQuestion
from mutatui.screening.choice import chance_score, score
from mutatui.screening.embedding import Embedder
from mutatui.screening.style import first_word, style_of

__all__ = [
    "ChoiceGrade",
    "Embedder",
    "TextGrade",
    "finalize",
    "grade_choice",
    "grade_text",
    "result_rows",
    "style_of",
]

NONE, MILD, MODERATE, SEVERE = 0, 1, 2, 3
SEVERITY_NAMES = ("none", "mild", "moderate", "severe")

MILD_COSINE = 0.8
"""A changed output at least this similar to the baseline is mild."""
MALIGNANT_COSINE = 0.5
"""At most this similar is severe (and, with a destroyed choice score, malignant)."""

LOOP_MAX_PERIOD = 16
LOOP_MIN_REPEATS = 3
LOOP_MIN_TOKENS = 12
GARBAGE_MIN_CHARS = 8
GARBAGE_MIN_LETTER_SHARE = 0.5
GARBAGE_MAX_REPLACEMENT_SHARE = 0.1
GARBAGE_MIN_SCRIPT_SHARE = 0.8
GARBAGE_MAX_WORD = 45
"""Letters in a row beyond this (the longest English word) are no word (`micmicmic...`, `ssssss...`)."""
LETTER_RUN = re.compile(r"[^\W\d_]+")
REPLACEMENT_CHAR = "\ufffd"


@dataclass(frozen=True)
class TextGrade:
    """One mutant continuation of one text probe, graded against the baseline's.

    `text`, `first_word`, `cosine` and `style` are None for an unchanged output.
    """

    changed: bool
    diverge_at: int | None
    edit_distance: float
    cosine: float | None
    text: str | None
    first_word: str | None
    empty: bool
    repetitive: bool
    garbage: bool
    nonfinite: bool
    style: str | None
    severity: int
    settled_naively: bool = False
    delta_nll: float | None = None  # effect sizes (`exact.effects`), when the screen records them
    kl_prefix: float | None = None
    kl_all: float | None = None
    diverge_margin: float | None = None

    @property
    def degenerate(self) -> bool:
        return self.empty or self.repetitive or self.garbage or self.nonfinite


@dataclass(frozen=True)
class ChoiceGrade:
    """A mutant's multiple-choice score against the unmutated model's."""

    score: int
    delta: int
    destructive: bool
    severity: int


def token_edit_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Levenshtein distance between token sequences over the longer length, in [0, 1]."""
    if not a and not b:
        return 0.0
    previous = list(range(len(b) + 1))
    for i, token_a in enumerate(a, start=1):
        current = [i]
        for j, token_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token_a != token_b))
            )
        previous = current
    return previous[-1] / max(len(a), len(b))


def is_repetitive(tokens: Sequence[int]) -> bool:
    """A repetition loop: the output ends in a block of 1 to `LOOP_MAX_PERIOD` tokens repeated
    back to back, at least `LOOP_MIN_REPEATS` times and over at least `LOOP_MIN_TOKENS` tokens."""
    count = len(tokens)
    for period in range(1, LOOP_MAX_PERIOD + 1):
        span = period
        while span < count and tokens[count - 1 - span] == tokens[count - 1 - span + period]:
            span += 1
        if span >= max(LOOP_MIN_REPEATS * period, LOOP_MIN_TOKENS):
            return True
    return False


def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def is_garbage(text: str) -> bool:
    """Non-text output, judged on its non-space characters (at least `GARBAGE_MIN_CHARS`):
    replacement characters (broken UTF-8) above 10%, letters below half, a run of more than 45
    letters (no word is that long), or letters of mixed scripts where no one script holds 80%."""
    chars = [ch for ch in text if not ch.isspace()]
    if len(chars) < GARBAGE_MIN_CHARS:
        return False
    if chars.count(REPLACEMENT_CHAR) > GARBAGE_MAX_REPLACEMENT_SHARE * len(chars):
        return True
    letters = [ch for ch in chars if ch.isalpha()]
    if len(letters) < GARBAGE_MIN_LETTER_SHARE * len(chars):
        return True
    if max(map(len, LETTER_RUN.findall(text)), default=0) > GARBAGE_MAX_WORD:
        return True
    scripts = Counter(_script(ch) for ch in letters)
    return scripts.most_common(1)[0][1] < GARBAGE_MIN_SCRIPT_SHARE * len(letters)


def text_severity(
    *, changed: bool, cosine: float | None, edit_distance: float, empty: bool,
    repetitive: bool, garbage: bool, nonfinite: bool,
) -> int:  # fmt: skip
    """0 unchanged; 3 empty, garbage, nonfinite or similarity <= 0.5; 2 repetitive or
    similarity below 0.8; else 1. Similarity is the cosine, or 1 - edit distance without one."""
    if not changed:
        return NONE
    similarity = cosine if cosine is not None else 1.0 - edit_distance
    if empty or garbage or nonfinite or similarity <= MALIGNANT_COSINE:
        return SEVERE
    if repetitive or similarity < MILD_COSINE:
        return MODERATE
    return MILD


def grade_text(
    baseline_tokens: Sequence[int],
    baseline_text: str,
    tokens: Sequence[int],
    text: str,
    *,
    stopped: bool,
    nonfinite: bool,
    cosine: float | None = None,
    embedder: Embedder | None = None,
    settled_naively: bool = False,
) -> TextGrade:
    """Grade one mutant continuation against the baseline's.

    `cosine` is the caller's batched `Embedder.cosines` value; without it, `embedder` (if
    given) computes it here, for a changed output only. `stopped` (EOS seen) is accepted for
    the record: a continuation that ended differs from the baseline in its tokens already.
    """
    del stopped
    diverge_at = first_divergence(baseline_tokens, tokens)
    changed = diverge_at is not None
    empty = not tokens or not text.strip()
    if not changed:
        # Identical tokens: the baseline's own text, nothing to grade but the nonfinite flag.
        return TextGrade(
            changed=False, diverge_at=None, edit_distance=0.0, cosine=None, text=None,
            first_word=None, empty=empty, repetitive=False, garbage=False,
            nonfinite=nonfinite, style=None, severity=NONE, settled_naively=settled_naively,
        )  # fmt: skip
    if cosine is None and embedder is not None:
        cosine = embedder.cosines(baseline_text, [text])[0]
    edit_distance = token_edit_distance(baseline_tokens, tokens)
    repetitive = is_repetitive(tokens)
    garbage = not empty and is_garbage(text)
    severity = text_severity(
        changed=True, cosine=cosine, edit_distance=edit_distance, empty=empty,
        repetitive=repetitive, garbage=garbage, nonfinite=nonfinite,
    )  # fmt: skip
    return TextGrade(
        changed=True,
        diverge_at=diverge_at,
        edit_distance=edit_distance,
        cosine=cosine,
        text=text,
        first_word=first_word(text),
        empty=empty,
        repetitive=repetitive,
        garbage=garbage,
        nonfinite=nonfinite,
        style=style_of(text, empty=empty, repetitive=repetitive, garbage=garbage),
        severity=severity,
        settled_naively=settled_naively,
    )


def is_destructive(baseline_score: int, mutant_score: int, chance: float) -> bool:
    """The choice score is destroyed: it fell (below the baseline's) to chance level or below,
    or to half the baseline's score or below (lost at least half its right answers)."""
    return mutant_score < baseline_score and (
        mutant_score <= chance or mutant_score <= baseline_score / 2
    )


def grade_choice(
    baseline_answers: Sequence[int],
    answers: Sequence[int],
    questions: Sequence[ChoiceQuestion],
) -> ChoiceGrade:
    """Score and delta; severity 3 destructive, 2 three or more right answers lost, 1 one or
    two lost, 0 none lost (changed answers that keep the score are no choice phenotype)."""
    baseline_score = score(questions, baseline_answers)
    mutant_score = score(questions, answers)
    delta = mutant_score - baseline_score
    destructive = is_destructive(baseline_score, mutant_score, chance_score(questions))
    return ChoiceGrade(mutant_score, delta, destructive, choice_severity(delta, destructive))


def choice_severity(delta: int, destructive: bool) -> int:
    """3 destructive, 2 three or more right answers lost, 1 one or two lost, else 0."""
    if destructive:
        return SEVERE
    if delta <= -3:
        return MODERATE
    if delta < 0:
        return MILD
    return NONE


def _semantically_lost(grade: TextGrade) -> bool:
    return grade.changed and (
        grade.empty or (grade.cosine is not None and grade.cosine <= MALIGNANT_COSINE)
    )


def finalize(text_grades: Sequence[TextGrade], choice: ChoiceGrade | None) -> tuple[int, bool]:
    """The mutation's severity (the worst of its probes) and whether it is malignant: some text
    probe at cosine <= 0.5 (or emptied) and a destroyed choice score."""
    severity = max([g.severity for g in text_grades] + [choice.severity if choice else NONE])
    malignant = (
        choice is not None and choice.destructive and any(map(_semantically_lost, text_grades))
    )
    return severity, malignant


def result_rows(
    text_grades: Sequence[TextGrade], choice: ChoiceGrade | None
) -> list[dict[str, object]]:
    """One `results` row per probe: the text probes in order, then the choice probe (if graded).

    Each row holds its own probe's severity; `malignant` is the mutation's, on every row.
    """
    _, malignant = finalize(text_grades, choice)
    rows: list[dict[str, object]] = [{**asdict(g), "malignant": malignant} for g in text_grades]
    if choice is not None:
        rows.append(
            {
                "changed": choice.delta != 0,
                "choice_score": choice.score,
                "choice_delta": choice.delta,
                "destructive": choice.destructive,
                "severity": choice.severity,
                "malignant": malignant,
            }
        )
    return rows
