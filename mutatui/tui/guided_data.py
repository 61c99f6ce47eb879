"""The guided layers of the explorer: a screen's predicted layer and its super weights.

Both are read from the store in a worker (these functions run off the UI thread); the grid then
draws the predicted layer from memory. The prediction shown is the database's newest one for
the screen's model, for one kind of mutation: the filter's kind when it names exactly one that
was predicted, else max.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mutatui.guided.layer import PredictedLayer
from mutatui.store import guided
from mutatui.store.guided import PredictionInfo, SuperweightResult

DEFAULT_KIND = "max"


@dataclass(frozen=True)
class PredictedLayers:
    """One prediction's layer of every matrix, for one kind, keyed by (layer, matrix)."""

    info: PredictionInfo
    kind: str
    layers: dict[tuple[int, str], PredictedLayer]


def predicted_kind(filter_kinds: frozenset[str]) -> str:
    """The kind the predicted layer shows under a kind filter."""
    return next(iter(filter_kinds)) if len(filter_kinds) == 1 else DEFAULT_KIND


def load_predicted(db: str | Path, model: str, kind: str) -> PredictedLayers | None:
    """The newest prediction of `model` in `db` as shading layers; None when there is none."""
    found = [info for info in guided.predictions(db) if info.model == model]
    if not found:
        return None
    info = found[-1]
    maps = guided.prediction_maps(db, kind, prediction=info.name)
    if not maps and kind != DEFAULT_KIND:  # a kind the prediction did not cover
        kind = DEFAULT_KIND
        maps = guided.prediction_maps(db, kind, prediction=info.name)
    return PredictedLayers(
        info, kind, {key: PredictedLayer(tiles, info.tile_size) for key, tiles in maps.items()}
    )


def describe_superweight(result: SuperweightResult) -> str:
    """One line for the jump list: site, spike ratio and what zeroing it did."""
    effect = (
        f"output changed at token {result.diverge_at}"
        if result.changed and result.diverge_at is not None
        else "output changed"
        if result.changed
        else "output unchanged"
    )
    return (
        f"{result.site}  spike {result.spike_ratio:.1f}x  weight {result.weight:+.3g}  "
        f"zeroed: perplexity {result.perplexity:.3g}, {effect}"
    )


def load_superweights(db: str | Path) -> list[SuperweightResult]:
    """The newest super-weight run's candidates, strongest spike first."""
    return guided.superweight_results(db)
