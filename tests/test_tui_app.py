"""The explorer driven with Textual's Pilot: every view and every binding, on a synthetic
screen database (real DuckDB file, real workers)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from textual import events
from textual.worker import WorkerFailed

from mutatui.store import queries
from mutatui.store.database import connect
from mutatui.store.synthetic import SyntheticSpec, build_synthetic
from mutatui.tui.app import ExplorerApp
from mutatui.tui.grid_data import Filter
from mutatui.tui.keymap import load_keymap
from mutatui.tui.screens.detail import DetailScreen
from mutatui.tui.screens.filters import FilterScreen
from mutatui.tui.screens.goto import GotoScreen
from mutatui.tui.screens.help import HelpScreen
from mutatui.tui.screens.matrix import MatrixScreen
from mutatui.tui.screens.overview import OverviewScreen
from mutatui.tui.screens.screen_list import ScreenListScreen
from mutatui.tui.screens.tag import TagScreen, UntagScreen
from mutatui.tui.screens.writers import WritersScreen
from mutatui.tui.widgets.key_bar import PINNED, KeyBar
from mutatui.tui.widgets.matrix_grid import MatrixGrid
from mutatui.tui.widgets.overview_heatmap import OverviewHeatmap
from mutatui.tui.writers_data import WriterSite

SIZE = (80, 24)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "screens.db"
    build_synthetic(path, SyntheticSpec(layers=3, seed=3))
    return path


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_overview(pilot) -> OverviewHeatmap:
    """Screen list -> overview; its heatmap."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, OverviewScreen)
    return pilot.app.screen.query_one(OverviewHeatmap)


async def open_matrix(pilot, *keys: str) -> MatrixScreen:
    """Screen list -> overview -> (moves) -> matrix grid."""
    await open_overview(pilot)
    await pilot.press(*keys, "enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, MatrixScreen)
    return pilot.app.screen


async def open_phenotype(pilot) -> MatrixScreen:
    """The first matrix's grid, zoomed in on a mutation with a phenotype."""
    screen = await open_matrix(pilot)
    data = pilot.app.data
    position = next(
        int(p) for p in data.phenotype_mutation if data.matrix_index[p] == screen.position
    )
    screen.go_to_site(screen.check_site(f"L0.q[{data.row0[position]},{data.col0[position]}]"))
    await pilot.press("plus", "plus", "plus", "plus")
    return screen


def grid_of(app) -> MatrixGrid:
    return app.screen.query_one(MatrixGrid)


async def test_screen_list_shows_each_screen(db):
    build_synthetic(db, SyntheticSpec(name="second", layers=1, seed=9, status="interrupted"))
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ScreenListScreen)
        names = [summary.name for summary in screen.summaries]
        assert sorted(names) == ["second", "synthetic"]
        table = screen.query_one("#screen-table")
        assert table.row_count == 2
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert table.row_count == 2
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.data.summary.name == screen.summaries[1].name


async def test_overview_moves_and_opens_the_matrix_under_the_cursor(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        heatmap = await open_overview(pilot)
        assert heatmap.selected == (0, app.data.matrix_types[0])
        await pilot.press("j", "l", "down", "right", "k", "h", "l")
        assert heatmap.selected == (1, app.data.matrix_types[2])
        await pilot.press("enter")
        await settle(pilot)
        shape = app.data.matrices[app.screen.position]
        assert (shape.layer, shape.matrix) == (1, app.data.matrix_types[2])
        await pilot.press("escape")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, ScreenListScreen)


async def test_grid_cursor_keys(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot, "l", "l", "l", "l")  # gate: 24 x 9 tiles
        grid = grid_of(app)
        await pilot.press("plus", "plus")  # single tiles, taller than the view
        layout = grid.layout_data
        assert (layout.bin_rows, layout.bin_cols) == (64, 64)
        start = grid.cursor
        await pilot.press("l", "right", "j", "down")
        assert (grid.cursor.row, grid.cursor.col) == (start.row + 2, start.col + 2)
        await pilot.press("h", "k")
        assert (grid.cursor.row, grid.cursor.col) == (start.row + 1, start.col + 1)
        await pilot.press("left", "up")
        assert grid.cursor == start
        await pilot.press("end")
        assert grid.cursor.col == layout.cols - 1
        await pilot.press("home")
        assert grid.cursor.col == 0
        await pilot.press("ctrl+end")
        assert grid.cursor.row == layout.rows - 1
        assert grid.top > 0  # scrolled to keep the cursor visible
        await pilot.press("ctrl+home")
        assert grid.cursor.row == 0 and grid.top == 0
        await pilot.press("pagedown")
        assert grid.cursor.row == grid.grid_height
        await pilot.press("pageup")
        assert grid.cursor.row == 0
        assert screen.anchor == (0, 0)


