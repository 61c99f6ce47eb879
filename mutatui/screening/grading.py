"""Phenotype grading: what a mutation did to each probe, by simple rules the README states.

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
import statistics
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from mutatui.engine.compare import first_divergence
from mutatui.screening.choice import ChoiceQuestion, chance_score, score
from mutatui.screening.embedding import Embedder

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

STYLES = ("descriptive", "conversational", "poetic", "other")


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


def first_word(text: str) -> str | None:
    """The first whitespace-separated word holding a letter or digit, lowercased, with the
    punctuation around it stripped (`"**Hello,"` -> `hello`)."""
    for chunk in text.split():
        word = "".join(ch for ch in chunk if ch.isalnum() or ch in "'-")
        word = word.strip("'-").lower()
        if word:
            return word
    return None


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


WORD = re.compile(r"[a-z']+")
SECOND_PERSON = frozenset({"you", "your", "you're", "yours", "yourself", "you'll", "you've"})
FIRST_PERSON = frozenset({"i", "i'm", "i've", "i'd", "i'll", "me", "my", "mine", "we", "let's"})
GREETINGS = frozenset(
    {"hi", "hello", "hey", "sure", "absolutely", "oh", "wow", "well", "yes", "okay", "ok", "ah"}
)
FIGURATIVE = frozenset(
    {
        "like", "whisper", "whispers", "dance", "dances", "dancing", "soul", "heart", "dream",
        "dreams", "gentle", "golden", "embrace", "sings", "song", "glow", "glows", "tender",
        "eternal", "beneath", "o", "thee", "thy", "doth", "ode", "verse", "yonder", "sway",
        "breeze", "shimmer", "shimmering", "softly", "serene", "twilight", "hues",
    }
)  # fmt: skip
LIST_ITEM = re.compile(r"^(\d+[.)]|[-*•])\s")
POETIC_MIN_LINES = 3
POETIC_MIN_MEAN_WORDS = 3
"""Fewer words a line on average are fragments (`to`, `,`, `The`), not verse."""
POETIC_MAX_WORDS_PER_LINE = 10
POETIC_MAX_LENGTH_SPREAD = 0.35
LOOPING_MIN_WORDS = 12
LOOPING_MAX_DISTINCT_SHARE = 0.35
"""Text that says the same few words over and over has no style, whatever its line breaks."""


def _looping(lines: Sequence[str], words: Sequence[str]) -> bool:
    """A near-loop that `is_repetitive` (an exactly periodic tail of tokens) lets through: of 3
    or more lines, half or more repeat an earlier line (case and spacing aside); or at least
    `LOOPING_MIN_WORDS` words of which under `LOOPING_MAX_DISTINCT_SHARE` are distinct."""
    keys = [" ".join(line.lower().split()) for line in lines]
    repeats = len(keys) - len(set(keys))
    if len(keys) >= POETIC_MIN_LINES and repeats * 2 >= len(keys):
        return True
    distinct = len(set(words))
    return len(words) >= LOOPING_MIN_WORDS and distinct < LOOPING_MAX_DISTINCT_SHARE * len(words)


def _rhymes(lines: Sequence[str]) -> int:
    """Line pairs (consecutive or alternate) whose last words share their last two letters."""
    ends = [WORD.findall(line.lower())[-1:] for line in lines]
    finals = [end[0] if end else "" for end in ends]
    pairs = 0
    for gap in (1, 2):
        for a, b in zip(finals, finals[gap:], strict=False):
            pairs += len(a) >= 2 and len(b) >= 2 and a != b and a[-2:] == b[-2:]
    return pairs


def style_label(text: str) -> str:
    """descriptive / conversational / poetic / other, by counting cues (README rules).

    A near-loop (`_looping`) is other. Poetic cues: at least 3 short lines (at most 10 words
    each, at least 3 on average; not a list, where half the lines or more start with `1.`,
    `1)`, `-`, `*` or `•`); regular line lengths (word counts' spread at most 35% of their
    mean); a rhyme; two or more figurative words. Two poetic cues make it poetic.
    Conversational cues: second person (you, your); first person (I, me, we, let's); a greeting
    or interjection as the first word; an exclamation mark; a question mark. Two conversational
    cues make it conversational. Otherwise prose of at least 5 words is descriptive, and
    anything else (shorter, code-like) is other.
    """
    words = WORD.findall(text.lower())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if _looping(lines, words):
        return "other"
    line_words = [len(line.split()) for line in lines]
    listed = sum(bool(LIST_ITEM.match(line)) for line in lines) * 2 >= max(len(lines), 1)
    short_lines = (
        len(lines) >= POETIC_MIN_LINES
        and not listed
        and max(line_words) <= POETIC_MAX_WORDS_PER_LINE
        and statistics.mean(line_words) >= POETIC_MIN_MEAN_WORDS
    )
    regular = short_lines and statistics.pstdev(
        line_words
    ) <= POETIC_MAX_LENGTH_SPREAD * statistics.mean(line_words)
    poetic = (
        short_lines + regular + (_rhymes(lines) >= 1) + (sum(w in FIGURATIVE for w in words) >= 2)
    )
    if poetic >= 2:
        return "poetic"
    conversational = (
        any(w in SECOND_PERSON for w in words)
        + any(w in FIRST_PERSON for w in words)
        + (first_word(text) in GREETINGS)
        + ("!" in text)
        + ("?" in text)
    )
    if conversational >= 2:
        return "conversational"
    code_like = sum(text.count(ch) for ch in "{}();=<>[]`") > 0.05 * max(len(text), 1)
    if len(words) >= 5 and not code_like:
        return "descriptive"
    return "other"


def style_of(text: str, *, empty: bool, repetitive: bool, garbage: bool) -> str:
    """The stored style of a changed output: `other` when it is degenerate (empty, repetitive
    or garbage), else `style_label`. Text and flags are both stored, so `mutatui restyle` can
    relabel a database when these rules change."""
    return "other" if empty or repetitive or garbage else style_label(text)


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
    if destructive:
        severity = SEVERE
    elif delta <= -3:
        severity = MODERATE
    elif delta < 0:
        severity = MILD
    else:
        severity = NONE
    return ChoiceGrade(mutant_score, delta, destructive, severity)


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
