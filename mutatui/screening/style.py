"""Output style: the axis of the paper's "writer" mutations, by counting cues (docs/design/grading.md).

Hu et al. found mutations that turned descriptive answers into poetic or conversational ones.
`style_label` names the style of one output (descriptive, conversational, poetic, other) from
its text alone; `writer_styles` says which styles count as writing for a probe, given the style
of the unmutated model's own answer: a style the answer already has is no change of style.
`writer_outcomes` is the one definition of a writer outcome, which the analysis and the
explorer's writers view both apply. The rules are plain Python and numpy, so both use them
without loading the engine.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

WRITER_STYLES = ("conversational", "poetic")


def first_word(text: str) -> str | None:
    """The first whitespace-separated word holding a letter or digit, lowercased, with the
    punctuation around it stripped (`"**Hello,"` -> `hello`)."""
    for chunk in text.split():
        word = "".join(ch for ch in chunk if ch.isalnum() or ch in "'-")
        word = word.strip("'-").lower()
        if word:
            return word
    return None


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
    """descriptive / conversational / poetic / other, by counting cues (docs/design/grading.md).

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


def writer_styles(baseline_text: str | None) -> tuple[str, ...]:
    """The styles that make a changed output of a probe a writer outcome: conversational or
    poetic, but not the style of the probe's own baseline answer (an email that stays
    conversational was not turned into anything; only one turned poetic was)."""
    baseline = style_label(baseline_text) if baseline_text else None
    return tuple(style for style in WRITER_STYLES if style != baseline)


def opens_anew(
    probe: np.ndarray, word: np.ndarray, baselines: Mapping[Hashable, str | None]
) -> np.ndarray:
    """Per changed outcome (its probe's key and first word, '' for none): whether it opens with
    a word its probe's baseline answer does not open with. A first-word group is such a word:
    a mutant that starts as the unmutated model does ("Drosophila ...") wrote nothing new,
    whatever its style."""
    opening = np.zeros(len(word), dtype=bool)
    for key, baseline in baselines.items():
        own = first_word(baseline or "") or ""
        opening |= (probe == key) & (word != "") & (word != own)
    return opening


def writer_outcomes(
    probe: np.ndarray,
    style: np.ndarray,
    word: np.ndarray,
    tagged: np.ndarray,
    baselines: Mapping[Hashable, str | None],
) -> np.ndarray:
    """Per changed outcome (parallel arrays: its probe's key, style, first word and whether a
    user tagged its mutation `writer`): whether it is a writer outcome. It is one of a text
    probe (a key of `baselines`, which maps each to its baseline answer) and either was tagged
    `writer`, or took a writer style its probe's baseline lacks (`writer_styles`) and opens
    anew (`opens_anew`)."""
    text = np.isin(probe, list(baselines))
    styled = np.zeros(len(style), dtype=bool)
    for key, baseline in baselines.items():
        styled |= (probe == key) & np.isin(style, writer_styles(baseline))
    return text & (tagged | (styled & opens_anew(probe, word, baselines)))
