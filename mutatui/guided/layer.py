"""The predicted layer of the explorer: a tile map answered at any zoom, as shading levels.

The explorer's grid bins a matrix's coordinates at its zoom level; a cell spans rows r0:r1 and
columns c0:c1. `PredictedLayer.level(r0, r1, c0, c1)` is the strongest prediction among the
tiles the cell touches, as a level 0 (nothing predicted) to `LEVELS - 1` (the matrix's top
tiles), by quantiles of the matrix's own tile scores. Pure numpy: the TUI calls it per line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVELS = 5
QUANTILES = (0.5, 0.8, 0.95)
"""Tile-score quantiles that separate levels 1..4 (level 0 is a score of zero): top 5% of tiles = 4."""


@dataclass
class PredictedLayer:
    """A (tile_rows, tile_cols) map of one matrix with `tile_size` square tiles."""

    tiles: np.ndarray
    tile_size: int
    _edges: np.ndarray = field(init=False, repr=False)
    _levels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        values = self.tiles[self.tiles > 0]
        self._edges = (
            np.quantile(values, QUANTILES) if values.size else np.full(len(QUANTILES), np.inf)
        )
        levels = 1 + np.searchsorted(self._edges, self.tiles, side="right")
        self._levels = np.where(self.tiles > 0, levels, 0).astype(np.int8)

    def _span(self, start: int, stop: int, limit: int) -> slice:
        first = min(start // self.tile_size, limit - 1)
        last = min(max(stop - 1, start) // self.tile_size, limit - 1)
        return slice(first, last + 1)

    def value(self, row0: int, row1: int, col0: int, col1: int) -> float:
        """The largest tile score among the tiles the half-open cell touches."""
        rows = self._span(row0, row1, self.tiles.shape[0])
        cols = self._span(col0, col1, self.tiles.shape[1])
        return float(self.tiles[rows, cols].max())

    def level(self, row0: int, row1: int, col0: int, col1: int) -> int:
        """Shading level 0..LEVELS-1 of the cell (its strongest tile's)."""
        rows = self._span(row0, row1, self.tiles.shape[0])
        cols = self._span(col0, col1, self.tiles.shape[1])
        return int(self._levels[rows, cols].max())
