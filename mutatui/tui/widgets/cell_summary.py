"""The strip under the grid: what the cell under the cursor holds."""

from __future__ import annotations

from collections import Counter

import numpy as np
from textual.markup import escape
from textual.widgets import Static

from mutatui.exact.noise import shown_effect
from mutatui.store.queries import KINDS, ScreenData
from mutatui.tui.grid_data import Phenotypes

SEVERITY_NAMES = ("none", "mild", "moderate", "severe")


def describe_cell(
    data: ScreenData, phenotypes: Phenotypes, positions: np.ndarray, bounds: tuple[int, ...]
) -> str:
    """A few lines of markup about the mutations at `positions` (indices into `data`)."""
    row0, row1, col0, col1 = bounds
    rows = f"{row0}" if row1 == row0 + 1 else f"{row0}:{row1}"
    cols = f"{col0}" if col1 == col0 + 1 else f"{col0}:{col1}"
    head = f"[b]rows {rows}, cols {cols}[/b]"
    kept = positions[phenotypes.kept[positions]]
    if not len(kept):
        if data.published is not None and not len(positions):
            return f"{head}  not in its table: silent there (or above its cut)"
        return f"{head}  untested" if not len(positions) else f"{head}  filtered out"
    hits = kept[phenotypes.count[kept] > 0]
    kinds = Counter(KINDS[int(data.kind[p])] for p in hits)
    worst = int(phenotypes.worst[hits].max()) if len(hits) else 0
    tagged = Counter(tag for p in kept for tag in data.tags.get(int(p), {}))
    hit_set = np.isin(data.phenotype_mutation, hits)
    words = Counter(
        data.words[code] for code in data.phenotype_word[hit_set] if code >= 0
    ).most_common(4)
    counted = "listed in its table" if data.published is not None else "tested"
    lines = [
        f"{head}  {len(kept)} {counted}, [b]{len(hits)}[/b] with phenotypes"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})" if hits.size else "")
        + (f", worst {SEVERITY_NAMES[worst]}" if hits.size else "")
        + _largest_effect(data, kept),
    ]
    if words:
        lines.append(
            "first words: " + escape(", ".join(f"{word} x{count}" for word, count in words))
        )
    if tagged:
        lines.append("tags: " + escape(", ".join(f"{t} x{n}" for t, n in tagged.items())))
    return "\n".join(lines)


def _largest_effect(data: ScreenData, kept: np.ndarray) -> str:
    """ ", effect <= X" for the cell's mutations, where the screen recorded effect sizes."""
    if data.effect is None:
        return ""
    effects = data.effect[kept]
    if not np.isfinite(effects).any():
        return ""
    return f", effect up to [b]{shown_effect(float(np.nanmax(effects)), data.noise)}[/b] nats"


class CellSummary(Static):
    """Three fixed lines under the grid; the matrix screen fills them with `describe_cell`."""
