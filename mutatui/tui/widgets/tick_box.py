"""A checkbox that looks checked only when it is: Textual's compact checkbox draws its X
whether on or off and tells them apart by colour alone, which a monochrome or low-contrast
terminal loses."""

from __future__ import annotations

from textual.widgets import Checkbox


class TickBox(Checkbox):
    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 (Textual's name for the box's glyph)
        return "X" if self.value else " "

    def watch_value(self) -> None:
        super().watch_value()
        self.refresh()