async def test_zoom_layers_and_matrix_types(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot, "l", "l", "l", "l")
        grid = grid_of(app)
        fitted = grid.layout_data
        assert fitted.rows <= grid.grid_height and fitted.cols <= grid.grid_width
        await pilot.press("plus")
        assert grid.layout_data.bin_rows < fitted.bin_rows
        await pilot.press("plus", "plus", "plus", "equals_sign")
        assert grid.layout_data.bin_rows == 64  # stops at the tile resolution
        await pilot.press("minus")
        assert grid.layout_data.bin_rows == 128
        await pilot.press("0")
        assert grid.layout_data.bin_rows == fitted.bin_rows
        label = app.data.matrices[screen.position].label
        assert label == "L0.gate"
        await pilot.press("right_square_bracket")
        assert app.data.matrices[screen.position].label == "L1.gate"
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert app.data.matrices[screen.position].label == "L2.gate"
        await pilot.press("left_square_bracket")
        assert app.data.matrices[screen.position].label == "L1.gate"
        await pilot.press("m")
        assert app.data.matrices[screen.position].label == "L1.up"
        await pilot.press("m", "m")
        assert app.data.matrices[screen.position].label == "L1.q"  # wraps around
        await pilot.press("M", "M")
        assert app.data.matrices[screen.position].label == "L1.up"


