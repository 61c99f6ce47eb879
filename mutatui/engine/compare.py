"""Comparing a mutant's continuation with the baseline's, token by token."""

from __future__ import annotations

from collections.abc import Sequence


def first_divergence(baseline: Sequence[int], mutant: Sequence[int]) -> int | None:
    """Index of the first token where the two continuations differ, or None if identical.

    A continuation that stops early diverges where the other one goes on.
    """
    for index, (a, b) in enumerate(zip(baseline, mutant, strict=False)):
        if a != b:
            return index
    if len(baseline) != len(mutant):
        return min(len(baseline), len(mutant))
    return None
