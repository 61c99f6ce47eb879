"""`g`: jump to a site typed as text, e.g. L29.down[12,345]."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from mutatui.engine.sites import SITE_FORMS, Site
from mutatui.errors import MutatuiError


class GotoScreen(ModalScreen[Site | None]):
    """Asks for a site; `check` parses and validates it (raising MutatuiError) so a bad site
    is explained in the dialog, which stays open."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="goto.cancel")]

    def __init__(self, check: Callable[[str], Site], example: str) -> None:
        super().__init__()
        self.check = check
        self.example = example

    def compose(self) -> ComposeResult:
        with Vertical(id="goto-dialog", classes="dialog"):
            yield Label(f"Go to site ({SITE_FORMS})")
            yield Input(placeholder=self.example, id="goto-input", compact=True)
            yield Label("", id="goto-error", classes="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            site = self.check(event.value)
        except MutatuiError as error:
            self.query_one("#goto-error", Label).update(Text(str(error)))
            return
        self.dismiss(site)

    def action_cancel(self) -> None:
        self.dismiss(None)
