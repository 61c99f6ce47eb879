"""Two screens' overviews side by side: phenotype rates per matrix type and depth, on layers when
the two models are as deep, on tenths of relative depth when they are not (SmolLM2's tiles next
to Llama-2-7b's Drosophila experiment). `e` steps a published side through its experiments."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Header, LoadingIndicator, Static

from mutatui.store import queries
from mutatui.store.queries import ScreenData
from mutatui.tui.compare_data import DepthProfile, common_rows, depth_profile, experiment_named
from mutatui.tui.widgets.depth_table import DepthTable
from mutatui.tui.widgets.key_bar import KeyBar

DEFAULT_EXPERIMENT = "Drosophila"
"""The experiment a published side opens on: the one the bundled SmolLM2 screens share."""


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Screens", id="compare.back"),
        Binding("e", "experiment", "Experiment", id="compare.experiment"),
    ]

    def __init__(self, left: tuple[Path, int], right: tuple[Path, int]) -> None:
        super().__init__()
        self.sides = (left, right)
        self.data: list[ScreenData] = []
        self.experiment: str | None = DEFAULT_EXPERIMENT
        self.profiles: list[DepthProfile] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-status", classes="status")
        yield LoadingIndicator(id="compare-loading")
        with Horizontal(id="compare-sides"):
            yield DepthTable(id="compare-left", classes="compare-side")
            yield DepthTable(id="compare-right", classes="compare-side")
        yield KeyBar()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self) -> None:
        loaded = [queries.load_screen(source, screen_id) for source, screen_id in self.sides]
        self.app.call_from_thread(self._loaded, loaded)

    def _loaded(self, loaded: list[ScreenData]) -> None:
        self.data = loaded
        self.query_one(LoadingIndicator).display = False
        self.redraw()

    def experiments(self) -> list[str]:
        """The experiment names of the published sides, in their order, each once."""
        names: list[str] = []
        for data in self.data:
            if data.published is not None:
                names += [e.name for e in data.published.experiments if e.name not in names]
        return names

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "experiment":
            return bool(self.experiments())
        return True

    def action_experiment(self) -> None:
        names = self.experiments()
        if names:
            current = names.index(self.experiment) if self.experiment in names else -1
            self.experiment = names[(current + 1) % len(names)]
            self.redraw()

    def redraw(self) -> None:
        if len(self.data) != 2:
            return
        left, right = self.data
        rows = common_rows(left, right)
        self.profiles = [
            depth_profile(data, rows, experiment_named(data, self.experiment)) for data in self.data
        ]
        for widget, profile in zip(("#compare-left", "#compare-right"), self.profiles, strict=True):
            self.query_one(widget, DepthTable).show(profile)
        axis = "layer by layer" if rows is None else f"on tenths of relative depth ({rows} rows)"
        hint = "  [dim]e: next experiment[/dim]" if self.experiments() else ""
        self.query_one("#compare-status", Static).update(
            f"[b]{escape(left.summary.name)}[/b] next to [b]{escape(right.summary.name)}[/b], "
            f"{axis}{hint}",
            layout=False,
        )
