"""Figures like the paper's: mutation maps, rearranged maps, marginals and rates, as PNG files.

Matplotlib runs on the Agg backend (no display needed, safe in threads of a headless box). A
mutation map puts each phenotype at its site's centre, (column, row) with row 0 at the top, as
the paper drew them; colour says the kind (max red, min blue, magenta where both kinds of the
same site have one) and marker size the severity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from mutatui.analysis.stats import KINDS, line_index, rates, rearranged_order
from mutatui.store.frames import SiteFrame

KIND_COLORS = {
    "max": "#d62728",
    "min": "#1f77b4",
    "both": "#e377c2",
    "zero": "#2ca02c",
    "value": "#9467bd",
}
"""Solid colours (no alpha), so a test can find their pixels. "both" marks a site whose max and
min mutations both have a phenotype: drawn one over the other, one colour would hide the other."""
SEVERITY_SIZES = (4.0, 6.0, 12.0, 24.0)
"""Marker area per severity grade 0-3."""
DPI = 100


def _layout(count: int, columns: int = 6) -> tuple[int, int]:
    columns = min(columns, max(count, 1))
    return -(-count // columns), columns


def _marks(frame: SiteFrame) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(colour key, mask, severity) per group of phenotypes to draw. A site with a max and a
    min phenotype is one "both" mark at its max entry, with the worse of the two severities."""
    numbers: dict[tuple, int] = {}
    site = np.array([numbers.setdefault(key, len(numbers)) for key in frame.site_keys()], int)
    hit = {kind: frame.changed & (frame.kind == kind) for kind in KIND_COLORS if kind != "both"}
    has_min = np.zeros(len(numbers), dtype=bool)
    has_min[site[hit["min"]]] = True
    has_max = np.zeros_like(has_min)
    has_max[site[hit["max"]]] = True
    both_at_max = hit["max"] & has_min[site]
    both_at_min = hit["min"] & has_max[site]
    severity = frame.severity.astype(np.int64)
    worst = np.zeros(len(has_min), dtype=np.int64)
    np.maximum.at(worst, site[hit["max"] | hit["min"]], severity[hit["max"] | hit["min"]])
    marks = [
        ("max", hit["max"] & ~both_at_max, severity),
        ("min", hit["min"] & ~both_at_min, severity),
        ("both", both_at_max, worst[site]),
    ]
    marks += [(kind, mask, severity) for kind, mask in hit.items() if kind not in KINDS]
    return [mark for mark in marks if mark[1].any()]


def _draw_map(axes, frame: SiteFrame, rows: int, cols: int, title: str) -> None:
    for kind, mask, severity in _marks(frame):
        x = (frame.col0[mask] + frame.col1[mask]) / 2
        y = (frame.row0[mask] + frame.row1[mask]) / 2
        sizes = np.asarray(SEVERITY_SIZES)[np.clip(severity[mask], 0, 3)]
        axes.scatter(x, y, s=sizes, c=KIND_COLORS[kind], marker="s", linewidths=0, label=kind)
    axes.set_xlim(0, cols)
    axes.set_ylim(rows, 0)
    axes.set_title(title, fontsize=8)
    axes.tick_params(labelsize=6)


def mutation_map(frame: SiteFrame, layer: int, matrix: str) -> Figure:
    """One matrix's phenotypes at their coordinates."""
    rows, cols = frame.extents().get(
        (layer, matrix), (int(frame.row1.max()), int(frame.col1.max()))
    )
    mask = (frame.layer == layer) & (frame.matrix == matrix)
    figure = plt.figure(figsize=(6, 6 * min(max(rows / cols, 0.4), 2.5)), dpi=DPI)
    axes = figure.add_subplot()
    selected = frame.subset(mask)
    _draw_map(
        axes,
        selected,
        rows,
        cols,
        f"L{layer}.{matrix}: {int(selected.changed.sum())} phenotypes of {len(selected)} tested",
    )
    axes.set_xlabel("column")
    axes.set_ylabel("row")
    axes.legend(loc="upper right", fontsize=7, markerscale=2)
    figure.tight_layout()
    return figure


