"""Baseline and mutant output side by side, the divergence highlighted in both, and the
baseline's fragile steps (where the unmutated model's own margin is small) marked."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

FRAGILE_STYLE = "black on yellow"
"""How a fragile token of the baseline is drawn."""


def common_prefix(a: str, b: str) -> int:
    """Characters shared at the start of both texts."""
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def marked(text: str, start: int, style: str) -> Text:
    result = Text(text)
    if start < len(text):
        result.stylize(style, start)
    return result


class SideBySide(Horizontal):
    """Two panes: a probe's baseline on the left, the mutant's text on the right."""

    DEFAULT_CLASSES = "side-by-side"

    def __init__(
        self,
        baseline: str,
        mutant: str,
        *,
        changed: bool,
        fragile: Sequence[tuple[int, int]] = (),
    ) -> None:
        """`fragile`: character spans of the baseline's fragile tokens."""
        super().__init__()
        self.baseline = baseline
        self.mutant = mutant
        self.changed = changed
        self.fragile = fragile

    def compose(self) -> ComposeResult:
        split = common_prefix(self.baseline, self.mutant) if self.changed else len(self.baseline)
        baseline = marked(self.baseline, split, "bold underline")
        for start, end in self.fragile:
            baseline.stylize(FRAGILE_STYLE, start, end)
        yield Static(baseline, classes="pane baseline")
        yield Static(
            marked(self.mutant, split, "bold reverse")
            if self.changed
            else Text(self.mutant, "dim"),
            classes="pane mutant",
        )
