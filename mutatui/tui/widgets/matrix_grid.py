"""The matrix grid: one matrix binned to the space available, drawn with the Line API.

Line 0 is the column marginal bar and the first `MARGIN` cells of every line the row marginal
bar; both stay put while the grid scrolls. The grid keeps its own viewport (`top`, the first
displayed bin row, and `left`, the first displayed bin column) instead of being a ScrollView:
a zoom then changes two integers and repaints, without the virtual-size and scrollbar
relayout a ScrollView does on every change of its content. Each cell is one character: ` ` untested, `.` tested without a phenotype, `+` a max
phenotype, `-` a min phenotype, `#` both, `o` another kind (zero or a value); its colour is the
phenotype density of its bin, or the worst severity, or the largest effect size of its
mutations (changed or not, in decades from the noise floor: `effect_levels`), or (complementarity) which kinds hit.
With a predicted layer set (`set_predicted`), cells without a measured phenotype are shaded by
the prediction's level for the coordinates they cover: measured phenotypes are drawn over it.
Nothing here touches the database: the layout arrives computed, lines are cached, and a cursor
move refreshes two lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
from textual.events import MouseScrollDown, MouseScrollUp
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from mutatui.guided.layer import LEVELS, PredictedLayer
from mutatui.tui.grid_data import CellLine, MatrixLayout

MARGIN = 5
HEADER = 1
BARS = " ▁▂▃▄▅▆▇█"
ROW_BARS = " ▏▎▍▌▋▊▉█"
DENSITY_LEVELS = 5
COLOUR_MODES = ("density", "severity", "effect")
MAX_CELL_WIDTH = 3

GLYPHS = (" ", ".", "+", "-", "#", "o")
GLYPH_UNTESTED, GLYPH_TESTED, GLYPH_MAX, GLYPH_MIN, GLYPH_BOTH, GLYPH_OTHER = range(6)
STYLE_NAMES = (
    "untested",
    "tested",
    "max",
    "min",
    "both",
    *(f"density-{level}" for level in range(1, DENSITY_LEVELS + 1)),
    "severity-1",
    "severity-2",
    "severity-3",
    *(f"predicted-{level}" for level in range(1, LEVELS)),
)
STYLE_UNTESTED, STYLE_TESTED, STYLE_MAX, STYLE_MIN, STYLE_BOTH = range(5)
STYLE_DENSITY = 5
STYLE_SEVERITY = STYLE_DENSITY + DENSITY_LEVELS
STYLE_PREDICTED = STYLE_SEVERITY + 3


@dataclass(frozen=True)
class CellPosition:
    row: int
    col: int


class MatrixGrid(Widget, can_focus=True):
    """A binned view of one matrix with a cell cursor."""

    BINDINGS = [
        Binding("left,h", "move(0,-1)", "Left", show=False, id="grid.left"),
        Binding("right,l", "move(0,1)", "Right", show=False, id="grid.right"),
        Binding("up,k", "move(-1,0)", "Up", show=False, id="grid.up"),
        Binding("down,j", "move(1,0)", "Down", show=False, id="grid.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="grid.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="grid.page_down"),
        Binding("home", "edge('home')", "First column", show=False, id="grid.home"),
        Binding("end", "edge('end')", "Last column", show=False, id="grid.end"),
        Binding("ctrl+home", "edge('top')", "Top", show=False, id="grid.top"),
        Binding("ctrl+end", "edge('bottom')", "Bottom", show=False, id="grid.bottom"),
    ]

    COMPONENT_CLASSES = {
        "matrix-grid--untested",
        "matrix-grid--tested",
        "matrix-grid--density-1",
        "matrix-grid--density-2",
        "matrix-grid--density-3",
        "matrix-grid--density-4",
        "matrix-grid--density-5",
        "matrix-grid--severity-1",
        "matrix-grid--severity-2",
        "matrix-grid--severity-3",
        "matrix-grid--max",
        "matrix-grid--min",
        "matrix-grid--both",
        "matrix-grid--predicted-1",
        "matrix-grid--predicted-2",
        "matrix-grid--predicted-3",
        "matrix-grid--predicted-4",
        "matrix-grid--cursor",
        "matrix-grid--marginal",
        "matrix-grid--axis",
    }

    colour_mode: reactive[str] = reactive("density")
    complement: reactive[bool] = reactive(False)

    def __init__(
        self,
        *,
        on_cursor: Callable[[CellPosition], None] | None = None,
        colour_mode: str = "density",
        id: str | None = None,
    ) -> None:
        """`on_cursor` is called, synchronously, whenever the cursor lands on a cell: a direct
        call rather than a bubbling message, so the grid and what describes its cursor change
        in the same frame."""
        super().__init__(id=id)
        self.set_reactive(MatrixGrid.colour_mode, colour_mode)
        self.on_cursor = on_cursor
        self.layout_data: MatrixLayout | None = None
        self.cursor = CellPosition(0, 0)
        self.cell_width = 1
        """Characters per cell: wider when a small matrix leaves room, 1 otherwise."""
        self.top = 0
        """The first displayed bin row."""
        self.left = 0
        """The first displayed bin column."""
        self._lines: LRUCache[int, CellLine] = LRUCache(4096)
        self._strips: LRUCache[tuple, Strip] = LRUCache(2048)
        self._styles: dict[str, Style] = {}
        self._style_tables: dict[bool, tuple[list[Style], list[Style]]] = {}
        """Cell styles by code, plain and under the cursor, keyed by whether the grid has focus."""
        self.predicted: PredictedLayer | None = None
        """The predicted layer of the shown matrix, drawn under the measured phenotypes."""

    # --- data in -------------------------------------------------------------------------

    def show(self, layout: MatrixLayout, cursor: CellPosition | None = None) -> None:
        """Display a new layout (new matrix, zoom, filter or order) with the cursor at `cursor`."""
        self.layout_data = layout
        self._lines.clear()
        self._strips.clear()
        room = max(self.size.width - MARGIN, 1)
        self.cell_width = max(1, min(MAX_CELL_WIDTH, room // max(layout.cols, 1)))
        target = cursor or self.cursor
        self.cursor = CellPosition(
            min(max(target.row, 0), layout.rows - 1), min(max(target.col, 0), layout.cols - 1)
        )
        self._keep_cursor_visible(center=True)
        self.refresh()
        if self.on_cursor is not None:
            self.on_cursor(self.cursor)

    @property
    def grid_height(self) -> int:
        return max(self.size.height - HEADER, 1)

    @property
    def grid_width(self) -> int:
        """Cells that fit across."""
        return max((self.size.width - MARGIN) // self.cell_width, 1)

    def watch_colour_mode(self) -> None:
        self._strips.clear()
        self.refresh()

    def watch_complement(self) -> None:
        self._strips.clear()
        self.refresh()

    def set_predicted(self, predicted: PredictedLayer | None) -> None:
        """Shade untouched cells by `predicted` (None: no predicted layer)."""
        if predicted is not self.predicted:
            self.predicted = predicted
            self._strips.clear()
            self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._style_tables.clear()
        self._strips.clear()

    # --- cursor ------------------------------------------------------------------------------

    def move_cursor(self, row: int, col: int) -> None:
        layout = self.layout_data
        if layout is None:
            return
        new = CellPosition(min(max(row, 0), layout.rows - 1), min(max(col, 0), layout.cols - 1))
        if new == self.cursor:
            return
        old = self.cursor
        self.cursor = new
        if not self._keep_cursor_visible():
            self._refresh_row(old.row)
            self._refresh_row(new.row)
        if self.on_cursor is not None:
            self.on_cursor(new)

    def _refresh_row(self, display_row: int) -> None:
        y = display_row - self.top + HEADER
        if HEADER <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _keep_cursor_visible(self, *, center: bool = False) -> bool:
        """Scroll so the cursor is on screen; True if that scrolled."""
        top, left = self.top, self.left
        height, width = self.grid_height, self.grid_width
        row, col = self.cursor.row, self.cursor.col
        new_top, new_left = top, left
        if center and not (top <= row < top + height and left <= col < left + width):
            new_top, new_left = row - height // 2, col - width // 2
        if row < new_top:
            new_top = row
        elif row >= new_top + height:
            new_top = row - height + 1
        if col < new_left:
            new_left = col
        elif col >= new_left + width:
            new_left = col - width + 1
        if (new_top, new_left) == (top, left):
            return False
        self.top, self.left = max(new_top, 0), max(new_left, 0)
        self.refresh()
        return True

    def on_resize(self) -> None:
        if self.layout_data is not None:
            self._keep_cursor_visible()

    def on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        event.stop()
        self._scroll_rows(3)

    def on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        event.stop()
        self._scroll_rows(-3)

    def _scroll_rows(self, rows: int) -> None:
        """Move the view (and the cursor with it) by `rows` bin rows, as a wheel does."""
        layout = self.layout_data
        if layout is None:
            return
        top = min(max(self.top + rows, 0), max(layout.rows - self.grid_height, 0))
        if top != self.top:
            shift, self.top = top - self.top, top
            self.move_cursor(self.cursor.row + shift, self.cursor.col)
            self.refresh()

    def action_move(self, rows: int, cols: int) -> None:
        self.move_cursor(self.cursor.row + rows, self.cursor.col + cols)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor.row + direction * self.grid_height, self.cursor.col)

    def action_edge(self, where: str) -> None:
        layout = self.layout_data
        if layout is None:
            return
        row, col = self.cursor.row, self.cursor.col
        if where == "home":
            col = 0
        elif where == "end":
            col = layout.cols - 1
        elif where == "top":
            row = 0
        elif where == "bottom":
            row = layout.rows - 1
        self.move_cursor(row, col)

    # --- drawing -----------------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self.get_component_rich_style(f"matrix-grid--{name}", partial=False)
            self._styles[name] = style
        return style

    def _line(self, display_row: int) -> CellLine:
        line = self._lines.get(display_row)
        if line is None:
            assert self.layout_data is not None
            line = self.layout_data.line(display_row)
            self._lines[display_row] = line
        return line

    def render_line(self, y: int) -> Strip:
        layout = self.layout_data
        width = self.size.width
        if layout is None:
            return Strip.blank(width, self.rich_style)
        top, left = self.top, self.left
        if y < HEADER:
            key = ("header", left, width)
        else:
            display_row = top + y - HEADER
            if display_row >= layout.rows:
                return Strip.blank(width, self.rich_style)
            cursor_col = self.cursor.col if display_row == self.cursor.row else -1
            key = (display_row, left, width, cursor_col, self.has_focus)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._header(left, width) if y < HEADER else self._row(*key[:4])
            self._strips[key] = strip
        return strip

    def _header(self, left: int, width: int) -> Strip:
        layout = self.layout_data
        assert layout is not None
        totals = layout.col_totals[layout.col_order]
        peak = max(int(totals.max()) if len(totals) else 0, 1)
        visible = totals[left : left + (width - MARGIN) // self.cell_width]
        levels = np.ceil(visible / peak * (len(BARS) - 1)).astype(int)
        bars = "".join(BARS[level] * self.cell_width for level in levels)
        return Strip(
            [
                Segment(" " * MARGIN, self._style("axis")),
                Segment(bars, self._style("marginal")),
            ]
        ).adjust_cell_length(width, self.rich_style)

    def _row(self, display_row: int, left: int, width: int, cursor_col: int) -> Strip:
        layout = self.layout_data
        assert layout is not None
        totals = layout.row_totals[layout.row_order]
        peak = max(int(totals.max()) if len(totals) else 0, 1)
        eighths = round(int(totals[display_row]) / peak * (MARGIN - 1) * 8)
        bar = ("█" * (eighths // 8) + (ROW_BARS[eighths % 8] if eighths % 8 else "")).ljust(
            MARGIN - 1
        )
        segments = [Segment(bar, self._style("marginal")), Segment(" ", self._style("axis"))]
        stop = min(left + (width - MARGIN) // self.cell_width, layout.cols)
        if stop > left:
            glyphs, styles = self._cells(self._line(display_row), left, stop)
            if self.predicted is not None:
                styles = self._shade_predicted(styles, display_row, left, stop, glyphs)
            segments.extend(self._runs(glyphs, styles, cursor_col - left))
        return Strip(segments).adjust_cell_length(width, self.rich_style)

    def _cells(self, line: CellLine, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Glyph and style codes (indices into GLYPHS and STYLE_NAMES) of columns start:stop,
        computed for the whole span at once."""
        max_hits = line.max_hits[start:stop]
        min_hits = line.min_hits[start:stop]
        hits = max_hits + min_hits + line.other_hits[start:stop]
        tested = line.tested[start:stop]
        both = (max_hits > 0) & (min_hits > 0)
        glyphs = np.select(
            [hits == 0, both, max_hits > 0, min_hits > 0],
            [np.where(tested > 0, GLYPH_TESTED, GLYPH_UNTESTED), GLYPH_BOTH, GLYPH_MAX, GLYPH_MIN],
            GLYPH_OTHER,
        )
        if self.complement:
            coloured = np.select(
                [both, max_hits > 0, min_hits > 0], [STYLE_BOTH, STYLE_MAX, STYLE_MIN], STYLE_BOTH
            )
        elif self.colour_mode == "severity":
            coloured = STYLE_SEVERITY + np.clip(line.worst[start:stop], 1, 3) - 1
        elif self.colour_mode not in ("density", "severity"):  # a measure: `grid_data.Measure`
            levels = self.layout_data.effect_levels
            level = np.searchsorted(levels, line.effect[start:stop], side="right")
            shaded = np.where(level > 0, STYLE_DENSITY + level - 1, STYLE_TESTED)
            return glyphs, np.where(tested > 0, shaded, STYLE_UNTESTED)
        else:
            level = np.ceil(hits / np.maximum(tested, 1) * DENSITY_LEVELS)
            coloured = STYLE_DENSITY + np.clip(level, 1, DENSITY_LEVELS).astype(int) - 1
        styles = np.where(hits > 0, coloured, np.where(tested > 0, STYLE_TESTED, STYLE_UNTESTED))
        return glyphs, styles

    def _shade_predicted(
        self, styles: np.ndarray, display_row: int, start: int, stop: int, glyphs: np.ndarray
    ) -> np.ndarray:
        """Styles of columns start:stop with the cells that show no phenotype shaded by the
        predicted level of the coordinates they cover (level 0 keeps the plain style)."""
        layout, predicted = self.layout_data, self.predicted
        assert layout is not None and predicted is not None
        quiet = (glyphs == GLYPH_UNTESTED) | (glyphs == GLYPH_TESTED)
        levels = np.array(
            [
                predicted.level(*layout.cell_bounds(display_row, col)) if is_quiet else 0
                for col, is_quiet in zip(range(start, stop), quiet.tolist(), strict=True)
            ],
            dtype=int,
        )
        return np.where(levels > 0, STYLE_PREDICTED + levels - 1, styles)

    def _cell_styles(self) -> tuple[list[Style], list[Style]]:
        """The style of each code of STYLE_NAMES, plain and under the cursor (made once per
        style update: a row has dozens of runs, each needing its style)."""
        key = self.has_focus
        cached = self._style_tables.get(key)
        if cached is None:
            plain = [self._style(name) for name in STYLE_NAMES]
            cursor = self._style("cursor") if self.has_focus else Style(reverse=True)
            cached = (plain, [style + cursor for style in plain])
            self._style_tables[key] = cached
        return cached

    def _runs(self, glyphs: np.ndarray, styles: np.ndarray, cursor: int) -> list[Segment]:
        """One segment per run of equal style; the cursor cell is a run of its own."""
        codes = styles.copy()
        if 0 <= cursor < len(codes):
            codes[cursor] = -1 - codes[cursor]  # unique code: the cell under the cursor
        cuts = np.flatnonzero(np.diff(codes)) + 1
        starts = [0, *cuts.tolist()]
        ends = [*cuts.tolist(), len(codes)]
        width = self.cell_width
        pad = " " * (width - 1)
        text = "".join([GLYPHS[g] + pad for g in glyphs.tolist()])
        plain, under_cursor = self._cell_styles()
        return [
            Segment(
                text[begin * width : end * width],
                plain[code] if code >= 0 else under_cursor[-1 - code],
            )
            for begin, end, code in zip(starts, ends, codes[starts].tolist(), strict=True)
        ]
