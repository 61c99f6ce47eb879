"""The grid stays readable without truecolor: ssh often drops COLORTERM, and the terminal then
gets 256 colours. Every cell colour must survive that downgrade unchanged, and the cell classes
that tell things apart (kinds, density levels, severities) must stay distinct, in both themes."""

from __future__ import annotations

import pytest
from rich.color import ColorSystem

from mutatui.store.synthetic import SyntheticSpec, build_synthetic
from mutatui.tui.app import THEMES, ExplorerApp
from mutatui.tui.widgets.matrix_grid import MatrixGrid

pytestmark = pytest.mark.anyio

GROUPS = [
    ("max", "min", "both"),
    tuple(f"density-{level}" for level in range(1, 6)),
    tuple(f"severity-{level}" for level in range(1, 4)),
]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize("theme", THEMES)
async def test_cell_colours_survive_256_colours(tmp_path, theme):
    path = tmp_path / "screens.db"
    build_synthetic(path, SyntheticSpec(layers=1, seed=2))
    app = ExplorerApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = theme
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await pilot.pause()
        grid = app.screen.query_one(MatrixGrid)
        for group in GROUPS:
            downgraded = []
            for name in group:
                style = grid.get_component_rich_style(f"matrix-grid--{name}", partial=False)
                background = style.bgcolor
                eight_bit = background.downgrade(ColorSystem.EIGHT_BIT)
                assert eight_bit.get_truecolor() == background.get_truecolor(), name
                downgraded.append(eight_bit.number)
            assert len(set(downgraded)) == len(group), group
