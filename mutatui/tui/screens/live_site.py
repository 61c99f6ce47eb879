"""`x` on a grid cell that holds several sites: which one to run live."""

from __future__ import annotations

from textual.binding import Binding

from mutatui.tui.screens.site_picker import SitePicker


class LiveSiteScreen(SitePicker):
    """Lists the cell's choices (`grid_data.live_choices`); dismisses with a site string."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="live_site.cancel")]
    DIALOG_ID = "live-site-dialog"

    def __init__(self, choices: list[tuple[str, str]]) -> None:
        super().__init__(
            "This cell holds several sites: which one runs live? (Enter runs it)", choices
        )
