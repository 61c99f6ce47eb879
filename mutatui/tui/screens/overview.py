"""One screen at a glance: phenotype counts per layer and matrix type, max and min side by side."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Header, LoadingIndicator, Static

from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import nsm_rates, overview_counts, published_trials
from mutatui.tui.screens.shared import FilterActions, filter_badge
from mutatui.tui.widgets.key_bar import KeyBar
from mutatui.tui.widgets.overview_heatmap import OverviewHeatmap, first_present


class OverviewScreen(FilterActions, Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Screens", id="overview.back"),
        Binding("e", "experiment", "Experiment", id="overview.experiment"),
        *FilterActions.FILTER_BINDINGS,
    ]

    experiment = 0
    """A published screen: which of its experiments the overview shows."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="overview-status", classes="status")
        yield LoadingIndicator(id="overview-loading")
        yield OverviewHeatmap(id="overview")
        yield Static(
            "max | min phenotypic mutations per matrix; Enter opens a matrix",
            id="overview-hint",
            classes="hint",
        )
        yield KeyBar()

    def on_mount(self) -> None:
        self.stale = False
        self.app.data_changed.subscribe(self, self.data_changed)
        self.query_one(OverviewHeatmap).display = False
        if self.app.data is not None:
            self.redraw(self.app.data)

    def data_changed(self, data: ScreenData) -> None:
        """Redraw now if on top, else when the user comes back (see on_screen_resume)."""
        if self.app.screen is self:
            self.redraw(data)
        else:
            self.stale = True

    def on_screen_resume(self) -> None:
        if self.stale and self.app.data is not None:
            self.stale = False
            self.redraw(self.app.data)

    def on_unmount(self) -> None:
        self.app.data_changed.unsubscribe(self)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "experiment":
            return self.app.data is not None and self.app.data.published is not None
        return True

    def action_experiment(self) -> None:
        data = self.app.data
        if data is not None and data.published is not None and data.published.experiments:
            self.experiment = (self.experiment + 1) % len(data.published.experiments)
            self.redraw(data)

    def redraw(self, data: ScreenData) -> None:
        phenotypes = self.app.phenotypes
        if phenotypes is None:
            return
        if data.published is not None and data.published.experiments:
            self._redraw_published(data)
            return
        self.query_one(LoadingIndicator).display = False
        heatmap = self.query_one(OverviewHeatmap)
        first = not heatmap.display
        heatmap.display = True
        layers, types = data.layers, data.matrix_types
        by_max, by_min = overview_counts(data, phenotypes)
        shape = (len(layers), len(types))
        max_grid, min_grid = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        present = np.zeros(shape, dtype=bool)
        for position, matrix in enumerate(data.matrices):
            row, col = layers.index(matrix.layer), types.index(matrix.matrix)
            max_grid[row, col] = by_max[position]
            min_grid[row, col] = by_min[position]
            present[row, col] = (
                data.matrix_slices[position].stop > data.matrix_slices[position].start
            )
        heatmap.show(layers, types, max_grid, min_grid, present)
        if first:
            heatmap.focus()
            if present.any():
                row, col = first_present(present)
                heatmap.select(layers[row], types[col])
        summary = data.summary
        shown = int(phenotypes.phenotypic.sum())
        self.query_one("#overview-status", Static).update(
            f"{filter_badge(self.app.selection, data)}"
            f"[b]{escape(summary.name)}[/b]  {escape(summary.model)}"
            f"{'  ' + summary.numbers if summary.numbers else ''}  {summary.state}  "
            f"{shown:,} of {int(phenotypes.kept.sum()):,} mutations with phenotypes",
            layout=False,
        )

    def _redraw_published(self, data: ScreenData) -> None:
        """A published screen's experiment (`e` for the next): per matrix its NSMs and distinct
        phenotypes, shaded by NSMs per 64x64 tile and kind (max, min, zero)."""
        self.query_one(LoadingIndicator).display = False
        heatmap = self.query_one(OverviewHeatmap)
        first = not heatmap.display
        heatmap.display = True
        experiment = data.published.experiments[self.experiment % len(data.published.experiments)]
        rates = nsm_rates(data, experiment)
        layers, types = data.layers, data.matrix_types
        size = (len(layers), len(types))
        nsms, distinct = np.zeros(size, np.int64), np.zeros(size, np.int64)
        shade, distinct_shade = np.zeros(size), np.zeros(size)
        for matrix in data.matrices:
            key = (matrix.layer, matrix.matrix)
            row, col = layers.index(matrix.layer), types.index(matrix.matrix)
            nsms[row, col] = experiment.nsms.get(key, 0)
            distinct[row, col] = experiment.distinct.get(key) or 0
            shade[row, col] = rates[key]
            distinct_shade[row, col] = distinct[row, col] / published_trials(matrix)
        present = np.ones(size, dtype=bool)
        heatmap.show(layers, types, nsms, distinct, present, (shade, distinct_shade))
        if first:
            heatmap.focus()
        total = sum(experiment.totals.values())
        self.query_one("#overview-status", Static).update(
            f"[b]{escape(data.summary.name)}[/b]  published  experiment "
            f"[b]{escape(experiment.name)}[/b] ({escape(experiment.type)}): {total:,} NSMs  "
            f"[dim]e: next experiment[/dim]",
            layout=False,
        )
        self.query_one("#overview-hint", Static).update(
            "NSMs | distinct phenotypes per matrix, shaded by NSMs per 64x64 tile and kind; "
            "Enter opens a matrix (its Mmlu21 table)"
        )

    def on_overview_heatmap_opened(self, event: OverviewHeatmap.Opened) -> None:
        data = self.app.data
        if data is None:
            return
        position = data.matrix_position(event.layer, event.matrix)
        if position is None:
            self.notify(
                f"L{event.layer}.{event.matrix} was not tested in this screen; "
                "the coloured cells were",
                severity="warning",
            )
            return
        self.app.open_matrix(position)
