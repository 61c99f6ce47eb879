"""`x` on a grid cell that holds several sites: which one to run live."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class LiveSiteScreen(ModalScreen[str | None]):
    """Lists the cell's choices (`grid_data.live_choices`); dismisses with a site string."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="live_site.cancel")]

    def __init__(self, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="live-site-dialog", classes="dialog"):
            yield Label("This cell holds several sites: which one runs live? (Enter runs it)")
            yield OptionList(
                *(Option(label, id=site) for label, site in self.choices), id="live-site-list"
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
