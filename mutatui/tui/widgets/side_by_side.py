"""Baseline and mutant output side by side, the divergence highlighted in both."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static


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

    def __init__(self, baseline: str, mutant: str, *, changed: bool) -> None:
        super().__init__()
        self.baseline = baseline
        self.mutant = mutant
        self.changed = changed

    def compose(self) -> ComposeResult:
        split = common_prefix(self.baseline, self.mutant) if self.changed else len(self.baseline)
        yield Static(marked(self.baseline, split, "bold underline"), classes="pane baseline")
        yield Static(
            marked(self.mutant, split, "bold reverse")
            if self.changed
            else Text(self.mutant, "dim"),
            classes="pane mutant",
        )
