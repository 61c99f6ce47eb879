"""Effect sizes in the explorer: the grid coloured by effect (`s`), the cell line and the
detail showing them, a filter by minimum effect, and the baseline's fragile steps marked."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import tiny_spec

from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.tui import grid_data
from mutatui.tui.app import ExplorerApp
from mutatui.tui.grid_data import Filter
from mutatui.tui.screens import detail as detail_module
from mutatui.tui.screens.detail import DetailScreen
from mutatui.tui.screens.filters import FilterScreen
from mutatui.tui.screens.matrix import MatrixScreen
from mutatui.tui.widgets.matrix_grid import MatrixGrid
from mutatui.tui.widgets.side_by_side import SideBySide

pytestmark = pytest.mark.anyio
SIZE = (100, 30)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def effects_db(tiny, tiny_model_dir, tmp_path_factory):
    db = tmp_path_factory.mktemp("tui-effects") / "effects.db"
    spec = tiny_spec(tiny_model_dir, None, choice=None, effects=True)
    run_screen(spec, ScreenRun(db, batch_size=8), lambda _model: tiny[0])
    return db


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_grid(pilot) -> MatrixScreen:
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, MatrixScreen)
    return pilot.app.screen


async def test_the_grid_colours_by_effect_and_the_cell_line_shows_it(effects_db):
    app = ExplorerApp(effects_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_grid(pilot)
        assert app.data.effect is not None and np.isfinite(app.data.effect).all()
        grid = screen.query_one(MatrixGrid)
        await pilot.press("s", "s")
        assert grid.colour_mode == "effect"
        assert "by effect" in str(screen.query_one("#matrix-status").render())
        layout = grid.layout_data
        line = layout.line(0)
        members = layout.members(0, 0)
        assert line.effect[0] == pytest.approx(layout.effect[members].max())
        assert "effect up to" in str(screen.query_one("#cell-summary").render())
        await pilot.press("s")
        assert grid.colour_mode == "density"


async def test_a_minimum_effect_filters_the_mutations(effects_db):
    app = ExplorerApp(effects_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_grid(pilot)
        effects = app.data.effect
        level = next(v for v in grid_data.EFFECT_LEVELS if 0 < (effects >= v).sum() < len(effects))
        app.set_filter(Filter(min_effect=level))
        await settle(pilot)
        assert (app.phenotypes.kept == (effects >= level)).all()
        assert f"effect>={level:g}" in app.selection.describe()
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FilterScreen)
        assert app.screen.query_one("#effect").value == level


async def test_shift_e_raises_the_minimum_effect_a_decade_at_a_time(effects_db):
    """One key from the grid: the screen's lowest level, then each decade, then no filter."""
    app = ExplorerApp(effects_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_grid(pilot)
        levels = grid_data.effect_levels(app.data.noise)
        seen = []
        for _ in range(len(levels) + 1):
            await pilot.press("E")
            await settle(pilot)
            seen.append(app.selection.min_effect)
        assert seen == [*levels, 0.0]
        await pilot.press("E")
        await settle(pilot)
        kept = app.phenotypes.kept
        floor = grid_data.kl_floor(app.data.noise)
        assert (kept == (app.data.effect >= levels[0]) & (app.data.effect > floor)).all()


async def test_the_detail_shows_effect_sizes_and_marks_fragile_steps(effects_db, monkeypatch):
    app = ExplorerApp(effects_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_grid(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        detail = app.screen.detail
        result = detail.results[0]
        assert result.effect is not None and result.margins
        # fragile: below the median margin of this baseline, so some steps are and some not
        median = float(np.median(result.margins))
        monkeypatch.setattr(detail_module, "ROBUST_MARGIN", median)
        steps = detail_module.fragile_steps(result)
        assert 0 < len(steps) < len(result.margins)
        app.screen.load_detail(app.data.summary.screen_id, detail.mutation_id)
        await settle(pilot)
        grades = " ".join(str(w.render()) for w in app.screen.query(".grade"))
        assert "KL " in grades and "fragile steps: " + ", ".join(map(str, steps)) in grades
        pane = app.screen.query(SideBySide).first()
        assert len(pane.fragile) == len([s for s in steps if s < len(result.baseline_tokens)])
        for start, end in pane.fragile:
            assert 0 <= start <= end <= len(pane.baseline)


async def test_a_robust_only_filter_keeps_changes_away_from_fragile_steps(effects_db):
    import duckdb

    with duckdb.connect(str(effects_db), read_only=True) as connection:
        robust = dict(
            connection.execute(
                "SELECT r.mutation_id, count(*) FILTER (WHERE e.diverge_margin >= 1) "
                "FROM results r JOIN effects e USING (screen_id, mutation_id, probe_id) "
                "WHERE r.changed GROUP BY ALL"
            ).fetchall()
        )
    app = ExplorerApp(effects_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_grid(pilot)
        changed = int(app.phenotypes.count.sum())
        app.set_filter(Filter(robust=True))
        await settle(pilot)
        counts = {int(app.data.mutation_id[p]): int(c) for p, c in enumerate(app.phenotypes.count)}
        assert counts == {m: robust.get(m, 0) for m in counts}
        assert 0 < sum(counts.values()) < changed
        await pilot.press("f")
        await settle(pilot)
        assert app.screen.query_one("#robust").value is True
