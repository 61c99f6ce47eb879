"""The valid forms of user input, quoted by one-line errors and by `--help`.

This module imports nothing heavy, so the CLI can build its help without loading torch.
"""

import math
import re

from mutatui.errors import MutatuiError

DROSOPHILA_PROMPT = "The life cycle of Drosophila:"
"""The paper's descriptive probe: the prompt every command defaults to."""

MODEL_FORMS = "smollm2, a model folder, a .gguf file, or a Hugging Face id in the local cache"
KIND_FORMS = "max, min, zero, or a number"

QUOTED_CHARACTERS = 60
"""An error line quotes at most this much of the input it refuses."""

LARGEST_SEED = 2**63 - 1
"""Seeds are 64-bit (torch's and numpy's generators)."""

INDEX_DIGITS = 9
"""Layer, row and column numbers have at most this many digits: no matrix is that large, and
a longer number would otherwise reach Python's limit on converting long digit strings."""


LARGEST_LAYER = 99_999
"""No model has this many layers: a layer range is checked against it before it is built."""

_WHOLE = re.compile(r"[0-9]+", re.ASCII)
_REAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_REAL_WORDS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"}


def is_whole(text: str) -> bool:
    """Whether `text` is a whole number in ASCII digits (spaces around it aside)."""
    return bool(_WHOLE.fullmatch(text.strip()))


def parse_whole(text: str, what: str, *, maximum: int, minimum: int = 0) -> int:
    """A whole number as a user means it: ASCII digits only (no sign, no underscores, no other
    script's digits, which Python's int() would take), between `minimum` and `maximum`, its
    size checked on the text before it is converted."""
    stripped = text.strip()
    if stripped.startswith("-") and _WHOLE.fullmatch(stripped[1:]):
        raise MutatuiError(f"{what} must be at least {minimum}, got {quoted(stripped)}")
    if not _WHOLE.fullmatch(stripped):
        raise MutatuiError(f"{what} must be a whole number in digits 0-9, got {quoted(text)}")
    digits = stripped.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise MutatuiError(f"{what} {quoted(stripped)} is too large; at most {maximum}")
    value = int(digits)
    if value < minimum:
        raise MutatuiError(f"{what} must be at least {minimum}, got {value}")
    return value


def is_real(text: str, *, words: bool = False) -> bool:
    """Whether `text` is written as a decimal number (or, with `words`, inf or nan)."""
    stripped = text.strip()
    return bool(_REAL.fullmatch(stripped)) or (words and stripped.lower() in _REAL_WORDS)


def parse_real(text: str, what: str, *, words: bool = False) -> float:
    """A decimal number as written (`1.5`, `-2e-3`), which a float holds as itself: one that
    overflows to infinity or underflows to zero is refused, not rounded there without a word.
    `words` admits `inf`, `-inf` and `nan`, written as such."""
    stripped = text.strip()
    if words and stripped.lower() in _REAL_WORDS:
        return float(stripped.lower())
    if not _REAL.fullmatch(stripped):
        valid = "a decimal number such as 0.5 or -1e4" + (", inf, -inf or nan" if words else "")
        raise MutatuiError(f"{what} must be {valid}, got {quoted(text)}")
    value = float(stripped)
    if math.isinf(value):
        raise MutatuiError(f"{what} {quoted(stripped)} is beyond a float's range (about 1.8e308)")
    mantissa = stripped.lower().split("e")[0]
    if value == 0.0 and any(digit in "123456789" for digit in mantissa):
        raise MutatuiError(f"{what} {quoted(stripped)} is too small for a float: it would read 0")
    return value


def quoted(text: str) -> str:
    """`text` as an error line quotes it: repr, cut in the middle when long."""
    if len(text) <= QUOTED_CHARACTERS:
        return repr(text)
    half = QUOTED_CHARACTERS // 2
    return f"{text[:half]!r}...{text[-half:]!r} ({len(text)} characters)"


SHOWN_PATH = 80
"""At most this many characters of a path in an error line."""


def shown(path: object) -> str:
    """A path for an error line, cut in the middle when long."""
    text = str(path)
    if len(text) <= SHOWN_PATH:
        return text
    half = SHOWN_PATH // 2 - 2
    return f"{text[:half]}...{text[-half:]}"


LINE_CHARACTERS = 400
"""An error line is cut to this length, whatever it quotes."""

_LONG_QUOTE = re.compile(rf"'([^'\n]{{{QUOTED_CHARACTERS + 1},}})'")


def brief(line: str) -> str:
    """An error line without the user's long input in it: long quoted texts shortened as
    `quoted` does, and anything still longer cut in the middle."""
    line = _LONG_QUOTE.sub(lambda match: quoted(match[1]), line)
    if len(line) <= LINE_CHARACTERS:
        return line
    half = LINE_CHARACTERS // 2 - 2
    return f"{line[:half]}...{line[-half:]}"


def byte_count(size: float) -> str:
    """A size on disk in decimal units, as `du --si` gives it (520.3 MB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
