"""`S`: the super-weight candidates of the database's newest run; choosing one jumps to it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from mutatui.store.guided import SuperweightResult
from mutatui.tui.guided_data import describe_superweight


class SuperweightScreen(ModalScreen[str | None]):
    """Lists candidates with their spike ratio and verification; dismisses with a site string."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="superweights.cancel")]

    def __init__(self, results: list[SuperweightResult]) -> None:
        super().__init__()
        self.results = results

    def compose(self) -> ComposeResult:
        with Vertical(id="superweights-dialog", classes="dialog"):
            yield Label("Super weights (newest run, strongest spike first): enter jumps")
            yield OptionList(
                *(Option(describe_superweight(r), id=r.site) for r in self.results),
                id="superweights-list",
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
