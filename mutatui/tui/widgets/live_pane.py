"""One pane of live mode: a continuation streaming in, the part after the divergence marked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from mutatui.live.session import PaneText

DIVERGENCE_MARK = "▶"
END_MARK = "⟨end⟩"


class LivePane(VerticalScroll, can_focus=True):
    """Shows a `PaneText`; the text from the first diverging token on takes the pane's accent.

    Focusable, so that `Tab` leaves the form's boxes for the panes, where letters are the
    screen's keys again (and the arrows scroll), rather than cycling through the boxes alone."""

    COMPONENT_CLASSES = {"live-pane--diverged", "live-pane--mark", "live-pane--end"}

    DEFAULT_CSS = """
    LivePane {
        width: 1fr;
        height: 1fr;
        border: round $primary;
        border-title-align: left;
        padding: 0 1;
    }
    LivePane.-diverged { border: round $warning; }
    LivePane > .live-pane--mark { color: $warning; text-style: bold; }
    LivePane > .live-pane--end { color: $text-muted; text-style: italic; }
    LivePane.baseline > .live-pane--diverged { color: $success; text-style: bold; }
    LivePane.mutant > .live-pane--diverged { color: $error; text-style: bold; }
    LivePane > #live-pane-text { width: 1fr; }
    """

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = title
        self.plain = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="live-pane-text", markup=False)

    def clear(self) -> None:
        self.plain = ""
        self.remove_class("-diverged")
        self.query_one("#live-pane-text", Static).update("")

    def show(self, pane: PaneText, diverged: bool) -> None:
        """Replace the shown text; keep the view at the end while tokens stream in."""
        text = Text(pane.same)
        if diverged:
            text.append(DIVERGENCE_MARK, style=self.get_component_rich_style("live-pane--mark"))
            text.append(pane.diverged, style=self.get_component_rich_style("live-pane--diverged"))
        if pane.stopped:
            text.append(f" {END_MARK}", style=self.get_component_rich_style("live-pane--end"))
        self.plain = text.plain
        self.set_class(diverged, "-diverged")
        self.query_one("#live-pane-text", Static).update(text)
        self.scroll_end(animate=False)
