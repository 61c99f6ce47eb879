"""Writers view: conversational and poetic mutations grouped by first word, rows shared across
matrices highlighted, and the sites of the selected word listed for triage.

Above, the words; below, the selected word's sites with their first words, kind, probe, the
unmutated model's margin where the output diverged, and tags. Enter on a word goes down to its
sites; on a site, `t` tags it and moves to the next, `y` copies it, `x` runs it live, Enter
opens the grid there. `h` hides the writers that diverged at a near tie (a margin under
`ROBUST_MARGIN` logits, where any small change could have turned the token).
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from mutatui.engine.sites import Site
from mutatui.store import queries
from mutatui.store.effects import ROBUST_MARGIN
from mutatui.tui.grid_data import Filter
from mutatui.tui.widgets.key_bar import KeyBar
from mutatui.tui.writers_data import WriterGroup, Writers, WriterSite, writer_groups

SITE_COLUMNS = ("site", "kind", "probe", "margin", "first words", "tags", "row shared with")


class WritersScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="writers.back"),
        Binding("enter", "open_site", "Sites / grid", id="writers.open_site"),
        Binding("t", "tag", "Tag, next", id="writers.tag"),
        Binding("y", "copy_sites", "Copy", id="writers.copy"),
        Binding("h", "near_ties", "Near ties", id="writers.near_ties"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.writers: Writers | None = None
        self.group: WriterGroup | None = None
        self.near_ties = True
        """Whether writers that diverged at a near tie are listed (`h` hides them)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="writers-status", classes="status")
        yield DataTable(id="writers-table", cursor_type="row")
        yield DataTable(id="writers-sites", cursor_type="row")
        yield KeyBar()

    def on_mount(self) -> None:
        self.stale = False
        self.app.data_changed.subscribe(self, self.data_changed)
        words = self.query_one("#writers-table", DataTable)
        words.add_columns("rank", "first word", "outputs", "mutations", "share", "styles")
        self.query_one("#writers-sites", DataTable).add_columns(*SITE_COLUMNS)
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
        self.writers = writers = writer_groups(data, phenotypes, near_ties=self.near_ties)
        table = self.query_one("#writers-table", DataTable)
        row = table.cursor_row
        if self.group is None:  # opened again: on the word selected last time
            words = [group.word for group in writers.groups]
            row = words.index(self.app.writer_word) if self.app.writer_word in words else 0
        table.clear()
        for rank, group in enumerate(writers.groups, start=1):
            table.add_row(
                str(rank),
                group.word,
                str(group.results),
                str(len(group.entries)),
                f"{group.share:.2%}",
                "/".join(group.styles),
                key=group.word,
            )
        shared = len(writers.shared_rows)
        ties = (
            f"near ties, margin < {ROBUST_MARGIN:g}, hidden"
            if not self.near_ties
            else "h hides near ties"
            if data.phenotype_margin is not None
            else "no margins recorded"
        )
        self.query_one("#writers-status", Static).update(
            f"[b]{len(writers.groups)}[/b] writer first words ({ties}), most frequent first; "
            f"share = of all changed outputs (rare is small); [b]{shared}[/b] rows carry "
            "writers in several matrices (highlighted); a writer turned a descriptive answer "
            "conversational or poetic and does not open as the baseline does"
            if writers.groups
            else f"No writers in this screen (under this filter); {ties}."
        )
        if writers.groups:
            table.move_cursor(row=min(row, len(writers.groups) - 1))
            self.show_group(writers.groups[table.cursor_row])
        else:
            self.group = None
            self.query_one("#writers-sites", DataTable).clear()
        if not isinstance(self.focused, DataTable):
            table.focus()

    # --- the selected word's sites ---------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        writers = self.writers
        if event.data_table.id != "writers-table" or writers is None:
            return
        if 0 <= event.cursor_row < len(writers.groups):
            self.show_group(writers.groups[event.cursor_row])

    def show_group(self, group: WriterGroup) -> None:
        """List the word's sites now; their first words arrive from the database after."""
        self.group = group
        self.app.writer_word = group.word
        sites = self.query_one("#writers-sites", DataTable)
        row = sites.cursor_row if sites.row_count else 0
        sites.clear()
        data = self.app.data
        names = {probe.probe_id: probe.name for probe in data.probes}
        for entry in group.entries:
            shared = self.writers.shared_rows.get((entry.site.row0, entry.site.row1), set())
            others = sorted(shared - {entry.site.matrix_label})
            sites.add_row(
                Text(str(entry.site), style="bold reverse" if others else ""),
                queries.KINDS[int(data.kind[entry.position])],
                names.get(entry.probe_id, str(entry.probe_id)),
                _margin(entry),
                "…",
                self._tags(entry),
                ", ".join(others),
                key=str(entry.position),
            )
        if group.entries:
            sites.move_cursor(row=min(row, len(group.entries) - 1))
        self._load_words(group)

    def action_back(self) -> None:
        """`Esc`: one level up: from the sites to the words, from the words to the overview."""
        sites = self.query_one("#writers-sites", DataTable)
        if sites.has_focus:
            self.query_one("#writers-table", DataTable).focus()
            return
        self.app.pop_screen()

    def action_near_ties(self) -> None:
        """`h`: hide or show the writers that diverged at a near tie."""
        if self.app.data.phenotype_margin is None:
            self.notify("this screen recorded no margins (no effect sizes): nothing to hide")
            return
        self.near_ties = not self.near_ties
        self.redraw()

    def _tags(self, entry: WriterSite) -> Text:
        return Text(", ".join(self.app.data.tags.get(entry.position, {})))

    @work(thread=True, exclusive=True, group="writer-words", exit_on_error=False)
    def _load_words(self, group: WriterGroup) -> None:
        data = self.app.data
        wanted = [(int(data.mutation_id[e.position]), e.probe_id) for e in group.entries]
        words = queries.first_words(self.app.screen_db, data.summary.screen_id, wanted)
        self.app.call_from_thread(self._show_words, group, words)

    def _show_words(self, group: WriterGroup, words: dict[tuple[int, int], str]) -> None:
        if group is not self.group:
            return  # another word is shown by now
        sites = self.query_one("#writers-sites", DataTable)
        column = sites.ordered_columns[SITE_COLUMNS.index("first words")].key
        data = self.app.data
        for entry in group.entries:
            text = words.get((int(data.mutation_id[entry.position]), entry.probe_id), "")
            sites.update_cell(str(entry.position), column, text, update_width=True)

    def selected(self) -> WriterSite | None:
        """The site under the sites list's cursor (the word's first while the words have
        the focus)."""
        group = self.group
        if group is None or not group.entries:
            return None
        sites = self.query_one("#writers-sites", DataTable)
        return group.entries[min(max(sites.cursor_row, 0), len(group.entries) - 1)]

    def cell_site(self) -> Site | None:
        """The site `x` runs live."""
        entry = self.selected()
        return entry.site if entry is not None else None

    # --- actions ---------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_site()

    def action_open_site(self) -> None:
        """Enter: from a word, down to its sites; from a site, the grid there."""
        sites = self.query_one("#writers-sites", DataTable)
        if not sites.has_focus:
            if self.group is not None and self.group.entries:
                sites.focus()
            return
        entry = self.selected()
        if entry is None:
            return
        site = entry.site
        if not self.app.phenotypes.count[entry.position]:
            # the active filter hides this writer: its grid cell would say "0 with phenotypes"
            self.app.set_filter(Filter())
            self.notify(f"the filter hid {site}: cleared to show it")
        position = self.app.data.matrix_position(site.layer, site.matrix)
        self.app.open_matrix(position, (site.row0, site.col0))

    def action_tag(self) -> None:
        """Tag the selected site, then move to the next one."""
        from mutatui.tui.screens.tag import TagScreen

        entry = self.selected()
        if entry is None:
            return
        sites = self.query_one("#writers-sites", DataTable)
        sites.focus()

        def chosen(result: tuple[str, str | None] | None) -> None:
            if result is None:
                return
            self.app.save_tag(int(self.app.data.mutation_id[entry.position]), *result)
            if sites.cursor_row < sites.row_count - 1:
                sites.move_cursor(row=sites.cursor_row + 1)

        tags = self.app.data.tags.get(entry.position, {})
        self.app.push_screen(TagScreen(str(entry.site), tags), chosen)

    def tag_saved(self, mutation_id: int) -> None:
        """The app's hook after a tag is written: redraw that site's tags, whole."""
        group = self.group
        position = self.app.data.index_of(mutation_id)
        if group is None or position is None:
            return
        sites = self.query_one("#writers-sites", DataTable)
        column = sites.ordered_columns[SITE_COLUMNS.index("tags")].key
        for entry in group.entries:
            if entry.position == position:
                sites.update_cell(str(position), column, self._tags(entry), update_width=True)

    def action_copy_sites(self) -> None:
        """`y`: the selected site from the sites list, every site of the word from above."""
        group = self.group
        if group is None:
            return
        if self.query_one("#writers-sites", DataTable).has_focus:
            entry = self.selected()
            text = str(entry.site) if entry is not None else ""
            self.app.copy_to_clipboard(text)
            self.notify(f"copied {text}", timeout=1.5, markup=False)
            return
        self.app.copy_to_clipboard("\n".join(str(site) for site in group.sites))
        self.notify(f"copied {len(group.sites)} sites", timeout=1.5)


def _margin(entry: WriterSite) -> Text:
    """The margin in logits, dim when a near tie; a dash when not recorded."""
    if entry.margin is None:
        return Text("–", style="dim")
    return Text(f"{entry.margin:.2f}", style="dim" if entry.near_tie else "")