def type_maps(frame: SiteFrame, matrix: str) -> Figure:
    """The maps of one matrix type, one panel per layer."""
    layers = sorted(set(frame.layer[frame.matrix == matrix].tolist()))
    extents = frame.extents()
    grid_rows, grid_cols = _layout(len(layers))
    figure = plt.figure(figsize=(max(2.4 * grid_cols, 7), 2.4 * grid_rows + 0.6), dpi=DPI)
    for position, layer in enumerate(layers, start=1):
        selected = frame.subset((frame.layer == layer) & (frame.matrix == matrix))
        rows, cols = extents.get(
            (layer, matrix), (int(selected.row1.max()), int(selected.col1.max()))
        )
        axes = figure.add_subplot(grid_rows, grid_cols, position)
        _draw_map(axes, selected, rows, cols, f"L{layer} ({int(selected.changed.sum())})")
    figure.suptitle(
        f"{matrix}: phenotypes per layer (red max, blue min, magenta both; size = severity)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def rearranged_maps(frame: SiteFrame, matrix: str) -> Figure:
    """Per layer: the phenotype count grid with rows and columns sorted by phenotype count."""
    layers = sorted(set(frame.layer[frame.matrix == matrix].tolist()))
    grid_rows, grid_cols = _layout(len(layers))
    figure = plt.figure(figsize=(max(2.4 * grid_cols, 7), 2.4 * grid_rows + 0.6), dpi=DPI)
    for position, layer in enumerate(layers, start=1):
        selected = frame.subset((frame.layer == layer) & (frame.matrix == matrix))
        axes = figure.add_subplot(grid_rows, grid_cols, position)
        grid, row_lines, col_lines = rearranged_order(selected)
        row_rank = {int(line): rank for rank, line in enumerate(row_lines)}
        col_rank = {int(line): rank for rank, line in enumerate(col_lines)}
        rows, cols = line_index(selected, "row"), line_index(selected, "col")
        for kind, mask, _ in _marks(selected):
            y = np.array([row_rank[int(line)] for line in rows[mask]]) + 0.5
            x = np.array([col_rank[int(line)] for line in cols[mask]]) + 0.5
            axes.scatter(x, y, s=6, c=KIND_COLORS[kind], marker="s", linewidths=0)
        axes.set_xlim(0, max(grid.shape[1], 1))
        axes.set_ylim(max(grid.shape[0], 1), 0)
        axes.set_title(f"L{layer}", fontsize=8)
        axes.tick_params(labelsize=6)
    figure.suptitle(
        f"{matrix}, rearranged: rows and columns sorted by phenotype count (max and min together)"
    )
    figure.tight_layout()
    return figure


def line_rates(frame: SiteFrame, axis: str, kind: str) -> np.ndarray:
    """Phenotype rate per row or column line of `frame`, for one kind; a line with nothing
    tested has rate 0."""
    lines = line_index(frame, axis)
    count = int(lines.max()) + 1 if len(lines) else 1
    of_kind = frame.kind == kind
    tested = np.bincount(lines[of_kind], minlength=count)
    hits = np.bincount(lines[of_kind & frame.changed], minlength=count)
    return np.divide(hits, tested, out=np.zeros(count), where=tested > 0)


def marginals(frame: SiteFrame, matrix: str) -> Figure:
    """Phenotype rate per row line and per column line of one matrix type, over all layers:
    max drawn up, min down. A rate (phenotypes / sites tested on the line), not a count, so an
    element screen's dense lines (hundreds of sites) and random sites (a few a line) share one
    scale, and max and min do not hide each other as stacked counts would."""
    selected = frame.subset(frame.matrix == matrix)
    figure, panels = plt.subplots(2, 1, figsize=(9, 5), dpi=DPI)
    unit = "tile " if len(selected) and (selected.row1 - selected.row0).max() > 1 else ""
    for axes, axis in zip(panels, ("row", "col"), strict=True):
        top = 0.0
        for sign, kind in ((1, "max"), (-1, "min")):
            rate = line_rates(selected, axis, kind)
            axes.bar(
                np.arange(len(rate)), sign * rate, color=KIND_COLORS[kind], width=1.0, label=kind
            )
            top = max(top, float(rate.max()))
        axes.axhline(0, color="#444444", linewidth=0.5)
        axes.set_ylim(-1.05 * (top or 1.0), 1.05 * (top or 1.0))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{abs(value):.2g}"))
        axes.set_xlabel(f"{unit}{'row' if axis == 'row' else 'column'}")
        axes.set_ylabel("phenotype rate")
        axes.legend(fontsize=7)
    figure.suptitle(f"{matrix}: phenotype rate per line, all layers (max up, min down)")
    figure.tight_layout()
    return figure


def rate_heatmap(frame: SiteFrame) -> Figure:
    """Phenotype rate per layer and matrix type, one panel per kind, on one colour scale so
    the kinds compare by eye."""
    kinds = [k for k in KINDS if (frame.kind == k).any()]
    types = list(dict.fromkeys(row.key for row in rates(frame, "matrix")))
    layers = sorted(set(frame.layer.tolist()))
    grids = {}
    for kind in kinds:
        grid = np.full((len(layers), len(types)), np.nan)
        for i, layer in enumerate(layers):
            for j, name in enumerate(types):
                mask = (frame.layer == layer) & (frame.matrix == name) & (frame.kind == kind)
                if mask.any():
                    grid[i, j] = frame.changed[mask].mean()
        grids[kind] = grid
    top = max([float(np.nanmax(grid)) for grid in grids.values()] + [0.0]) or 1.0
    figure, panels = plt.subplots(
        1, max(len(kinds), 1), figsize=(4 * max(len(kinds), 1), 6), dpi=DPI, squeeze=False
    )
    for axes, (kind, grid) in zip(panels[0], grids.items(), strict=False):
        cmap = "Reds" if kind == "max" else "Blues"
        image = axes.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=top)
        axes.set_xticks(range(len(types)), types, fontsize=7)
        axes.set_yticks(range(len(layers)), [str(layer) for layer in layers], fontsize=6)
        axes.set_ylabel("layer")
        axes.set_title(f"{kind}: phenotype rate")
        figure.colorbar(image, ax=axes, fraction=0.05)
    figure.tight_layout()
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def add_caption(figure: Figure, caption: str) -> Figure:
    """A line under the figure saying what was counted (a phenotype's definition changes every
    picture, and a PNG travels without the command line that made it)."""
    figure.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="#444444")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


