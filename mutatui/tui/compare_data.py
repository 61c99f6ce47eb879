"""Two screens' overviews on one depth axis, computed from their `ScreenData` (no Textual here).

A screen's profile is its phenotype rate per matrix type and depth row: for a computed screen,
mutations with a phenotype over mutations tested; for a published one, an experiment's NSMs
over its tiles times the kinds screened. Screens of the same depth share rows layer by layer;
screens of different depths (SmolLM2's 30 layers, Llama-2's 32) are put on rows of relative
depth (`analysis.depth`), each row pooling the layers whose middle falls in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mutatui.analysis.depth import band_label, depth_band
from mutatui.engine.families import MATRIX_ORDER
from mutatui.store.published import ExperimentCounts
from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import Filter, apply_filter, published_trials

DEPTH_ROWS = 10
"""Rows of relative depth (tenths of the stack) when the two screens' depths differ."""


@dataclass
class DepthProfile:
    title: str
    measure: str
    rows: list[str]
    """Row labels: layers (`L0`) or bands of relative depth (`0-10%`)."""
    types: list[str]
    rate: np.ndarray
    """rows x types; NaN where the screen tested nothing."""


def common_rows(a: ScreenData, b: ScreenData) -> int | None:
    """None when both screens have the same layers (rows are layers); else how many rows of
    relative depth."""
    return None if a.layers == b.layers else DEPTH_ROWS


def experiment_named(data: ScreenData, name: str | None) -> ExperimentCounts | None:
    """A published screen's experiment of that name, else its first (None: not published)."""
    if data.published is None or not data.published.experiments:
        return None
    experiments = data.published.experiments
    return next((e for e in experiments if e.name == name), experiments[0])


def _per_matrix(
    data: ScreenData, experiment: ExperimentCounts | None
) -> tuple[np.ndarray, np.ndarray]:
    """(hits, trials) per matrix of the screen, indexed like `data.matrices`."""
    if experiment is not None:
        hits = [experiment.nsms.get((m.layer, m.matrix), 0) for m in data.matrices]
        trials = [published_trials(m) for m in data.matrices]
        return np.array(hits, dtype=float), np.array(trials, dtype=float)
    phenotypes = apply_filter(data, Filter())
    size = len(data.matrices)
    valid = data.matrix_index >= 0
    index = data.matrix_index[valid]
    trials = np.bincount(index[phenotypes.kept[valid]], minlength=size)
    hits = np.bincount(index[phenotypes.phenotypic[valid]], minlength=size)
    return hits.astype(float), trials.astype(float)


def depth_profile(
    data: ScreenData, rows: int | None, experiment: ExperimentCounts | None = None
) -> DepthProfile:
    """The screen's rates on `rows` rows of relative depth, or per layer (None)."""
    layers = data.layers
    count = len(layers) if rows is None else rows
    types = [t for t in MATRIX_ORDER if t in data.matrix_types] + [
        t for t in data.matrix_types if t not in MATRIX_ORDER
    ]
    hits, trials = np.zeros((count, len(types))), np.zeros((count, len(types)))
    per_hits, per_trials = _per_matrix(data, experiment)
    depth = max(layers) + 1 if layers else 1
    for position, matrix in enumerate(data.matrices):
        row = layers.index(matrix.layer) if rows is None else depth_band(matrix.layer, depth, rows)
        column = types.index(matrix.matrix)
        hits[row, column] += per_hits[position]
        trials[row, column] += per_trials[position]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(trials > 0, hits / np.maximum(trials, 1), np.nan)
    labels = (
        [f"L{layer}" for layer in layers]
        if rows is None
        else [band_label(band, rows) for band in range(rows)]
    )
    summary = data.summary
    if experiment is not None:
        title = f"{summary.name}: {experiment.name} ({summary.model})"
        measure = "NSMs per 64x64 tile and kind"
    else:
        title = f"{summary.name} ({summary.model})"
        measure = "mutations with a phenotype per mutation tested"
    return DepthProfile(title, measure, labels, types, rate)
