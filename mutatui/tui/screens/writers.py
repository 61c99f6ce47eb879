"""Writers view: conversational and poetic mutations grouped by first word, rows shared across
matrices highlighted."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from mutatui.tui.widgets.key_bar import KeyBar
from mutatui.tui.writers_data import Writers, writer_groups


class WritersScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="writers.back"),
        Binding("enter", "open_site", "Open in grid", id="writers.open_site"),
        Binding("y", "copy_sites", "Copy sites", id="writers.copy"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.writers: Writers | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="writers-status", classes="status")
        yield DataTable(id="writers-table", cursor_type="row")
        with VerticalScroll(id="writers-sites-box"):
            yield Static("", id="writers-sites")
        yield KeyBar()

    def on_mount(self) -> None:
        self.stale = False
        self.app.data_changed.subscribe(self, self.data_changed)
        table = self.query_one(DataTable)
        table.add_columns("rank", "first word", "outputs", "mutations", "share", "styles")
        self.redraw()

    def data_changed(self, _data) -> None:
        if self.app.screen is self:
            self.redraw()
        else:
            self.stale = True

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.redraw()

    def on_unmount(self) -> None:
        self.app.data_changed.unsubscribe(self)

    def redraw(self) -> None:
        data, phenotypes = self.app.data, self.app.phenotypes
        if data is None or phenotypes is None:
            return
        self.writers = writers = writer_groups(data, phenotypes)
        table = self.query_one(DataTable)
        table.clear()
        for rank, group in enumerate(writers.groups, start=1):
            table.add_row(
                str(rank),
                group.word,
                str(group.results),
                str(len(group.sites)),
                f"{group.share:.2%}",
                "/".join(group.styles),
                key=group.word,
            )
        shared = len(writers.shared_rows)
        self.query_one("#writers-status", Static).update(
            f"[b]{len(writers.groups)}[/b] first words of conversational or poetic outputs, "
            f"most frequent first; share = of all changed outputs (rare is small); "
            f"[b]{shared}[/b] rows carry writers in several matrices (highlighted)"
            if writers.groups
            else "No conversational or poetic outputs in this screen (under this filter)."
        )
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        writers = self.writers
        if writers is None or not (0 <= event.cursor_row < len(writers.groups)):
            return
        group = writers.groups[event.cursor_row]
        lines = []
        for site in group.sites:
            shared = writers.shared_rows.get((site.row0, site.row1), set())
            text = escape(str(site))
            others = sorted(shared - {site.matrix_label})
            if others:
                lines.append(f"[b reverse]{text}[/b reverse]  row also in {', '.join(others)}")
            else:
                lines.append(text)
        self.query_one("#writers-sites", Static).update("\n".join(lines))

    def _selected_group(self):
        writers = self.writers
        row = self.query_one(DataTable).cursor_row
        if writers is None or not (0 <= row < len(writers.groups)):
            return None
        return writers.groups[row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_site()

    def action_open_site(self) -> None:
        from mutatui.tui.screens.matrix import MatrixScreen

        group = self._selected_group()
        if group is None or not group.sites:
            return
        site = group.sites[0]
        position = self.app.data.matrix_position(site.layer, site.matrix)
        screen = MatrixScreen(position, anchor=(site.row0, site.col0))
        self.app.push_screen(screen)

    def action_copy_sites(self) -> None:
        group = self._selected_group()
        if group is not None:
            self.app.copy_to_clipboard("\n".join(str(site) for site in group.sites))
            self.notify(f"copied {len(group.sites)} sites", timeout=1.5)
