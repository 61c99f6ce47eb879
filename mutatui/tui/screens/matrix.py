"""One matrix as a navigable grid, with marginals, zoom, layers, filters and the cell under the
cursor described below it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Header, Static

from mutatui.engine.sites import Site, parse_site
from mutatui.errors import MutatuiError
from mutatui.guided.layer import PredictedLayer
from mutatui.store.guided import SuperweightResult
from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import (
    MatrixLayout,
    first_tested,
    fit_zoom,
    layout_for,
    live_choices,
    measures_of,
    phenotype_order,
    unit_of,
    zoomed,
)
from mutatui.tui.guided_data import (
    PredictedLayers,
    load_predicted,
    load_superweights,
    predicted_kind,
)
from mutatui.tui.screens.shared import FilterActions, filter_badge
from mutatui.tui.widgets.cell_summary import CellSummary, describe_cell
from mutatui.tui.widgets.key_bar import KeyBar
from mutatui.tui.widgets.matrix_grid import (
    COLOUR_MODES,
    HEADER,
    MARGIN,
    CellPosition,
    MatrixGrid,
)


class MatrixScreen(FilterActions, Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="matrix.back"),
        Binding("plus,equals_sign", "zoom(-1)", "Zoom in", key_display="+", id="matrix.zoom_in"),
        Binding("minus", "zoom(1)", "Zoom out", key_display="-", id="matrix.zoom_out"),
        Binding("0", "fit", "Fit", show=False, id="matrix.fit"),
        Binding(
            "left_square_bracket", "layer(-1)", "Layer-", key_display="[", id="matrix.layer_prev"
        ),
        Binding(
            "right_square_bracket", "layer(1)", "Layer+", key_display="]", id="matrix.layer_next"
        ),
        Binding("m", "matrix_type(1)", "Matrix", id="matrix.type_next"),
        Binding("M", "matrix_type(-1)", "Matrix back", show=False, id="matrix.type_prev"),
        Binding("g", "goto", "Go to", id="matrix.goto"),
        Binding("n", "next_phenotype(1)", "Next phenotype", id="matrix.next"),
        Binding("N", "next_phenotype(-1)", "Previous phenotype", show=False, id="matrix.previous"),
        Binding("r", "rearrange", "Rearrange", show=False, id="matrix.rearrange"),
        Binding("c", "complement", "Max/min", show=False, id="matrix.complement"),
        Binding("s", "colour", "Density/severity/effect", show=False, id="matrix.colour"),
        Binding("enter", "detail", "Detail", id="matrix.detail"),
        Binding("t", "tag", "Tag", show=False, id="matrix.tag"),
        Binding("y", "copy_site", "Copy site", show=False, id="matrix.copy"),
        Binding("p", "predicted", "Predicted", id="matrix.predicted"),
        Binding("S", "superweights", "Super weights", show=False, id="matrix.superweights"),
        *FilterActions.FILTER_BINDINGS,
    ]

    def __init__(self, position: int, *, anchor: tuple[int, int] = (0, 0)) -> None:
        super().__init__()
        self.position = position
        self.level = 0
        """Zoom: doublings finer than the fit of the whole matrix to the space available."""
        self.rearranged = False
        self.anchor = anchor
        """The coordinate under the cursor, kept across zoom, layer and filter changes."""
        self.last_phenotype: int | None = None
        """The mutation `n` went to last (a cell may hold several)."""
        self.open_on_tested = anchor == (0, 0)
        """A grid opened on its corner starts on its first tested cell (a sparse screen's
        corner is mostly untested)."""
        self.layout_data: MatrixLayout | None = None
        self.show_predicted = False
        self.predicted: PredictedLayers | None = None
        """The loaded predicted layer (kept while hidden, so toggling back is instant)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="matrix-status", classes="status")
        yield MatrixGrid(
            on_cursor=self.cursor_moved, colour_mode=self.app.opening_colour, id="grid"
        )
        yield CellSummary("", id="cell-summary")
        yield KeyBar()

    def on_mount(self) -> None:
        self.stale = False
        self.app.data_changed.subscribe(self, self.data_changed)
        self.query_one(MatrixGrid).focus()
        self.call_after_refresh(self.rebuild)

    def data_changed(self, _data: ScreenData) -> None:
        """Rebuild now if on top (or under a dialog), else when the user comes back."""
        if self.app.screen is self or self.app.screen.is_modal:
            self.rebuild()
        else:
            self.stale = True

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.rebuild()

    def on_unmount(self) -> None:
        self.app.data_changed.unsubscribe(self)

    @property
    def data(self) -> ScreenData:
        return self.app.data

    def on_resize(self) -> None:
        if self.layout_data is not None:
            self.call_after_refresh(self.rebuild)

    # --- layout --------------------------------------------------------------------------

    def fit(self) -> tuple[int, int]:
        grid = self.query_one(MatrixGrid)
        return fit_zoom(
            self.data.matrices[self.position],
            unit_of(self.data, self.position),
            grid.size.height - HEADER,
            grid.size.width - MARGIN,
        )

    def rebuild(self) -> None:
        data, phenotypes = self.app.data, self.app.phenotypes
        if data is None or phenotypes is None:
            return
        layout = layout_for(
            data,
            phenotypes,
            self.position,
            zoomed(self.fit(), self.level),
            rearranged=self.rearranged,
            measure=measures_of(data).get(self.query_one(MatrixGrid).colour_mode),
        )
        self.layout_data = layout
        if self.open_on_tested:
            self.open_on_tested = False
            self.anchor = first_tested(data, phenotypes, self.position, self.anchor)
        row = min(self.anchor[0], layout.shape.rows - 1)
        col = min(self.anchor[1], layout.shape.cols - 1)
        cursor = CellPosition(*layout.display_cell_of(row, col))
        grid = self.query_one(MatrixGrid)
        grid.set_predicted(self._predicted_here())
        grid.show(layout, cursor)
        self._update_status()
        if self.show_predicted and self._predicted_stale():
            self._load_predicted(self.app.db_path, self.data.summary.model, self._wanted_kind())

    def _update_status(self) -> None:
        layout, data = self.layout_data, self.data
        if layout is None:
            return
        part = data.matrix_slices[self.position]
        phenotypes = self.app.phenotypes
        hits = int(phenotypes.phenotypic[part].sum())
        tested = int(phenotypes.kept[part].sum())
        shape = layout.shape
        grid = self.query_one(MatrixGrid)
        measure = measures_of(data).get(grid.colour_mode)
        mode = f"{grid.colour_mode} ({measure.label})" if measure else grid.colour_mode
        colour = "max/min overlay" if grid.complement else f"by {mode}"
        view = ["rearranged" if self.rearranged else "natural order"]
        if self.show_predicted and self.predicted is not None:
            view.append(f"predicted {self.predicted.kind} ({self.predicted.info.name})")
        cell = f"{layout.bin_rows}x{layout.bin_cols}"
        # the colour mode first after the matrix: at 80 columns the line's end is cut
        self.query_one("#matrix-status", Static).update(
            f"{filter_badge(self.app.selection, data)}"
            f"[b]{shape.label}[/b] {shape.rows}x{shape.cols}  [b]{colour}[/b]  "
            f"[b]{hits:,}[/b]/{tested:,} phenotypic  cell {cell}  {', '.join(view)}",
            layout=False,  # a fixed one-line bar: no re-layout on every key
        )

    def cell_positions(self) -> np.ndarray:
        """Indices (into the screen data) of the mutations in the cell under the cursor."""
        layout = self.layout_data
        if layout is None:
            return np.zeros(0, dtype=np.int64)
        cursor = self.query_one(MatrixGrid).cursor
        start = self.data.matrix_slices[self.position].start
        return layout.members(cursor.row, cursor.col) + start

    def cursor_moved(self, cell: CellPosition) -> None:
        layout = self.layout_data
        if layout is None:
            return
        bounds = layout.cell_bounds(cell.row, cell.col)
        self.anchor = (bounds[0], bounds[2])
        self.query_one(CellSummary).update(
            describe_cell(self.data, self.app.phenotypes, self.cell_positions(), bounds),
            layout=False,  # fixed height: no re-layout on every cursor move
        )

    # --- actions -------------------------------------------------------------------------

    def action_zoom(self, step: int) -> None:
        fit = self.fit()
        level = min(max(self.level - step, 0), max(fit))
        if level == self.level:
            limit = "the finest: one screened site a cell" if step < 0 else "the whole matrix"
            self.notify(f"zoomed to {limit} already", timeout=1.5)
            return
        self.level = level
        self.rebuild()

    def action_fit(self) -> None:
        self.level = 0
        self.rebuild()

    def _move_to(self, position: int) -> None:
        self.position = position
        self.rebuild()

    def action_layer(self, step: int) -> None:
        data = self.data
        current = data.matrices[self.position]
        layers = data.layers
        index = layers.index(current.layer) + step
        while 0 <= index < len(layers):
            position = data.matrix_position(layers[index], current.matrix)
            if position is not None:
                self._move_to(position)
                return
            index += step
        self.notify(f"no {'earlier' if step < 0 else 'later'} layer", timeout=1.5)

    def action_matrix_type(self, step: int) -> None:
        data = self.data
        current = data.matrices[self.position]
        types = data.matrix_types
        if len(types) == 1:
            self.notify(f"{current.matrix} is the only matrix type in this screen", timeout=1.5)
            return
        for offset in range(1, len(types) + 1):
            name = types[(types.index(current.matrix) + step * offset) % len(types)]
            position = data.matrix_position(current.layer, name)
            if position is not None:
                self._move_to(position)
                return

    def action_rearrange(self) -> None:
        self.rearranged = not self.rearranged
        self.rebuild()

    def action_complement(self) -> None:
        grid = self.query_one(MatrixGrid)
        grid.complement = not grid.complement
        self._update_status()

    def action_colour(self) -> None:
        """Density, severity, then the screen's measures: effect size where it recorded them;
        for a published screen the Mmlu21 points lost, destruction and the Drosophila
        cosine."""
        grid = self.query_one(MatrixGrid)
        grid.complement = False
        measures = measures_of(self.data)
        modes = (*COLOUR_MODES[:2], *measures)
        at = modes.index(grid.colour_mode) if grid.colour_mode in modes else -1
        grid.colour_mode = modes[(at + 1) % len(modes)]
        if grid.colour_mode == "density" and not measures:
            self.notify("no effect sizes in this screen: colour by density or severity")
        self.rebuild()

    def check_site(self, text: str) -> Site:
        site = parse_site(text)
        data = self.data
        position = data.matrix_position(site.layer, site.matrix)
        if position is None:
            names = ", ".join(data.matrix_types)
            raise MutatuiError(
                f"no matrix L{site.layer}.{site.matrix} in this screen; "
                f"layers {data.layers[0]}..{data.layers[-1]}, matrices {names}"
            )
        shape = data.matrices[position]
        if not (0 <= site.row0 < shape.rows and 0 <= site.col0 < shape.cols):
            raise MutatuiError(
                f"{site} is outside {shape.label} ({shape.rows}x{shape.cols}); "
                f"rows 0..{shape.rows - 1}, cols 0..{shape.cols - 1}"
            )
        return site

    def action_next_phenotype(self, step: int) -> None:
        """To the next (step 1) or previous (-1) mutation with a phenotype under the filter:
        within a matrix in `phenotype_order` (largest effect, then most severe, first), then on
        to the following matrix. The first `n` in a matrix goes to its first in that order."""
        order = phenotype_order(self.data, self.app.phenotypes)
        if not len(order):
            self.notify("no phenotype under this filter", timeout=1.5)
            return
        in_cell = np.isin(order, self.cell_positions())
        last = np.flatnonzero(order == self.last_phenotype)
        if len(last) and in_cell[last[0]]:  # where n went last: on from there, to another cell
            index = int(last[0]) + step
            while 0 <= index < len(order) and in_cell[index]:
                index += step
        else:  # anywhere else: this matrix's first in the order (N: its last), or the next's
            mine = np.flatnonzero(self.data.matrix_index[order] == self.position)
            if len(mine):
                index = int(mine[0] if step > 0 else mine[-1])
            else:
                index = int(np.searchsorted(self.data.matrix_index[order], self.position))
                index = index if step > 0 else index - 1
        if not 0 <= index < len(order):
            end = "last" if step > 0 else "first"
            self.notify(f"that was the {end} phenotype ({len(order):,} in all)", timeout=1.5)
            return
        position = int(order[index])
        self.last_phenotype = position
        site = self.data.site(position)
        self.anchor = (site.row0, site.col0)
        moved = int(self.data.matrix_index[position]) != self.position
        self._move_to(int(self.data.matrix_index[position]))
        if moved:
            self.notify(f"on to {self.data.matrices[self.position].label}", timeout=1.5)

    def action_goto(self) -> None:
        from mutatui.tui.screens.goto import GotoScreen

        shape = self.data.matrices[self.position]
        self.app.push_screen(
            GotoScreen(self.check_site, f"{shape.label}[{self.anchor[0]},{self.anchor[1]}]"),
            self.go_to_site,
        )

    def go_to_site(self, site: Site | None) -> None:
        """Put the cursor on `site`, zoomed in to the screen's own resolution, so the cell
        under the cursor is the site (a 64x64 tile, or one element)."""
        if site is None:
            return
        self.anchor = (site.row0, site.col0)
        self.position = self.data.matrix_position(site.layer, site.matrix)
        self.level = max(self.fit())
        self.rebuild()

    def cell_site(self) -> Site:
        """The site under the cursor: its one mutation's site, else the cell's block."""
        positions = self.cell_positions()
        data = self.data
        if len(positions) and len({(data.row0[p], data.col0[p]) for p in positions}) == 1:
            return data.site(int(positions[0]))
        cursor = self.query_one(MatrixGrid).cursor
        row0, row1, col0, col1 = self.layout_data.cell_bounds(cursor.row, cursor.col)
        shape = data.matrices[self.position]
        return Site(shape.layer, shape.matrix, row0, row1, col0, col1)

    def live_choices(self) -> list[tuple[str, str]]:
        """What `x` may run from the cell under the cursor (`grid_data.live_choices`)."""
        cursor = self.query_one(MatrixGrid).cursor
        return live_choices(
            self.data,
            self.app.phenotypes,
            self.cell_positions(),
            self.layout_data.cell_bounds(cursor.row, cursor.col),
            self.data.matrices[self.position],
        )

    def action_copy_site(self) -> None:
        text = str(self.cell_site())
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {text}", timeout=1.5, markup=False)

    def action_detail(self) -> None:
        from mutatui.tui.screens.detail import DetailScreen

        positions = self.cell_positions()
        kept = positions[self.app.phenotypes.kept[positions]]
        if not len(kept):
            self.notify("no tested mutation in this cell", timeout=1.5)
            return
        order = np.argsort(-self.app.phenotypes.count[kept], kind="stable")
        self.app.push_screen(DetailScreen([int(p) for p in kept[order]]))

    def action_tag(self) -> None:
        from mutatui.tui.screens.tag import TagScreen

        positions = self.cell_positions()
        kept = positions[self.app.phenotypes.kept[positions]]
        if len(kept) != 1:
            self.action_detail()
            return
        mutation_id = int(self.data.mutation_id[kept[0]])
        self.app.push_screen(
            TagScreen(str(self.cell_site()), self.data.tags.get(int(kept[0]), {})),
            lambda chosen: chosen and self.app.save_tag(mutation_id, *chosen),
        )

    # --- guided layers -------------------------------------------------------------------

    def _wanted_kind(self) -> str:
        return predicted_kind(self.app.selection.kinds)

    def _predicted_stale(self) -> bool:
        """No predicted layer loaded yet, or one of another kind than the filter asks for."""
        return self.predicted is None or self.predicted.kind != self._wanted_kind()

    def _predicted_here(self) -> PredictedLayer | None:
        """The shown matrix's predicted layer, or None (hidden, not loaded, not predicted)."""
        if not self.show_predicted or self.predicted is None:
            return None
        shape = self.data.matrices[self.position]
        return self.predicted.layers.get((shape.layer, shape.matrix))

    def action_predicted(self) -> None:
        """Toggle the predicted layer under the measured phenotypes (loaded on first use)."""
        self.show_predicted = not self.show_predicted
        if self.show_predicted and self._predicted_stale():
            self._load_predicted(self.app.db_path, self.data.summary.model, self._wanted_kind())
            return
        self.query_one(MatrixGrid).set_predicted(self._predicted_here())
        self._update_status()

    @work(thread=True, exclusive=True, group="predicted", exit_on_error=False)
    def _load_predicted(self, db: Path, model: str, kind: str) -> None:
        self.app.call_from_thread(self._predicted_loaded, load_predicted(db, model, kind), model)

    def _predicted_loaded(self, predicted: PredictedLayers | None, model: str) -> None:
        if predicted is None:
            self.show_predicted = False
            db = self.app.db_path
            self.notify(
                f"no prediction for {model} in {db.name}; run `mutatui predict --model {model} "
                f"--db {db}`",
                severity="warning",
            )
            return
        self.predicted = predicted
        if self.show_predicted:
            self.query_one(MatrixGrid).set_predicted(self._predicted_here())
            self._update_status()

    def action_superweights(self) -> None:
        """List the super weights of the database's newest run; choosing one jumps there."""
        self._load_superweights(self.app.db_path)

    @work(thread=True, exclusive=True, group="superweights", exit_on_error=False)
    def _load_superweights(self, db: Path) -> None:
        self.app.call_from_thread(self._superweights_loaded, load_superweights(db))

    def _superweights_loaded(self, results: list[SuperweightResult]) -> None:
        from mutatui.tui.screens.superweights import SuperweightScreen

        if not results:
            db = self.app.db_path
            self.notify(
                f"no super weights in {db.name}; run `mutatui superweights --model "
                f"{self.data.summary.model} --db {db}`",
                severity="warning",
            )
            return
        self.app.push_screen(SuperweightScreen(results), self.jump_to_site)

    def jump_to_site(self, text: str | None) -> None:
        """Go to a site given as text (the `g` path), or say in one line why not."""
        if text is None:
            return
        try:
            site = self.check_site(text)
        except MutatuiError as error:
            self.notify(str(error), severity="warning", markup=False)
            return
        self.go_to_site(site)

    def system_commands(self):
        from textual.app import SystemCommand

        yield from super().system_commands()
        for title, help_text, action in (
            (
                "Rearrange rows and columns",
                "Sort rows and columns by phenotype count",
                self.action_rearrange,
            ),
            (
                "Max/min overlay",
                "Colour cells by which kinds produced phenotypes",
                self.action_complement,
            ),
            (
                "Colour by density, severity or effect",
                "Switch the cell colouring",
                self.action_colour,
            ),
            ("Go to site", "Jump to a site typed as text", self.action_goto),
            (
                "Predicted layer",
                "Shade untested and quiet cells by the newest sensitivity prediction",
                self.action_predicted,
            ),
            (
                "Super weights",
                "List super-weight candidates and jump to one",
                self.action_superweights,
            ),
            ("Copy site", "Copy the site under the cursor (OSC 52)", self.action_copy_site),
            ("Fit matrix", "Zoom out to the whole matrix", self.action_fit),
        ):
            yield SystemCommand(title, help_text, action)
