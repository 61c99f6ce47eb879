"""The first screen: every screen in the database with its model, size, rate and status."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from mutatui.store.catalog import ScreenSummary, list_screens
from mutatui.tui.widgets.key_bar import KeyBar

COLUMNS = (
    "screen",
    "status",
    "mutations",
    "phenotypes",
    "rate",
    "prompts",
    "model",
    "kind",
    "computed in",
    "noise floor",
    "ran on",
)


TITLE = "Screens (Enter opens one)"
NO_SCREENS = "This database holds no screens yet (run `mutatui screen`; ^r reads it again)."


class ScreenListScreen(Screen):
    BINDINGS = [
        # priority: the key bar shows Open whether or not the table has focus yet
        Binding("enter", "open", "Open", id="screens.open", priority=True),
        Binding("ctrl+r", "reload", "Reload", id="screens.reload"),
        Binding("c", "compare", "Compare", id="screens.compare"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[ScreenSummary] = []
        self.sources: list[Path] = []
        """The file each summary's screen is in (the opened one, or its side live database)."""
        self.marked: tuple[Path, int, str] | None = None
        """The screen `c` marked to compare with the next one chosen (source, id, name)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(TITLE, id="screen-list-title", classes="title")
        yield DataTable(id="screen-table", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.loading = True
        self.load()
        self.set_interval(self.app.poll_seconds, self._refresh_unfinished)

    def _refresh_unfinished(self) -> None:
        """While a screen is not complete (it may be running), read the list again, as the
        grid does, so its progress and status move."""
        if self.is_current and any(summary.state != "complete" for summary in self.summaries):
            self.load()

    def action_reload(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        """Back from a view: a live run may have made a live screen meanwhile."""
        self.load()

    @work(thread=True, exclusive=True, group="screens", exit_on_error=False)
    def load(self) -> None:
        listed = [
            (source, summary)
            for source in self.app.screen_sources()
            for summary in list_screens(source)
        ]
        self.app.call_from_thread(self._show, listed)

    def _show(self, listed: list[tuple[Path, ScreenSummary]]) -> None:
        self.sources = [source for source, _ in listed]
        self.summaries = summaries = [summary for _, summary in listed]
        table = self.query_one(DataTable)
        table.loading = False
        row = table.cursor_row
        table.clear()
        for source, summary in listed:
            planned = summary.planned or summary.mutations
            done = (
                f"{summary.mutations:,}"
                if summary.mutations >= planned
                else f"{summary.mutations:,}/{planned:,}"
            )
            table.add_row(
                Text(summary.name),
                summary.state,
                done,
                f"{summary.phenotypes:,}",
                f"{summary.phenotype_rate:.1%}",
                str(summary.probes),
                Text(summary.model),
                summary.kind if source == self.app.db_path else f"{summary.kind} (side)",
                Text(summary.numbers or "not recorded", style="" if summary.numbers else "dim"),
                Text(summary.noise or "-", style="" if summary.noise else "dim"),
                Text(summary.machine or "not recorded", style="" if summary.machine else "dim"),
                key=f"{source}:{summary.screen_id}",
            )
        if summaries:
            table.move_cursor(row=min(row, len(summaries) - 1))
        self.query_one("#screen-list-title", Static).update(TITLE if summaries else NO_SCREENS)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.summaries and 0 <= table.cursor_row < len(self.summaries):
            row = table.cursor_row
            self.app.open_screen(self.summaries[row].screen_id, self.sources[row])

    def action_compare(self) -> None:
        """The first `c` marks the screen under the cursor, the second opens both side by
        side (on the same screen: the mark is lifted)."""
        table = self.query_one(DataTable)
        if not self.summaries or not 0 <= table.cursor_row < len(self.summaries):
            return
        summary, source = self.summaries[table.cursor_row], self.sources[table.cursor_row]
        chosen = (source, summary.screen_id, summary.name)
        if self.marked is None:
            self.marked = chosen
            self.notify(f"{summary.name} marked: press c on another screen to compare them")
        elif self.marked[:2] == chosen[:2]:
            self.marked = None
            self.notify(f"{summary.name} no longer marked")
        else:
            left, self.marked = self.marked, None
            self.app.open_compare(left[:2], chosen[:2])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()
