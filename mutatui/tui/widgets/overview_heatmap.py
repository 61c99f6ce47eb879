"""The overview: layers down, matrix types across, max and min phenotype counts side by side.

Drawn with the Line API like the grid: line 0 names the matrix types, every other line is one
layer, and each matrix type takes two cells (max, then min) shaded by count.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

LABEL = 5
CELL = 4
GROUP = 2 * CELL + 1
HEAT_LEVELS = 5


def short_count(value: int) -> str:
    if value < 1000:
        return str(value)
    if value < 10_000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value // 1000}k" if value < 1_000_000 else f"{value // 1_000_000}M"


def first_present(present: np.ndarray) -> tuple[int, int]:
    """The first (layer, type) cell the screen tested, row by row: a dense-lines screen tests
    a few matrices, and the cursor should not open on an empty corner."""
    row, col = np.argwhere(present)[0]
    return int(row), int(col)


class OverviewHeatmap(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("left,h", "move(0,-1)", "Left", show=False, id="overview.left"),
        Binding("right,l", "move(0,1)", "Right", show=False, id="overview.right"),
        Binding("up,k", "move(-1,0)", "Up", show=False, id="overview.up"),
        Binding("down,j", "move(1,0)", "Down", show=False, id="overview.down"),
        Binding("enter", "open", "Open matrix", id="overview.open"),
    ]

    COMPONENT_CLASSES = {
        "overview-heatmap--zero",
        "overview-heatmap--heat-1",
        "overview-heatmap--heat-2",
        "overview-heatmap--heat-3",
        "overview-heatmap--heat-4",
        "overview-heatmap--heat-5",
        "overview-heatmap--absent",
        "overview-heatmap--label",
        "overview-heatmap--cursor",
    }

    DEFAULT_CSS = """
    OverviewHeatmap { scrollbar-size-horizontal: 0; }
    """

    class Opened(Message):
        def __init__(self, layer: int, matrix: str) -> None:
            super().__init__()
            self.layer = layer
            self.matrix = matrix

    class Moved(Message):
        def __init__(self, layer: int, matrix: str) -> None:
            super().__init__()
            self.layer = layer
            self.matrix = matrix

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.layer_ids: list[int] = []
        self.type_names: list[str] = []
        self.max_counts = np.zeros((0, 0), dtype=np.int64)
        self.min_counts = np.zeros((0, 0), dtype=np.int64)
        self.present = np.zeros((0, 0), dtype=bool)
        self.shades: tuple[np.ndarray, np.ndarray] | None = None
        """Per cell, the share (0..1) that sets its heat, where not its count's."""
        self.cursor = (0, 0)

    def show(
        self,
        layers: list[int],
        types: list[str],
        max_counts: np.ndarray,
        min_counts: np.ndarray,
        present: np.ndarray,
        shades: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Counts per (layer, type), left and right cell, shaded by the count against the
        largest or by `shades` (shares 0..1: a published screen's NSMs per tile and kind)."""
        self.layer_ids, self.type_names = layers, types
        self.max_counts, self.min_counts, self.present = max_counts, min_counts, present
        self.shades = shades
        self.virtual_size = Size(LABEL + GROUP * len(types), 1 + len(layers))
        row, col = self.cursor
        self.cursor = (min(row, max(len(layers) - 1, 0)), min(col, max(len(types) - 1, 0)))
        self.refresh()

    def select(self, layer: int, matrix: str) -> None:
        if layer in self.layer_ids and matrix in self.type_names:
            self.cursor = (self.layer_ids.index(layer), self.type_names.index(matrix))
            self.scroll_to_region(Region(0, self.cursor[0] + 1, 1, 1), animate=False)
            self.refresh()

    @property
    def selected(self) -> tuple[int, str] | None:
        if not self.layer_ids or not self.type_names:
            return None
        return self.layer_ids[self.cursor[0]], self.type_names[self.cursor[1]]

    def action_move(self, rows: int, cols: int) -> None:
        if not self.layer_ids:
            return
        old_row = self.cursor[0]
        row = min(max(self.cursor[0] + rows, 0), len(self.layer_ids) - 1)
        col = min(max(self.cursor[1] + cols, 0), len(self.type_names) - 1)
        self.cursor = (row, col)
        top = round(self.scroll_y)
        visible = max(self.size.height - 1, 1)
        if row < top or row >= top + visible:
            self.scroll_to(y=row if row < top else row - visible + 1, animate=False, immediate=True)
            self.refresh()
        else:
            for changed in {old_row, row}:
                self.refresh(Region(0, changed - top + 1, self.size.width, 1))
        selected = self.selected
        if selected:
            self.post_message(self.Moved(*selected))

    def action_open(self) -> None:
        selected = self.selected
        if selected:
            self.post_message(self.Opened(*selected))

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"overview-heatmap--{name}", partial=False)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        label = self._style("label")
        left = round(self.scroll_x)
        if y == 0:
            text = " " * LABEL + "".join(
                f"{name[: GROUP - 1]:^{2 * CELL}} " for name in self.type_names
            )
            sub = Strip([Segment(text, label)])
            return sub.crop(left, left + width).adjust_cell_length(width, self.rich_style)
        row = round(self.scroll_y) + y - 1
        if row >= len(self.layer_ids):
            return Strip.blank(width, self.rich_style)
        peak = max(int(self.max_counts.max(initial=0)), int(self.min_counts.max(initial=0)), 1)
        segments = [Segment(f"L{self.layer_ids[row]:<{LABEL - 1}}", label)]
        for col in range(len(self.type_names)):
            for side, counts in enumerate((self.max_counts, self.min_counts)):
                value = int(counts[row, col])
                share = value / peak if self.shades is None else float(self.shades[side][row, col])
                if not self.present[row, col]:
                    name, text = "absent", ""
                elif value == 0:
                    name, text = "zero", "."
                else:
                    level = min(HEAT_LEVELS, max(1, int(np.ceil(share * HEAT_LEVELS))))
                    name, text = f"heat-{level}", short_count(value)
                style = self._style(name)
                if (row, col) == self.cursor:
                    style = style + self._style("cursor")
                segments.append(Segment(f"{text:>{CELL - 1}} ", style))
            segments.append(Segment(" ", self.rich_style))
        strip = Strip(segments)
        return strip.crop(left, left + width).adjust_cell_length(width, self.rich_style)
