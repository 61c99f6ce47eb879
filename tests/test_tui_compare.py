"""Two screens side by side from the screen list (`c` on one, `c` on another): a computed screen
of two layers next to a published screen of 32, on tenths of relative depth, the published side
stepping through its experiments; screens of the same depth compare layer by layer."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_fixtures import FixtureScreen
from paper_fixtures import write_paper
from test_tui_app import SIZE, settle

from mutatui.cli import main
from mutatui.tui.app import ExplorerApp
from mutatui.tui.compare_data import DEPTH_ROWS
from mutatui.tui.screens.compare import CompareScreen
from mutatui.tui.screens.screen_list import ScreenListScreen
from mutatui.tui.widgets.depth_table import DepthTable, heat_level

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def db(tmp_path):
    """A computed tile screen (layers 0 and 1: q of 4x4 tiles, every L0 max tile of row 1 a
    phenotype; gate of 8x4, one L1 min tile) next to the imported paper fixture (32 layers)."""
    path = tmp_path / "both.db"
    screen = FixtureScreen(name="tiles")
    for layer in range(2):
        screen.matrix(layer, "q", 4, 4).matrix(layer, "gate", 8, 4)
    for col in range(4):
        screen.hit(0, "q", 1, col, "max")
    screen.hit(1, "gate", 2, 3, "min")
    screen.write(path)
    assert main(["import-paper", str(write_paper(tmp_path / "paper")), "--db", str(path)]) == 0
    return path


async def compare(pilot, first: str, second: str) -> CompareScreen:
    await settle(pilot)
    assert isinstance(pilot.app.screen, ScreenListScreen)
    names = [s.name for s in pilot.app.screen.summaries]
    for name in (first, second):
        await pilot.press(*["up"] * len(names), *["down"] * names.index(name), "c")
    await settle(pilot)
    assert isinstance(pilot.app.screen, CompareScreen)
    return pilot.app.screen


def band_of(label: str, profile) -> int:
    return profile.rows.index(label)


async def test_a_shallow_screen_and_a_published_one_meet_on_relative_depth(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        view = await compare(pilot, "tiles", "hu2024-llama2-7b")
        left, right = view.profiles
        assert len(left.rows) == len(right.rows) == DEPTH_ROWS
        # two layers: L0's middle at 25% of the stack, L1's at 75%
        q = left.types.index("q")
        assert left.rate[band_of("20-30%", left), q] == pytest.approx(4 / 32)  # 4 of 16 tiles x 2
        assert np.isnan(left.rate[band_of("0-10%", left), q])
        gate = left.types.index("gate")
        assert left.rate[band_of("70-80%", left), gate] == pytest.approx(1 / 64)
        # the paper's fixture opens on Drosophila: L0.q 5 NSMs, in the band of layers 0-2
        assert "Drosophila" in right.title
        q = right.types.index("q")
        assert right.rate[0, q] == pytest.approx(5 / (3 * 64 * 64 * 3))
        assert "tenths of relative depth" in str(view.query_one("#compare-status").render())
        await pilot.press("e")
        assert "Mmlu21" in view.profiles[1].title
        tables = view.query(DepthTable)
        assert len(tables) == 2


async def test_the_same_screen_twice_unmarks_and_equal_depths_compare_by_layer(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        names = [s.name for s in pilot.app.screen.summaries]
        first = names.index("hu2024-llama2-7b")
        await pilot.press(*["down"] * first, "c", "c")
        assert pilot.app.screen.marked is None
        view = await compare(pilot, "hu2024-llama2-7b", "hu2024-zephyr")
        left, right = view.profiles
        assert left.rows == right.rows == [f"L{layer}" for layer in range(32)]
        assert "layer by layer" in str(view.query_one("#compare-status").render())
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, ScreenListScreen)


def test_heat_levels_follow_the_rate():
    assert [heat_level(r) for r in (0.0, 0.005, 0.01, 0.3, 0.9)] == [0, 0, 1, 3, 5]
    assert heat_level(float("nan")) == -1
