"""The explorer's guided layers driven with Pilot: the predicted layer under the measured
phenotypes (`p`) and the jump to super weights (`S`), on a real DuckDB file holding a synthetic
screen shaped like the tiny model and a real prediction of the tiny model."""

from __future__ import annotations

import pytest
from test_tui_app import open_matrix, open_screen_named, settle
from textual.widgets import OptionList

from mutatui.engine.decoding import Decoding
from mutatui.guided.predict import baseline_probe, predict
from mutatui.store.guided import (
    SuperweightResult,
    predicted_layer,
    save_prediction,
    save_superweights,
)
from mutatui.store.synthetic import SyntheticSpec, build_synthetic
from mutatui.tui.app import ExplorerApp
from mutatui.tui.screens.superweights import SuperweightScreen
from mutatui.tui.widgets.matrix_grid import (
    GLYPH_TESTED,
    GLYPH_UNTESTED,
    GLYPHS,
    HEADER,
    MARGIN,
    MatrixGrid,
)

SIZE = (100, 30)
TILE = 8
PREDICTED_BACKGROUNDS = {1: "#3a3a3a", 2: "#5f5f87", 3: "#8787af", 4: "#afafd7"}
"""The predicted-level backgrounds of app.tcss."""

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def tiny_shaped_screen(path) -> None:
    """A 4x4-block screen of a model shaped like the tiny Llama (3 layers, hidden 32)."""
    build_synthetic(
        path,
        SyntheticSpec(model="tiny", layers=3, hidden=32, intermediate=64, kv=32, site=4, seed=5),
    )


@pytest.fixture(scope="module")
def tiny_prediction(tiny):
    lm, catalog = tiny
    probes = [baseline_probe(lm, catalog, "the cat sat", Decoding(max_new_tokens=8))]
    return probes, predict(lm, catalog, probes, tile_size=TILE, top_k=20)


@pytest.fixture
def db(tmp_path, tiny_prediction):
    path = tmp_path / "guided.db"
    tiny_shaped_screen(path)
    probes, maps = tiny_prediction
    save_prediction(
        path,
        name=None,
        model="tiny",
        probes=probes,
        decoding="greedy",
        max_new_tokens=8,
        tile_size=TILE,
        top_k=20,
        elapsed_seconds=1.0,
        maps=maps,
    )
    return path


def rendered(grid: MatrixGrid) -> list[list[tuple[str, str | None]]]:
    """Each grid line's cells as (character, background colour hex), read from the strips the
    widget renders."""
    lines = []
    for y in range(HEADER, HEADER + grid.layout_data.rows):
        chars = [
            (char, segment.style.bgcolor.get_truecolor().hex if segment.style.bgcolor else None)
            for segment in grid.render_line(y)
            for char in segment.text
        ]
        cells = chars[MARGIN :: grid.cell_width][: grid.layout_data.cols]
        lines.append(cells)
    return lines


async def test_predicted_layer_shades_quiet_cells_only(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot, "j")  # layer 1, first matrix
        grid = screen.query_one(MatrixGrid)
        shape = app.data.matrices[screen.position]
        before = rendered(grid)
        await pilot.press("p")
        await settle(pilot)
        assert screen.show_predicted and screen.predicted.kind == "max"
        after = rendered(grid)
        assert [[c for c, _ in line] for line in after] == [[c for c, _ in line] for line in before]
        assert after != before
        expected = predicted_layer(db, shape.layer, shape.matrix, "max")
        quiet = {GLYPHS[GLYPH_UNTESTED], GLYPHS[GLYPH_TESTED]}
        shaded = 0
        for row, (line_before, line_after) in enumerate(zip(before, after, strict=True)):
            for col, ((char, old), (_, new)) in enumerate(
                zip(line_before, line_after, strict=True)
            ):
                if (row, col) == (grid.cursor.row, grid.cursor.col):
                    continue
                level = expected.level(*grid.layout_data.cell_bounds(row, col))
                if char in quiet and level > 0:
                    assert new == PREDICTED_BACKGROUNDS[level], (row, col, level)
                    shaded += 1
                else:
                    assert new == old, (row, col)
        assert shaded > 0
        assert "predicted max" in str(screen.query_one("#matrix-status").render())
        await pilot.press("p")
        await settle(pilot)
        assert rendered(grid) == before


async def test_predicted_layer_follows_a_min_filter_and_the_matrix(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        await pilot.press("p")
        await settle(pilot)
        shape = app.data.matrices[screen.position]
        grid = screen.query_one(MatrixGrid)
        assert grid.predicted is screen.predicted.layers[(shape.layer, shape.matrix)]
        await pilot.press("K", "K")  # kind filter: max, then min
        await settle(pilot)
        assert screen.predicted.kind == "min"
        await pilot.press("m")
        await settle(pilot)
        shape = app.data.matrices[screen.position]
        assert grid.predicted is screen.predicted.layers[(shape.layer, shape.matrix)]


async def test_no_prediction_is_said_once(tmp_path):
    path = tmp_path / "plain.db"
    tiny_shaped_screen(path)
    app = ExplorerApp(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        before = rendered(screen.query_one(MatrixGrid))
        await pilot.press("p")
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert len([m for m in messages if m.startswith("no prediction for tiny")]) == 1
        assert "mutatui predict --model tiny" in messages[-1]
        assert not screen.show_predicted
        assert rendered(screen.query_one(MatrixGrid)) == before


def superweight(rank: int, layer: int, row: int, col: int) -> SuperweightResult:
    return SuperweightResult(
        rank, layer, "down", row, col, 9.5, 400.0, 3.0, 55.0 - rank, 0, 80.0, True, 2, "x"
    )


async def test_superweight_jump_lands_the_cursor_on_the_site(db):
    save_superweights(
        db,
        model="tiny",
        probe_text="p",
        prompt="q",
        decoding="greedy",
        max_new_tokens=8,
        baseline_perplexity=9.0,
        baseline_text="y",
        results=[superweight(0, 2, 21, 45), superweight(1, 7, 1, 1)],
    )
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_matrix(pilot)
        await pilot.press("S")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, SuperweightScreen)
        options = dialog.query_one(OptionList)
        assert options.option_count == 2
        assert "spike 55.0x" in str(options.get_option_at_index(0).prompt)
        options.highlighted = 0
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        shape = app.data.matrices[screen.position]
        assert (shape.layer, shape.matrix) == (2, "down")
        grid = screen.query_one(MatrixGrid)
        row0, row1, col0, col1 = screen.layout_data.cell_bounds(grid.cursor.row, grid.cursor.col)
        assert row0 <= 21 < row1 and col0 <= 45 < col1
        await pilot.press("S")
        await settle(pilot)
        app.screen.query_one(OptionList).highlighted = 1
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        assert any(n.message.startswith("no matrix L7.down") for n in app._notifications)
        assert (shape.layer, shape.matrix) == (2, "down")


async def test_s_and_p_lead_somewhere_on_the_bundled_database():
    """What a newcomer opens holds SmolLM2's super-weight run and a prediction."""
    from test_tui_app import BUNDLED

    app = ExplorerApp(BUNDLED)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_screen_named(pilot, app, "tiles-64")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        await pilot.press("p")
        await settle(pilot)
        assert screen.show_predicted and screen.predicted is not None
        await pilot.press("S")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, SuperweightScreen)
        first = str(dialog.query_one(OptionList).get_option_at_index(0).prompt)
        assert "L11.down[507,1229]" in first  # the super weight, found on the bundled data
        await pilot.press("enter")
        await settle(pilot)
        shape = app.data.matrices[screen.position]
        assert (shape.layer, shape.matrix) == (11, "down")
