"""The valid forms of user input, quoted by one-line errors and by `--help`.

This module imports nothing heavy, so the CLI can build its help without loading torch.
"""

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