def figures(
    frame: SiteFrame, *, each_matrix: bool = False
) -> Iterator[tuple[str, Callable[[], Figure]]]:
    """(file name, figure maker) for every figure of one frame (one site shape)."""
    yield "rates.png", lambda: rate_heatmap(frame)
    for matrix in dict.fromkeys(row.key for row in rates(frame, "matrix")):
        yield f"map_{matrix}.png", partial(type_maps, frame, matrix)
        yield f"rearranged_{matrix}.png", partial(rearranged_maps, frame, matrix)
        yield f"marginals_{matrix}.png", partial(marginals, frame, matrix)
    if each_matrix:
        for layer, matrix in sorted(
            set(zip(frame.layer.tolist(), frame.matrix.tolist(), strict=True))
        ):
            yield f"map_L{layer}_{matrix}.png", partial(mutation_map, frame, layer, matrix)


def write_figures(
    frame: SiteFrame, outdir: Path, *, each_matrix: bool = False, caption: str = ""
) -> list[Path]:
    """Every figure for one frame (one site shape) into `outdir`, each with `caption` under it
    when given; returns the files written."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in figures(frame, each_matrix=each_matrix):
        figure = make()
        if caption:
            add_caption(figure, caption)
        written.append(save(figure, outdir / name))
    return written
