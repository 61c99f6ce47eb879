"""`S`: the super-weight candidates of the database's newest run; choosing one jumps to it."""

from __future__ import annotations

from textual.binding import Binding

from mutatui.store.guided import SuperweightResult
from mutatui.tui.guided_data import describe_superweight
from mutatui.tui.screens.site_picker import SitePicker


class SuperweightScreen(SitePicker):
    """Lists candidates with their spike ratio and verification; dismisses with a site string."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="superweights.cancel")]
    DIALOG_ID = "superweights-dialog"

    def __init__(self, results: list[SuperweightResult]) -> None:
        super().__init__(
            "Super weights (newest run, strongest spike first): enter jumps",
            [(describe_superweight(r), r.site) for r in results],
        )
        self.results = results
