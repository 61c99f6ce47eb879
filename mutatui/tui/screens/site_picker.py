"""A modal list of sites to choose one from: Enter dismisses with the chosen site's text,
Escape with None. `x` on a cell of several sites and `S` (super weights) are two of them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class SitePicker(ModalScreen[str | None]):
    """Subclasses name their dialog (`DIALOG_ID`, styled in app.tcss) and bind escape to
    `cancel` under a binding id of their own (the keys page lists each)."""

    DIALOG_ID = "site-picker"

    def __init__(self, title: str, choices: list[tuple[str, str]]) -> None:
        """`choices`: (label shown, site text) pairs, in the order shown."""
        super().__init__()
        self.title_text = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id=self.DIALOG_ID, classes="dialog"):
            yield Label(self.title_text)
            yield OptionList(
                *(Option(label, id=site) for label, site in self.choices),
                id=f"{self.DIALOG_ID}-list",
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
