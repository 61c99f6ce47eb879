"""Token-level reading of decoded text, without torch (the explorer imports it)."""

from __future__ import annotations

from collections.abc import Sequence


def token_spans(tokenizer: object, tokens: Sequence[int]) -> list[tuple[int, int]]:
    """Where each token lies in the decoded text (as `decoding.decode_tokens` decodes it): the
    characters its prefix adds, (start, end); an empty span for a token that adds none."""
    ends = [
        len(tokenizer.decode(list(tokens[: index + 1]), skip_special_tokens=True))
        for index in range(len(tokens))
    ]
    starts = [0, *ends[:-1]]
    return [(start, max(start, end)) for start, end in zip(starts, ends, strict=True)]
