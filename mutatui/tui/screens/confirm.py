"""A yes/no question before something that cannot be undone (quitting with a model loaded)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label


class ConfirmScreen(ModalScreen[bool]):
    """`y` (or the key that asked, pressed again) answers yes; `n` or Esc, no."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, again: str | None = None) -> None:
        super().__init__()
        self.question = question
        if again is not None:
            self._bindings.bind(again, "answer(True)", show=False)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label(self.question)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