async def test_goto_a_typed_site_and_a_bad_one(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        await pilot.press("g")
        assert isinstance(app.screen, GotoScreen)
        await pilot.press(*"L2.up[9999,2]", "enter")
        dialog = app.screen
        assert isinstance(dialog, GotoScreen)  # not closed: the error is shown in it
        assert "outside L2.up" in str(dialog.query_one("#goto-error").render())
        for text, error in [
            ("L9.up[1,2]", "no matrix L9.up"),
            ("down[1,2]", "bad site"),
            ("L1.up[1:,2]", "open range"),
        ]:
            dialog.query_one("#goto-input").value = text
            await pilot.press("enter")
            assert error in str(dialog.query_one("#goto-error").render())
        dialog.query_one("#goto-input").value = "L2.up[900,70]"
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        assert app.data.matrices[screen.position].label == "L2.up"
        row0, row1, col0, col1 = screen.layout_data.cell_bounds(
            grid_of(app).cursor.row, grid_of(app).cursor.col
        )
        assert row0 <= 900 < row1 and col0 <= 70 < col1
        await pilot.press("g", "escape")
        assert app.screen is screen


async def test_view_toggles_rearrange_complement_severity(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot, "l", "l", "l", "l")
        grid = grid_of(app)
        await pilot.press("r")
        assert screen.rearranged and grid.layout_data.rearranged
        totals = grid.layout_data.row_totals[grid.layout_data.row_order]
        assert list(totals) == sorted(totals, reverse=True)
        await pilot.press("r")
        assert not grid.layout_data.rearranged
        await pilot.press("c")
        assert grid.complement
        assert "max/min overlay" in str(screen.query_one("#matrix-status").render())
        await pilot.press("s")
        assert not grid.complement and grid.colour_mode == "severity"
        app.set_filter(Filter(min_severity=2, styles=frozenset({"poetic"})))  # a long badge
        await pilot.pause()
        status = screen.query_one("#matrix-status")
        shown = str(status.render())[: status.content_region.width]  # what fits at 80 columns
        assert "by severity" in shown
        app.set_filter(Filter())
        await pilot.press("s")
        assert grid.colour_mode == "density"


async def test_filters_drive_grid_marginals_and_counts(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot, "l", "l", "l", "l")
        grid = grid_of(app)
        before = int(grid.layout_data.row_totals.sum())
        await pilot.press("f")
        dialog = app.screen
        assert isinstance(dialog, FilterScreen)
        dialog.query_one("#kind-min").value = True
        dialog.query_one("#severity").value = 3
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.selection == Filter(kinds=frozenset({"min"}), min_severity=3)
        after = int(grid.layout_data.row_totals.sum())
        assert after < before
        assert "kind min, severity>=3" in str(screen.query_one("#matrix-status").render())
        await pilot.press("f")
        assert app.screen is dialog  # one dialog, kept installed, shows the current filter
        assert dialog.query_one("#kind-min").value and not dialog.query_one("#kind-max").value
        assert dialog.query_one("#severity").value == 3
        app.screen.query_one("#first-word").value = "Oh"
        await pilot.press("escape")  # cancel keeps the filter
        assert app.selection.first_word is None
        await pilot.press("F")
        assert app.selection == Filter()
        assert int(grid.layout_data.row_totals.sum()) == before
        await pilot.press("f")
        assert app.screen is dialog and dialog.selection() == Filter()  # the typed word is gone
        app.screen.query_one("#first-word").value = "Oh"
        app.screen.query_one("#first-word").focus()
        await pilot.press("enter")
        assert app.selection.first_word == "Oh"
        await pilot.press("f")
        app.screen.query_one("#clear").focus()
        await pilot.press("enter")
        assert app.selection == Filter()
        # quick filters without the dialog
        await pilot.press("K")
        assert app.selection.kinds == {"max"}
        await pilot.press("K")
        assert app.selection.kinds == {"min"}
        assert int(grid.layout_data.row_totals.sum()) < before
        await pilot.press("K", "V", "V")
        assert app.selection == Filter(min_severity=2)
        await pilot.press("V", "V")
        assert app.selection == Filter()


async def test_a_new_tag_rebuilds_the_filter_dialog_with_it(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_matrix(pilot)
        await pilot.press("f")
        first = app.screen
        await pilot.press("escape")
        app.save_tag(int(app.data.mutation_id[0]), "gardener", None)
        await settle(pilot)
        await pilot.press("f")
        dialog = app.screen
        assert isinstance(dialog, FilterScreen) and dialog is not first
        assert "gardener" in dialog.options.tags
        await pilot.press("escape")


async def test_detail_tag_and_copy(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_phenotype(pilot)
        await pilot.press("y")
        assert app.clipboard.startswith("L0.q[")
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        assert detail.detail is not None
        assert any(result.changed for result in detail.detail.results)
        assert detail.query("SideBySide")
        await pilot.press("y")
        assert app.clipboard == str(detail.query_one("#detail-mutations").get_row_at(0)[0])
        await pilot.press("Y")
        assert app.clipboard in {r.text for r in detail.detail.results if r.changed}
        await pilot.press("t")
        assert isinstance(app.screen, TagScreen)
        await pilot.press("tab", "tab", *"recheck", "enter")
        await settle(pilot)
        mutation_id = detail.detail.mutation_id
        assert queries.mutation_detail(db, 1, mutation_id).tags == {"writer": "recheck"}
        assert detail.detail.tags == {"writer": "recheck"}
        await pilot.press("t")
        app.screen.query_one("#tag-free").value = "odd-grammar"
        app.screen.query_one("#tag-free").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert set(queries.mutation_detail(db, 1, mutation_id).tags) == {"writer", "odd-grammar"}
        await pilot.press("T")
        assert isinstance(app.screen, UntagScreen)
        await pilot.press("enter")  # the first: writer
        await settle(pilot)
        assert set(queries.mutation_detail(db, 1, mutation_id).tags) == {"odd-grammar"}
        assert detail.detail.tags == {"odd-grammar": None}
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("f")
        app.screen.query_one("#tag").value = "odd-grammar"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert int(app.phenotypes.kept.sum()) == 1
    # kept across restarts
    again = ExplorerApp(db)
    async with again.run_test(size=SIZE) as pilot:
        await open_matrix(pilot)
        index = again.data.index_of(mutation_id)
        assert set(again.data.tags[index]) == {"odd-grammar"}


async def test_tag_key_in_the_grid_on_a_single_mutation_cell(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        await pilot.press("plus", "plus", "plus", "plus", "f")
        app.screen.query_one("#kind-max").value = True
        await pilot.press("ctrl+s", "t")
        assert isinstance(app.screen, TagScreen)
        await pilot.press("down", "enter")  # "poetic"
        await settle(pilot)
        positions = screen.cell_positions()
        kept = positions[app.phenotypes.kept[positions]]
        assert app.data.tags[int(kept[0])] == {"poetic": None}


async def open_writers(pilot) -> WritersScreen:
    """Screen list -> overview -> writers view."""
    await open_overview(pilot)
    await pilot.press("w")
    await settle(pilot)
    assert isinstance(pilot.app.screen, WritersScreen)
    return pilot.app.screen


async def test_writers_view(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        writers = await open_writers(pilot)
        groups = writers.writers.groups
        assert groups and groups[0].results >= groups[-1].results
        table = writers.query_one("#writers-table")
        assert table.get_row_at(0)[1] == groups[0].word
        sites = writers.query_one("#writers-sites")
        assert sites.row_count == len(groups[0].entries)
        assert any(str(sites.get_row_at(r)[6]) for r in range(sites.row_count))  # shared rows
        await pilot.press("y")  # from the words: every site of the word
        assert len(app.clipboard.splitlines()) == len(groups[0].entries)
        await pilot.press("enter", "down")  # down to the sites, then the second one
        await settle(pilot)
        assert sites.has_focus and writers.selected() == groups[0].entries[1]
        assert str(sites.get_row_at(1)[4]) not in ("", "…")  # its first words, loaded
        await pilot.press("y")
        assert app.clipboard == str(groups[0].entries[1].site)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MatrixScreen)
        site = groups[0].sites[1]
        assert app.data.matrices[app.screen.position].label == f"L{site.layer}.{site.matrix}"
        await pilot.press("escape", "escape", "escape")  # grid -> sites -> words -> overview
        assert isinstance(app.screen, OverviewScreen)


async def test_ctrl_r_lists_screens_that_arrived_and_drops_the_empty_line(db, tmp_path):
    """An empty database says so; once a screen is in it, ^r lists it and the line is gone."""
    import shutil

    from mutatui.store.database import initialize

    path = tmp_path / "empty.db"
    initialize(path)
    app = ExplorerApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        title = app.screen.query_one("#screen-list-title")
        assert "holds no screens yet" in str(title.render())
        shutil.copyfile(db, path)  # a screen arrives (written by another process)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.screen.query_one("#screen-table").row_count == 1
        assert str(title.render()) == "Screens (Enter opens one)"


async def test_esc_is_one_level_up_and_w_keeps_the_selected_word(db):
    """Writers -> a word's sites -> a grid, and back: the stack never grows past screen list,
    overview, writers, grid; `Esc` goes sites -> words -> overview; `w` from a grid opens the
    writers view on the word selected before."""
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        writers = await open_writers(pilot)
        second = writers.writers.groups[1]
        await pilot.press("down", "enter", "enter")  # the second word, its sites, a grid
        await settle(pilot)
        levels = [type(screen).__name__ for screen in app.screen_stack[1:]]
        assert levels == ["ScreenListScreen", "OverviewScreen", "WritersScreen", "MatrixScreen"]
        for _ in range(2):  # Esc, Enter on a site, Esc: one grid at a time, never a history
            await pilot.press("escape")
            await settle(pilot)
            assert app.screen is writers and writers.group.word == second.word
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, MatrixScreen) and len(app.screen_stack) == 5
        await pilot.press("w")  # from the grid: the writers view again, on the same word
        await settle(pilot)
        assert [type(screen).__name__ for screen in app.screen_stack[1:]] == levels[:3]
        again = app.screen
        assert again.group.word == second.word
        assert again.query_one("#writers-table").cursor_row == 1
        await pilot.press("enter")  # down to the sites; Esc goes back up to the words
        await pilot.press("escape")
        assert app.screen is again and again.query_one("#writers-table").has_focus
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("enter", "w")  # a grid from the overview, then w: Esc is the overview
        await settle(pilot)
        assert isinstance(app.screen, WritersScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen) and len(app.screen_stack) == 3


async def test_a_filter_hiding_a_writer_is_cleared_when_its_grid_opens(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        entry = (await open_writers(pilot)).writers.groups[0].entries[0]
        await pilot.press("escape")
        app.set_filter(Filter(first_word="no such word"))  # a filter of results, not mutations
        await pilot.press("w")  # the writers view lists the writers all the same
        await settle(pilot)
        assert app.screen.writers.groups[0].entries[0] == entry
        assert not app.phenotypes.count[entry.position]  # but the filter hides this one
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MatrixScreen)
        assert app.selection == Filter() and app.phenotypes.count[entry.position]
        assert f"the filter hid {entry.site}" in [n.message for n in app._notifications][-1]


async def test_help_theme_palette_and_quit(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = {binding_id: keys for keys, _does, binding_id in app.screen.rows}
        assert rows["matrix.zoom_in"] == "+,="
        assert rows["grid.left"] == "←,h"
        assert rows["app.help"] == "?"
        await pilot.press("escape")
        assert app.screen is screen
        theme = app.theme
        await pilot.press("ctrl+t")
        assert app.theme != theme
        await pilot.press("ctrl+t")
        assert app.theme == theme
        await pilot.press("ctrl+p")
        await pilot.press(*"Rearrange rows")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.rearranged
        await pilot.press("q")
    assert app.return_code == 0


def key_bar_text(app: ExplorerApp) -> str:
    return app.screen.query_one(KeyBar).render().plain


async def test_key_bar_follows_the_screen_and_a_click_presses_its_key(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert " ⏎ Open " in key_bar_text(app) and "Zoom in" not in key_bar_text(app)
        grid_screen = await open_matrix(pilot, "l", "l", "l", "l")
        shown = key_bar_text(app)
        assert shown.startswith(" esc Back  + Zoom in  - Zoom out ")
        assert shown.rstrip().endswith(" ? Help  q Quit ▏^p palette") and len(shown) == SIZE[0]
        grid = grid_of(app)
        fitted = grid.layout_data.bin_rows
        await pilot.click(KeyBar, offset=(shown.index("+ Zoom in"), 0))
        await settle(pilot)
        assert grid.layout_data.bin_rows < fitted  # the click pressed +
        await pilot.click(KeyBar, offset=(shown.index("esc"), 0))
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen) and grid_screen is not app.screen


def wheel(kind: type[events.MouseEvent], widget: MatrixGrid) -> events.MouseEvent:
    """One notch of the mouse wheel over the middle of `widget`."""
    x, y = widget.size.width // 2, widget.size.height // 2
    return kind(widget, x, y, 0, 0, 0, False, False, False, screen_x=x, screen_y=y)


async def test_mouse_wheel_scrolls_the_grid_and_its_cursor(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_matrix(pilot, "l", "l", "l", "l")
        await pilot.press("plus", "plus")  # single tiles, taller than the view
        grid = grid_of(app)
        await pilot.press("ctrl+home")
        assert grid.top == 0 and grid.cursor.row == 0
        grid.post_message(wheel(events.MouseScrollDown, grid))
        await pilot.pause()
        assert grid.top == 3 and grid.cursor.row == 3
        grid.post_message(wheel(events.MouseScrollUp, grid))
        await pilot.pause()
        assert grid.top == 0 and grid.cursor.row == 0


async def test_keys_remapped_from_a_config_file(db, tmp_path, monkeypatch):
    config = tmp_path / "keys.toml"
    config.write_text('[keys]\n"grid.left" = "a"\n"matrix.zoom_in" = "i"\n')
    monkeypatch.setenv("MUTATUI_KEYS", str(config))
    assert load_keymap() == {"grid.left": "a", "matrix.zoom_in": "i"}
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_matrix(pilot, "l", "l", "l", "l")
        grid = grid_of(app)
        fitted = grid.layout_data.bin_rows
        keys, _ = app.screen.query_one(KeyBar).shown()
        assert ("i", "Zoom in") in [(binding.key, binding.description) for binding, _ in keys]
        await pilot.press("i")
        assert grid.layout_data.bin_rows < fitted
        await pilot.press("l", "l", "a")
        assert grid.cursor.col == 1


async def test_a_bad_key_file_is_one_warning_not_a_crash(db, tmp_path, monkeypatch):
    config = tmp_path / "keys.toml"
    config.write_text("[keys\n")
    monkeypatch.setenv("MUTATUI_KEYS", str(config))
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ScreenListScreen)
        assert any("not valid TOML" in n.message for n in app._notifications)


async def test_a_failed_read_is_one_notification_and_the_app_keeps_running(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.load_screen(999)
        await pilot.pause()
        with contextlib.suppress(WorkerFailed):  # the failed worker re-raises here only
            await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("no screen 999" in n.message for n in app._notifications)
        assert app._loading is None  # polling is not stuck behind the failed read
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen) and app.data.summary.screen_id == 1


async def test_tags_and_notes_are_shown_as_typed_not_read_as_markup(db):
    """A tag or note holding markup-like text (`[/x]` would close no open style) is data: the
    detail head, the detail table, the untag list and the cell summary show it as typed."""
    tag, note = "odd[/x]", "see [b] and [/oops]"
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_phenotype(pilot)
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        await pilot.press("t")
        app.screen.query_one("#tag-free").value = tag
        app.screen.query_one("#tag-note").value = note
        app.screen.query_one("#tag-free").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.is_running and app.screen is detail
        head = detail.query_one("#detail-head").render()
        assert f"tags: {tag} ({note})" in str(head)
        await pilot.press("T")
        assert isinstance(app.screen, UntagScreen)
        await pilot.press("escape", "escape")
        await settle(pilot)
        assert app.screen is screen
        assert f"{tag} x1" in str(screen.query_one("#cell-summary").render())
        await pilot.press("g", *"L0.q[/x]", "enter")
        await settle(pilot)
        assert "L0.q[/x]" in str(app.screen.query_one("#goto-error").render())
        assert app.is_running


async def test_overview_of_a_sparse_screen_opens_on_a_tested_matrix(tiny, tiny_model_dir, tmp_path):
    """A dense-lines screen tests a few matrices: the cursor starts on the first of them, and
    Enter on an untested matrix says so instead of doing nothing."""
    from tiny_models import tiny_spec

    from mutatui.screening.runner import ScreenRun, run_screen
    from mutatui.screening.samplers import SiteList

    lm, _ = tiny
    db = tmp_path / "lines.db"
    spec = tiny_spec(
        tiny_model_dir,
        None,
        name="sparse",
        choice=None,
        layers=None,
        matrices=None,
        sites=SiteList(("L0.down[1,2]", "L2.q[3,4]")),
    )
    assert run_screen(spec, ScreenRun(db, batch_size=4), lambda _: lm).status == "complete"
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        heatmap = await open_overview(pilot)
        assert app.data.matrix_types == ["q", "down"]
        assert heatmap.selected == (0, "down")
        await pilot.press("h", "enter")
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen)
        assert [n.message for n in app._notifications][-1].startswith("L0.q was not tested")
        await pilot.press("l", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MatrixScreen)
        shape = app.data.matrices[app.screen.position]
        assert (shape.layer, shape.matrix) == (0, "down")


READ_ONLY_EXPLORER = """
import asyncio, sys
from mutatui.tui.app import ExplorerApp


async def tag_first(db):
    app = ExplorerApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.save_tag(int(app.data.mutation_id[0]), "writer", None)
        await app.workers.wait_for_complete()
        await pilot.pause()
        print(app.sub_title)
        print([n.message for n in app._notifications][-1])


async def tags_seen(db):
    app = ExplorerApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        print(app.data.tags)


asyncio.run(tag_first(sys.argv[1]))
asyncio.run(tags_seen(sys.argv[1]))
"""


def test_a_read_only_database_opens_for_browsing_and_says_so(tmp_path):
    """On a read-only file system (a bind mount made in a mount namespace of the test's own)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "screens.db"
    build_synthetic(db, SyntheticSpec(layers=1, seed=5))
    before = db.read_bytes()
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    command = ["unshare", "-rm", "sh", "-c", script, "sh", str(folder)]
    try:
        done = subprocess.run(
            [*command, sys.executable, "-c", READ_ONLY_EXPLORER, str(db)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")},
        )
    except FileNotFoundError:
        pytest.skip("no unshare here to make a read-only mount")
    if "mount" in done.stderr and done.returncode != 0:
        pytest.skip(f"no mount namespaces here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    title, notice, seen = done.stdout.strip().splitlines()[-3:]
    assert title == "screens.db (not written: tags go to a side database)"
    assert notice == "tagged writer"
    assert seen == "{0: {'writer': None}}"  # read back from the side database, overlaid
    assert list((tmp_path / "data" / "mutatui" / "side").glob("screens-*.db"))
    assert db.read_bytes() == before


@pytest.fixture
def element_db(tmp_path):
    """An element screen: 300 random elements per matrix, so a cell at the fit zoom holds
    none, one or several screened sites."""
    path = tmp_path / "elements.db"
    build_synthetic(path, SyntheticSpec(name="elements", layers=1, site=1, sites_per_matrix=300))
    return path


def cells_holding(screen: MatrixScreen, count: int) -> tuple[int, int]:
    """A displayed cell with `count` distinct screened sites."""
    layout, data = screen.layout_data, screen.data
    start = data.matrix_slices[screen.position].start
    for row in range(len(layout.row_order)):
        for col in range(len(layout.col_order)):
            members = layout.members(row, col) + start
            if len({str(data.site(int(p))) for p in members}) == count:
                return row, col
    raise AssertionError(f"no cell holds {count} sites")


async def test_x_runs_the_one_site_a_cell_holds_and_asks_when_it_holds_several(element_db):
    from mutatui.tui.screens.live import LiveScreen
    from mutatui.tui.screens.live_site import LiveSiteScreen
    from mutatui.tui.widgets.matrix_grid import MatrixGrid

    app = ExplorerApp(element_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        grid = screen.query_one(MatrixGrid)
        assert screen.layout_data.bin_rows > 1  # the fit zoom: a cell is a block
        grid.move_cursor(*cells_holding(screen, 1))
        (only,) = {str(app.data.site(int(p))) for p in screen.cell_positions()}
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, LiveScreen)
        assert app.screen.query_one("#live-site").value == only  # one element, not the block
        await pilot.press("escape")
        await settle(pilot)
        grid.move_cursor(*cells_holding(screen, 2))
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, LiveSiteScreen)
        sites = [site for _, site in app.screen.choices]
        assert len(sites) == 4  # the two screened sites, one element, the whole block
        block = str(screen.cell_site())
        assert sites[-1] == block and ":" in block
        await pilot.press("down", "down", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, LiveScreen)
        assert app.screen.query_one("#live-site").value == block


async def test_g_zooms_to_the_site_and_the_live_site_field_shows_it_whole(element_db):
    from mutatui.tui.screens.live import LiveScreen

    app = ExplorerApp(element_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        position = app.data.matrix_slices[screen.position].start + 7
        site = app.data.site(position)
        await pilot.press("g")
        await pilot.press(*str(site), "enter")
        await settle(pilot)
        assert (screen.layout_data.bin_rows, screen.layout_data.bin_cols) == (1, 1)
        assert str(screen.cell_site()) == str(site)
        block = "L0.down[480:512,1216:1232]"  # a block: 26 characters
        app.open_live(block)
        await settle(pilot)
        assert isinstance(app.screen, LiveScreen)
        field = app.screen.query_one("#live-site")
        assert field.value == block
        assert field.content_region.width > len(block)  # all of it, at 80x24


async def test_n_and_shift_n_walk_the_phenotypes_most_severe_first_across_matrices(db):
    from mutatui.tui.grid_data import phenotype_order

    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        order = phenotype_order(app.data, app.phenotypes)
        mine = order[app.data.matrix_index[order] == screen.position]
        assert len(mine) >= 3
        visited = []
        for _ in range(3):
            await pilot.press("n")
            await pilot.pause()
            visited.append(screen.last_phenotype)
            assert screen.last_phenotype in screen.cell_positions()
        worst = app.phenotypes.worst
        assert worst[visited[0]] == worst[mine].max()  # the most severe first
        assert [worst[v] for v in visited] == sorted((worst[v] for v in visited), reverse=True)
        await pilot.press("N")
        await pilot.pause()
        assert screen.last_phenotype in (visited[1], *screen.cell_positions())
        # from this matrix's last phenotype, n goes on to the next matrix's first
        screen.last_phenotype = int(mine[-1])
        screen.go_to_site(app.data.site(int(mine[-1])))
        await pilot.pause()
        before = screen.position
        await pilot.press("n")
        await pilot.pause()
        assert screen.position != before
        assert screen.last_phenotype == int(order[list(order).index(int(mine[-1])) + 1])
        assert any("on to " in n.message for n in app._notifications)


async def test_every_limit_says_so(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        await pilot.press("minus")
        await pilot.pause()
        assert any("the whole matrix already" in n.message for n in app._notifications)
        screen.go_to_site(app.data.site(app.data.matrix_slices[screen.position].start))
        await pilot.press("plus")
        await pilot.pause()
        assert any("the finest" in n.message for n in app._notifications)
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert any("no earlier layer" in n.message for n in app._notifications)


async def test_a_sparse_grid_opens_on_its_first_tested_cell(element_db):
    app = ExplorerApp(element_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        positions = screen.cell_positions()
        assert len(positions) and app.phenotypes.kept[positions].any()


BUNDLED = Path(__file__).resolve().parents[1] / "screens.db"


async def test_a_saturated_screen_opens_at_robust_changes_coloured_by_effect_and_says_so():
    """tiles-64 of the bundled database: 99.6% of tiles change the text; 7.5% robustly."""
    before = BUNDLED.stat().st_mtime_ns
    app = ExplorerApp(BUNDLED)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_screen_named(pilot, app, "tiles-64")
        assert app.selection == Filter(robust=True)
        assert status_line(app).startswith(" filter: robust ")  # first: never cut
        assert any("opened at robust changes (7.5%" in n.message for n in app._notifications)
        counted = app.phenotypes.kept & app.phenotypes.phenotypic
        assert 0 < counted.sum() < 0.1 * app.phenotypes.kept.sum()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MatrixScreen)
        assert app.screen.query_one(MatrixGrid).colour_mode == "effect"
        assert "by effect" in status_line(app)
        await pilot.press("V")  # K and V work in the grid too, on top of the opening filter
        assert app.selection == Filter(robust=True, min_severity=1)
        await pilot.press("K")
        assert app.selection.kinds == frozenset({"max"}) and app.selection.robust
        await pilot.press("F")
        assert not app.selection.active and "filter" not in status_line(app)
        await pilot.press("escape", "escape")
        await settle(pilot)
        await open_screen_named(pilot, app, "elements-random")
        assert app.data.summary.name == "elements-random"
        assert not app.selection.active  # not saturated: every change counts
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.query_one(MatrixGrid).colour_mode == "density"
    assert BUNDLED.stat().st_mtime_ns == before


async def test_the_filter_dialog_applies_on_enter_from_any_field_and_nothing_spills(db):
    from textual.widgets import Select

    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_overview(pilot)
        await pilot.press("f")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, FilterScreen)
        box = dialog.query_one("#kind-max")
        unchecked = str(box.render())
        await pilot.press("space")  # checked looks checked
        await pilot.pause()
        assert str(box.render()) != unchecked and "X" in str(box.render())
        assert "X" not in unchecked
        frame = dialog.query_one("#filter-dialog").region
        for widget in dialog.query("Label, Select, Input, TickBox, Button"):
            assert frame.contains_region(widget.region), widget
        labels = [str(label.render()) for label in dialog.query(".field-label")]
        assert labels == ["severity", "style", "prompt", "tag", "first word"]
        tag = dialog.query_one("#tag", Select)
        tag.focus()
        await pilot.press("enter")  # Enter on a closed dropdown: applies
        await pilot.pause()
        assert not isinstance(app.screen, FilterScreen)
        assert app.selection.kinds == frozenset({"max"})
        await pilot.press("f")
        await pilot.pause()
        tag = app.screen.query_one("#tag", Select)
        tag.focus()
        await pilot.press("space")  # opens the dropdown, which then takes Enter for its option
        await pilot.pause()
        assert tag.expanded
        overlay = tag.query_one("SelectOverlay").region
        assert app.screen.query_one("#filter-dialog").region.contains_region(overlay)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, FilterScreen) and tag.value != Select.NULL
        chosen = tag.value
        app.screen.query_one("#first-word").focus()
        await pilot.press("enter")  # from the text field too
        await pilot.pause()
        assert not isinstance(app.screen, FilterScreen) and app.selection.tag == chosen


@pytest.mark.parametrize("width", [80, 120, 160])
async def test_the_key_bar_never_cuts_help_and_quit_nor_any_key(db, width):
    app = ExplorerApp(db)
    async with app.run_test(size=(width, 30)) as pilot:
        await open_matrix(pilot)
        bar = app.screen.query_one(KeyBar)
        shown = key_bar_text(app)
        assert len(shown) == width and " ? Help  q Quit ▏^p palette" in shown
        keys, _ = bar.shown()
        drawn = [b for b, _ in keys if f" {app.get_key_display(b)} {b.description} " in shown]
        left = shown[: shown.index(" ? Help")].rstrip()
        unpinned = [binding for binding in drawn if binding.id not in PINNED]
        assert left.endswith(unpinned[-1].description)  # the last key drawn is whole


async def test_three_writers_are_triaged_in_a_few_keys_each(tmp_path):
    """On a copy of the bundled database: writers view, a word, its sites, tag, next."""
    import shutil

    db = tmp_path / "screens.db"
    shutil.copyfile(BUNDLED, db)
    app = ExplorerApp(db)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await open_screen_named(pilot, app, "tiles-64")
        keys = ["w", "enter"]  # the writers view; down to the first word's sites
        await pilot.press(*keys)
        await settle(pilot)
        writers = app.screen
        assert isinstance(writers, WritersScreen)
        entries = writers.group.entries
        assert len(entries) >= 3
        for number in range(3):
            per_site = ["t", "enter"]  # tag it (writer, the first choice) and move on
            await pilot.press(*per_site)
            await settle(pilot)
            keys += per_site
            mutation = int(app.data.mutation_id[entries[number].position])
            assert app.data.tags[entries[number].position] == {"writer": None}, mutation
        assert len(keys) <= 3 * 10
        sites = writers.query_one("#writers-sites")
        assert str(sites.get_row_at(0)[5]) == "writer"  # whole tag names
        assert writers.selected() == entries[3 if len(entries) > 3 else 2]
        await pilot.press("x")  # live mode on the selected site
        await settle(pilot)
        from mutatui.tui.screens.live import LiveScreen

        assert isinstance(app.screen, LiveScreen)
        assert app.screen.query_one("#live-site").value == str(writers.selected().site)
    assert BUNDLED.read_bytes() != db.read_bytes()  # the tags went into the copy


async def test_h_hides_the_writers_that_diverged_at_a_near_tie():
    """On the bundled database (read only): the writers view shows each writer's margin and
    `h` hides those under the robust margin, keeping every other writer; `h` again shows
    them all."""
    app = ExplorerApp(BUNDLED)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await open_screen_named(pilot, app, "tiles-64")
        await pilot.press("w")
        await settle(pilot)
        writers = app.screen
        assert isinstance(writers, WritersScreen)

        def entries() -> set[WriterSite]:
            return {entry for group in writers.writers.groups for entry in group.entries}

        everything = entries()
        near = {entry for entry in everything if entry.near_tie}
        assert near and near != everything
        assert all(entry.margin is not None for entry in everything)
        margins = writers.query_one("#writers-sites")
        shown = [str(margins.get_row_at(r)[3]) for r in range(margins.row_count)]
        assert shown == [f"{entry.margin:.2f}" for entry in writers.group.entries]
        await pilot.press("h")
        await settle(pilot)
        assert entries() == everything - near
        assert "near ties, margin < 1, hidden" in str(writers.query_one("#writers-status").render())
        await pilot.press("h")
        await settle(pilot)
        assert entries() == everything


async def test_the_bundled_database_and_a_read_only_copy_are_never_written(tmp_path, monkeypatch):
    """Tags and a live run from the explorer on the bundled screens.db and on a copy made
    read-only (file mode): both files stay byte for byte, the tags show from the side database
    and the live run is in the side live database, whose live screen the screen list shows with
    the file's own and opens, and which the site's detail names."""
    import shutil

    from mutatui.store.places import default_live_db, is_bundled, side_database, side_live_database
    from mutatui.tui.screens.live import LiveScreen

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    copy = tmp_path / "copy.db"
    shutil.copyfile(BUNDLED, copy)
    copy.chmod(0o444)
    assert is_bundled(BUNDLED) and not is_bundled(copy)
    original = BUNDLED.read_bytes()
    for db in (BUNDLED, copy):
        assert side_database(db) is not None
        app = ExplorerApp(db)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            assert "not written" in app.sub_title
            assert any(str(side_database(db)) in n.message for n in app._notifications)
            names = [summary.name for summary in app.screen.summaries]
            await open_screen_named(pilot, app, "elements-random")
            await pilot.press("enter")
            await settle(pilot)
            screen = app.screen
            await pilot.press("n")  # onto a phenotype: one screened element
            await settle(pilot)
            screen.go_to_site(
                app.data.site(screen.last_phenotype)
            )  # as `g` does: the cell is that site
            await settle(pilot)
            await pilot.press("t")  # max and min share the element: the detail opens
            await settle(pilot)
            assert isinstance(app.screen, DetailScreen)
            position = app.data.index_of(app.screen.detail.mutation_id)
            await pilot.press("t", "enter")
            await settle(pilot)
            assert app.data.tags[position] == {"writer": None}
            await pilot.press("escape")
            await settle(pilot)
            if db is copy:  # one live run is enough to show where runs go
                await pilot.press("x")
                await settle(pilot)
                live = app.screen
                assert isinstance(live, LiveScreen)
                live.query_one("#live-tokens").value = "4"
                await until(lambda live=live: live.session is not None, pilot, timeout=300)
                app.set_focus(None)
                await pilot.press("r")
                await until(lambda live=live: live.last_saved is not None, pilot, timeout=300)
                assert live.last_saved.db_path == side_live_database(copy)
                site = live.query_one("#live-site").value
                await pilot.press("escape")  # back to the grid: the site's detail names the run
                await settle(pilot)
                await pilot.press("t")
                await settle(pilot)
                assert isinstance(app.screen, DetailScreen) and str(app.screen.detail.site) == site
                line = app.screen.query_one("#detail-live")
                assert line.display and "live runs of this site: 1, newest first: " in str(
                    line.render()
                )
        again = ExplorerApp(db)
        async with again.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            listed = again.screen
            await open_screen_named(pilot, again, "elements-random")
            assert again.data.tags[position] == {"writer": None}  # overlaid from the side
            if db is copy:  # the live run's screen is listed after the file's, and opens
                kinds = [str(cell) for cell in listed.query_one("#screen-table").get_column_at(7)]
                assert kinds[len(names) :] == ["live (side)"]
                await pilot.press("escape")
                await settle(pilot)
                await open_screen_named(pilot, again, listed.summaries[len(names)].name)
                assert again.screen_db == side_live_database(copy)
                assert again.data.summary.kind == "live" and len(again.data.mutation_id) == 1
                assert str(again.data.site(0)) == site
                assert again.data.tags == {}  # the file's tags stay on the file's screens
    assert BUNDLED.read_bytes() == original and copy.read_bytes() == original
    assert side_live_database(copy).exists() and not default_live_db().exists()


async def until(condition, pilot, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def open_screen_named(pilot, app: ExplorerApp, name: str) -> None:
    """From the screen list, as a user would: up or down to the screen's row, then Enter."""
    from textual.widgets import DataTable

    listed = app.screen
    steps = [s.name for s in listed.summaries].index(name) - listed.query_one(DataTable).cursor_row
    await pilot.press(*(["down" if steps > 0 else "up"] * abs(steps)), "enter")
    await settle(pilot)


def status_line(app: ExplorerApp) -> str:
    """The open view's status line (overview or grid), as drawn."""
    return str(app.screen.query_one(".status").render())


async def test_a_loaded_screen_is_kept_out_of_the_collector_until_the_app_ends(db):
    import gc

    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_overview(pilot)
        assert app.data is not None and gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_the_first_live_run_of_a_fresh_data_directory_is_saved(tmp_path, monkeypatch):
    """No tag made before: the first live run from a read-only database goes to its side live
    database, whose folder in the user's (empty) data directory is made for it."""
    import shutil

    from mutatui.store.places import side_live_database
    from mutatui.tui.screens.live import LiveScreen

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "fresh"))
    copy = tmp_path / "copy.db"
    shutil.copyfile(BUNDLED, copy)
    copy.chmod(0o444)
    app = ExplorerApp(copy)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert not (tmp_path / "fresh").exists()
        await open_screen_named(pilot, app, "elements-random")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        app.screen.go_to_site(app.data.site(app.screen.last_phenotype))
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        live = app.screen
        assert isinstance(live, LiveScreen)
        live.query_one("#live-tokens").value = "4"
        await until(lambda: live.session is not None, pilot, timeout=300)
        app.set_focus(None)
        await pilot.press("r")
        await until(lambda: live.last_saved is not None, pilot, timeout=300)
    assert live.last_saved.db_path == side_live_database(copy)
    assert side_live_database(copy).is_file()
    with connect(side_live_database(copy), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM live_runs").fetchone()[0] == 1
