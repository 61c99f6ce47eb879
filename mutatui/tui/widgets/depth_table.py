"""One screen's rates per depth row and matrix type, as a table shaded like the overview."""

from __future__ import annotations

import numpy as np
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from mutatui.tui.compare_data import DepthProfile

RATE_LEVELS = (0.01, 0.05, 0.2, 0.5, 0.8)
"""A rate at or above the k-th level takes heat k+1 (the overview's palette); below the first,
none."""


def heat_level(rate: float) -> int:
    """0 (below 1%) to 5 (80% and above); -1 where nothing was tested."""
    if np.isnan(rate):
        return -1
    return int(np.searchsorted(RATE_LEVELS, rate, side="right"))


class DepthTable(Static):
    COMPONENT_CLASSES = {
        "depth-table--absent",
        "depth-table--heat-1",
        "depth-table--heat-2",
        "depth-table--heat-3",
        "depth-table--heat-4",
        "depth-table--heat-5",
    }

    def show(self, profile: DepthProfile) -> None:
        table = Table(title=profile.title, caption=profile.measure)
        table.add_column("depth", no_wrap=True)
        for name in profile.types:
            table.add_column(name, justify="right", no_wrap=True)
        for label, rates in zip(profile.rows, profile.rate, strict=True):
            table.add_row(label, *(self._cell(float(rate)) for rate in rates))
        self.update(table)

    def _cell(self, rate: float) -> Text:
        level = heat_level(rate)
        if level < 0:
            return Text("-", style=self.get_component_rich_style("depth-table--absent"))
        style = self.get_component_rich_style(f"depth-table--heat-{level}") if level else ""
        return Text(f"{rate:.1%}", style=style)
