"""The valid forms of user input, quoted by one-line errors and by `--help`.

This module imports nothing heavy, so the CLI can build its help without loading torch.
"""

import re

MODEL_FORMS = "smollm2, a model folder, a .gguf file, or a Hugging Face id in the local cache"
KIND_FORMS = "max, min, zero, or a number"

QUOTED_CHARACTERS = 60
"""An error line quotes at most this much of the input it refuses."""

LARGEST_SEED = 2**63 - 1
"""Seeds are 64-bit (torch's and numpy's generators)."""

INDEX_DIGITS = 9
"""Layer, row and column numbers have at most this many digits: no matrix is that large, and
a longer number would otherwise reach Python's limit on converting long digit strings."""


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
