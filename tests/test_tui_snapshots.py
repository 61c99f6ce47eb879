"""SVG snapshots of the explorer's main views (pytest-textual-snapshot), on a small synthetic
database with a fixed seed and fixed timestamps. Update with `pytest --snapshot-update` after
a deliberate change, and look at the SVGs before committing them."""

from __future__ import annotations

import pytest

from mutatui.store.synthetic import SyntheticSpec, build_synthetic
from mutatui.tui.app import ExplorerApp

SIZE = (80, 24)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("snapshots") / "screens.db"
    build_synthetic(path, SyntheticSpec(layers=3, seed=11))
    return path


def steps(*keys: str):
    """Wait for workers around every key press, so the picture is the settled one."""

    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()

    return run_before


GRID = ("enter", "l", "l", "l", "l", "enter")

VIEWS = {
    "screen_list": (),
    "overview": ("enter",),
    "grid": GRID,
    "grid_zoomed_cursor": (*GRID, "plus", "j", "j", "l", "l", "l"),
    "grid_rearranged_overlay": (*GRID, "r", "c"),
    "grid_severity": (*GRID, "s"),
    "detail": (*GRID, "g", *"L0.gate[192,0]", "enter", "enter"),
    "writers": ("enter", "w"),
    "filter_dialog": (*GRID, "f"),
    "help": (*GRID, "question_mark"),
    "light_theme_grid": (*GRID, "ctrl+t"),
}


@pytest.mark.parametrize("view", list(VIEWS))
def test_view(snap_compare, db, view):
    assert snap_compare(ExplorerApp(db), terminal_size=SIZE, run_before=steps(*VIEWS[view]))
