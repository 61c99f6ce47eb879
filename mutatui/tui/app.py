"""The explorer app: browse a mutatui database's screens as navigable matrix grids.

The app owns the state every screen shares: the database path, the open screen's data (read
once into memory by a worker), the filter and the per-mutation phenotypes under it. Screens
subscribe to `data_changed` and redraw from memory. While a screen is not complete the app
polls the database every few seconds (a short read-only connection, off the UI thread) and
reloads when results have been added, so new phenotypes appear in the grid.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState, get_current_worker

from mutatui.engine.forms import brief
from mutatui.errors import MutatuiError
from mutatui.store import queries
from mutatui.store.places import side_database, side_live_database
from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import Filter, Phenotypes, apply_filter, opening
from mutatui.tui.keymap import load_keymap
from mutatui.tui.screens.filters import FilterScreen, dialog_options
from mutatui.tui.screens.live_launcher import LiveLauncher

POLL_SECONDS = 3.0
FILTER_DIALOG = "filter-dialog"
THEMES = ("textual-dark", "textual-light")


def quiet_collector() -> None:
    """Move what is alive now (a loaded screen, the views) out of the cyclic collector's sight.

    A screen stays loaded while it is browsed; left in view, its objects made every full
    collection long enough to land in a key's frame (tui_latency at 160x48: filter keys 42 ms
    p95 with them, 17-28 ms without; the filter dialog 73 ms and 45 ms). Garbage is collected
    first, and everything is handed back when the app ends."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ExplorerApp(LiveLauncher, App):
    """`mutatui browse DB`."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "mutatui"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False, id="app.theme"),
        Binding("x", "live_here", "Live", id="app.live"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        db_path: str | Path,
        *,
        keymap: dict[str, str] | None = None,
        poll_seconds: float = POLL_SECONDS,
        open_screen: int | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.data: ScreenData | None = None
        self.selection = Filter()
        self.phenotypes: Phenotypes | None = None
        self.data_changed: Signal[ScreenData] = Signal(self, "data_changed")
        self.poll_seconds = poll_seconds
        self._initial_screen = open_screen
        self._keymap_override = keymap
        self._loading: int | None = None
        self._filter_dialog: FilterScreen | None = None
        self.side_db = side_database(self.db_path)
        """Where tags go when the opened file must not be written (bundled, read-only)."""
        self.side_live_db = side_live_database(self.db_path)
        """Where the live runs started from such a file go; its screens are listed with the
        file's own."""
        self.screen_db = self.db_path
        """The file the open screen is read from: the opened one, or its side live database."""
        self._tokenizers: dict[str, object | None] = {}
        self._opening = False
        """The screen being opened gets its opening filter when its data arrives."""
        self.opening_colour = "density"
        """The colour mode a matrix grid of the open screen starts in (`grid_data.opening`)."""
        self.writer_word: str | None = None
        """The writers view's selected first word: `w` opens the view on it again."""

    def on_mount(self) -> None:
        try:
            keys = self._keymap_override if self._keymap_override is not None else load_keymap()
        except MutatuiError as error:
            keys = {}
            self.notify(str(error), title="Keys not remapped", severity="warning", markup=False)
        if keys:
            self.set_keymap(keys)
        # a static title: changing it costs a layout of the header on every key
        self.sub_title = self.db_path.name + (
            " (not written: tags go to a side database)" if self.side_db else ""
        )
        if self.side_db is not None:
            self.notify(
                f"{self.db_path.name} is not written (bundled data, or read-only): tags go to "
                f"{self.side_db}, live runs to {self.live_db} (listed with its screens)",
                title="Not written",
                timeout=10,
                markup=False,
            )
        from mutatui.tui.screens.screen_list import ScreenListScreen

        self.push_screen(ScreenListScreen())
        self.preload_views()
        if self._initial_screen is not None:
            self.open_screen(self._initial_screen)
        self.set_interval(self.poll_seconds, self._poll)

    @work(thread=True, group="preload", exit_on_error=False)
    def preload_views(self) -> None:
        """Import the grid, detail and writers views off the UI thread while the user reads
        the screen list (their widgets and the engine's site parser take a second or two to
        import on a loaded machine), so opening the first matrix does not wait for that."""
        for name in ("matrix", "detail", "writers"):
            importlib.import_module(f"mutatui.tui.screens.{name}")

    # --- the open screen -----------------------------------------------------------------

    def open_screen(self, screen_id: int, source: Path | None = None) -> None:
        """Show the overview of one screen of `source` (the opened file unless named); its
        data loads in a worker."""
        from mutatui.tui.screens.overview import OverviewScreen

        source = source or self.db_path
        if (
            self.data is None
            or self.data.summary.screen_id != screen_id
            or (source != self.screen_db)
        ):
            self.screen_db = source
            self.data = None
            self.phenotypes = None
            self.selection = Filter()
            self.writer_word = None
            self._opening = True
            self.load_screen(screen_id)
        self.push_screen(OverviewScreen())

    def open_compare(self, left: tuple[Path, int], right: tuple[Path, int]) -> None:
        """Two screens' overviews side by side, each given as (file, screen id)."""
        from mutatui.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(left, right))

    def open_writers(self) -> None:
        """The writers view of the open screen (views reach each other through the app, so
        none imports another)."""
        from mutatui.tui.screens.overview import OverviewScreen
        from mutatui.tui.screens.writers import WritersScreen

        if self.data is not None:
            self._back_to(OverviewScreen)
            self.push_screen(WritersScreen())

    def open_matrix(self, position: int, anchor: tuple[int, int] = (0, 0)) -> None:
        """The grid of matrix `position` of the open screen, its cursor on `anchor`: one level
        above the view it is opened from (the overview or the writers view), never on top of
        another grid, so `Esc` always goes one level up."""
        from mutatui.tui.screens.matrix import MatrixScreen
        from mutatui.tui.screens.overview import OverviewScreen
        from mutatui.tui.screens.writers import WritersScreen

        self._back_to(OverviewScreen, WritersScreen)
        self.push_screen(MatrixScreen(position, anchor=anchor))

    def _back_to(self, *views: type[Screen]) -> None:
        """Pop the screens above the nearest of `views` in the stack (none when it has none):
        the explorer's levels are screen list, overview, then a grid or the writers view
        (with a grid above it), and opening a view goes back to its level first."""
        stack = self.screen_stack
        if not any(isinstance(screen, views) for screen in stack):
            return
        while not isinstance(self.screen, views):
            self.pop_screen()

    def load_screen(self, screen_id: int) -> None:
        """Read a screen into memory in a worker; a newer request supersedes an older one, and
        no poll starts another while one is pending."""
        self._loading = screen_id
        self._read_screen(screen_id)

    def screen_sources(self) -> list[Path]:
        """The files whose screens the screen list shows: the opened one, and the side live
        database of one that is not written, once it exists."""
        side = self.side_live_db
        return [self.db_path] + ([side] if side is not None and side.exists() else [])

    @property
    def tags_beside(self) -> Path | None:
        """The side database holding the open screen's tags; None when its file holds them."""
        return self.side_db if self.screen_db == self.db_path else None

    @property
    def tag_db(self) -> Path:
        """The database tags are written to: the open screen's file, or its side database."""
        return self.tags_beside or self.screen_db

    @property
    def live_db(self) -> Path:
        """The database live runs are saved to: the opened file, or its side live database."""
        return self.side_live_db or self.db_path

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _read_screen(self, screen_id: int) -> None:
        data = queries.load_screen(self.screen_db, screen_id)
        if self.tags_beside is not None:
            queries.overlay_tags(data, queries.tags_of(self.tags_beside, screen_id))
        if not get_current_worker().is_cancelled:  # superseded: the newer read will report
            self.call_from_thread(self._loaded, data)

    def _loaded(self, data: ScreenData) -> None:
        self._loading = None
        self.data = data
        opened, self._opening = self._opening, False
        if opened:
            start = opening(data)
            self.selection, self.opening_colour = start.selection, start.colour
            if start.why is not None:
                self.notify(start.why, title=start.title, timeout=8, markup=False)
        self.phenotypes = apply_filter(data, self.selection)
        self.data_changed.publish(data)
        if opened:  # not on every reload of a running screen: a full collection takes a frame
            quiet_collector()

    def on_unmount(self) -> None:
        gc.unfreeze()  # what the app kept out of the collector's sight is garbage now

    def filter_dialog(self, data: ScreenData) -> FilterScreen:
        """The filter dialog for `data`: one installed dialog, reused while the choices it
        offers (styles, prompts, tags, words) stay the same (`FilterScreen` says why)."""
        dialog = self._filter_dialog
        if dialog is not None and dialog.options == dialog_options(data):
            return dialog
        if dialog is not None:
            self.uninstall_screen(dialog)
        dialog = FilterScreen(data, self.selection)
        self.install_screen(dialog, name=FILTER_DIALOG)
        self._filter_dialog = dialog
        return dialog

    def set_filter(self, selection: Filter) -> None:
        """Apply a filter: every view (grid, marginals, counts, overview) follows."""
        self.selection = selection
        if self.data is not None:
            self.phenotypes = apply_filter(self.data, selection)
            self.data_changed.publish(self.data)

    def _poll(self) -> None:
        """A screen that is not complete may be running, or resumed: look for new results."""
        data = self.data
        if data is not None and data.summary.status != "complete" and self._loading is None:
            self.check_progress(data.summary.screen_id, data.summary.status, data.written)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def check_progress(self, screen_id: int, known_status: str, known_written: int) -> None:
        status, written = queries.screen_progress(self.screen_db, screen_id)
        if written != known_written or status != known_status:
            self.call_from_thread(self.load_screen, screen_id)

    # --- triage --------------------------------------------------------------------------

    def save_tag(self, mutation_id: int, tag: str, note: str | None) -> None:
        """Tag a mutation: written to the database at once, then shown everywhere."""
        data = self.data
        if data is None:
            return
        self._write_tag(data.summary.screen_id, mutation_id, tag, note)

    @work(thread=True, group="tag", exit_on_error=False)
    def _write_tag(self, screen_id: int, mutation_id: int, tag: str, note: str | None) -> None:
        queries.add_tag(self.tag_db, screen_id, mutation_id, tag, note)
        self.call_from_thread(self._tag_saved, screen_id, mutation_id, tag, note)

    def remove_tag(self, mutation_id: int, tag: str) -> None:
        """Untag a mutation, in the database at once."""
        data = self.data
        if data is not None:
            self._delete_tag(data.summary.screen_id, mutation_id, tag)

    @work(thread=True, group="tag", exit_on_error=False)
    def _delete_tag(self, screen_id: int, mutation_id: int, tag: str) -> None:
        queries.remove_tag(self.tag_db, screen_id, mutation_id, tag)
        self.call_from_thread(self._tag_saved, screen_id, mutation_id, tag, None, removed=True)

    def _tag_saved(
        self,
        screen_id: int,
        mutation_id: int,
        tag: str,
        note: str | None,
        *,
        removed: bool = False,
    ) -> None:
        data = self.data
        if data is not None and data.summary.screen_id == screen_id:
            position = data.index_of(mutation_id)
            if position is not None:
                tags = data.tags.setdefault(position, {})
                if removed:
                    tags.pop(tag, None)
                else:
                    tags[tag] = note
                if not tags:
                    del data.tags[position]
            self.set_filter(self.selection)
        hook = getattr(self.screen, "tag_saved", None)
        if hook is not None:
            hook(mutation_id)
        if removed:
            self.notify(f"removed tag {tag}", timeout=2, markup=False)
        else:
            self.notify(f"tagged {tag}" + (f": {note}" if note else ""), timeout=2, markup=False)

    # --- errors, help, theme -------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's failure lands here: one line, and the app keeps running."""
        if event.state == WorkerState.ERROR:
            if event.worker.group == "load":
                self._loading = None
            error = event.worker.error
            message = str(error) if isinstance(error, MutatuiError) else repr(error)
            first = brief(message.splitlines()[0]) if message else "failed"
            self.notify(first, severity="error", markup=False)

    def tokenizer_of(self, model: str) -> object | None:
        """The tokenizer of a screen's model, loaded once (in a worker: it reads files), or
        None when it is not on this machine."""
        if model not in self._tokenizers:
            from mutatui.engine.models import load_tokenizer

            try:
                self._tokenizers[model] = load_tokenizer(model)
            except MutatuiError:
                self._tokenizers[model] = None
        return self._tokenizers[model]

    def action_help(self) -> None:
        from mutatui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Every key, and how to remap it", self.action_help)
        yield SystemCommand(
            "Light or dark", "Switch between light and dark", self.action_toggle_theme
        )
        yield from getattr(screen, "system_commands", list)()
