"""SQL for guided screens: sensitivity predictions and super-weight runs (tables in schema.py).

Writers open the database once per run and write everything in one transaction. Readers return
numpy arrays and plain tuples so that the explorer only calls them (never SQL of its own).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mutatui.errors import MutatuiError
from mutatui.store.database import connect, has_table, initialize, transaction

if TYPE_CHECKING:
    from mutatui.guided.layer import PredictedLayer
    from mutatui.guided.predict import MatrixPrediction, Probe

TILE_STATISTICS = ("tile_block", "tile_sum", "tile_max")


@dataclass(frozen=True)
class PredictionInfo:
    prediction_id: int
    name: str
    model: str
    tile_size: int
    top_k: int
    probes: int
    created_at: str


@dataclass(frozen=True)
class PredictedSite:
    layer: int
    matrix: str
    kind: str
    rank: int
    row: int
    col: int
    score: float

    @property
    def site(self) -> str:
        return f"L{self.layer}.{self.matrix}[{self.row},{self.col}]"


@dataclass(frozen=True)
class SuperweightResult:
    """One verified candidate; `weight` is the unmutated value, `perplexity` with it zeroed."""

    rank: int
    layer: int
    matrix: str
    row: int
    col: int
    weight: float
    output_activation: float
    input_activation: float
    spike_ratio: float
    position: int
    perplexity: float
    changed: bool
    diverge_at: int | None
    text: str

    @property
    def site(self) -> str:
        return f"L{self.layer}.{self.matrix}[{self.row},{self.col}]"


def _as_list(array: np.ndarray) -> list[float]:
    return np.asarray(array, dtype=np.float32).ravel().tolist()


def save_prediction(
    db: str | Path,
    *,
    name: str | None,
    model: str,
    probes: Sequence[Probe],
    decoding: str,
    max_new_tokens: int,
    tile_size: int,
    top_k: int,
    elapsed_seconds: float,
    maps: Sequence[MatrixPrediction],
) -> PredictionInfo:
    """Store one prediction (maps and top sites) in one transaction; return its id and name."""
    initialize(db)
    probe_json = json.dumps(
        [
            {
                "prompt": p.prompt,
                "prompt_tokens": len(p.prompt_ids),
                "continuation": list(p.continuation),
            }
            for p in probes
        ]
    )
    with connect(db, read_only=False) as connection, transaction(connection):
        prediction_id = connection.execute(
            "SELECT coalesce(max(prediction_id), 0) + 1 FROM predictions"
        ).fetchone()[0]
        chosen = name or f"prediction-{prediction_id}"
        taken = connection.execute(
            "SELECT count(*) FROM predictions WHERE name = ?", [chosen]
        ).fetchone()[0]
        if taken:
            raise MutatuiError(
                f"a prediction named {chosen!r} already exists in {db}; pick another --name"
            )
        connection.execute(
            "INSERT INTO predictions (prediction_id, name, model, probes, decoding, "
            "max_new_tokens, tile_size, top_k, elapsed_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                prediction_id,
                chosen,
                model,
                probe_json,
                decoding,
                max_new_tokens,
                tile_size,
                top_k,
                elapsed_seconds,
            ],
        )
        for item in maps:
            tile_rows, tile_cols = item.tile_sum.shape
            connection.execute(
                "INSERT INTO prediction_maps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    prediction_id,
                    item.layer,
                    item.matrix,
                    item.kind,
                    item.rows,
                    item.cols,
                    tile_rows,
                    tile_cols,
                    _as_list(item.tile_block),
                    _as_list(item.tile_sum),
                    _as_list(item.tile_max),
                    _as_list(item.row_sum),
                    _as_list(item.col_sum),
                ],
            )
            if item.top:
                rows, cols, scores = zip(*item.top, strict=True)
                connection.execute(
                    "INSERT INTO prediction_sites SELECT ?, ?, ?, ?, "
                    "unnest(?::INTEGER[]), unnest(?::INTEGER[]), "
                    "unnest(?::INTEGER[]), unnest(?::DOUBLE[])",
                    [
                        prediction_id,
                        item.layer,
                        item.matrix,
                        item.kind,
                        list(range(len(rows))),
                        list(rows),
                        list(cols),
                        list(scores),
                    ],
                )
    return prediction_info(db, chosen)


def predictions(db: str | Path) -> list[PredictionInfo]:
    """Every prediction in the database, oldest first."""
    with connect(db, read_only=True) as connection:
        if not has_table(connection, "predictions"):
            return []
        rows = connection.execute(
            "SELECT prediction_id, name, model, tile_size, top_k, json_array_length(probes), "
            "CAST(created_at AS VARCHAR) FROM predictions ORDER BY prediction_id"
        ).fetchall()
    return [PredictionInfo(*row) for row in rows]


def prediction_info(db: str | Path, name: str | None = None) -> PredictionInfo:
    """The prediction called `name`, or the newest one; a one-line error when there is none."""
    found = predictions(db)
    if not found:
        raise MutatuiError(f"{db} holds no predictions; run `mutatui predict --db {db}` first")
    if name is None:
        return found[-1]
    for info in found:
        if info.name == name:
            return info
    raise MutatuiError(
        f"no prediction named {name!r} in {db}; valid: {', '.join(i.name for i in found)}"
    )


def prediction_tiles(
    db: str | Path,
    layer: int,
    matrix: str,
    kind: str,
    *,
    prediction: str | None = None,
    statistic: str = "tile_sum",
) -> np.ndarray:
    """One matrix's tile map for one kind as a (tile_rows, tile_cols) float32 array.

    `statistic` is `tile_block` (estimate for mutating the whole tile), `tile_sum` (sum of the
    elements' scores) or `tile_max` (the largest element score). Tiles are `tile_size` square
    (see `prediction_info`), the last row and column of tiles may be cut short by the matrix edge.
    """
    maps = prediction_maps(db, kind, prediction=prediction, statistic=statistic, layer=layer)
    if (layer, matrix) not in maps:
        raise MutatuiError(f"no prediction for L{layer}.{matrix} kind {kind} in {db}")
    return maps[(layer, matrix)]


def prediction_maps(
    db: str | Path,
    kind: str,
    *,
    prediction: str | None = None,
    statistic: str = "tile_sum",
    layer: int | None = None,
) -> dict[tuple[int, str], np.ndarray]:
    """Tile maps of every matrix (or of one layer) for one kind, keyed by (layer, matrix).

    One query for the whole model, so the explorer can load the predicted layer at once.
    """
    if statistic not in TILE_STATISTICS:
        raise MutatuiError(f"unknown statistic {statistic!r}; valid: {', '.join(TILE_STATISTICS)}")
    info = prediction_info(db, prediction)
    with connect(db, read_only=True) as connection:
        rows = connection.execute(
            f"SELECT layer, matrix, tile_rows, tile_cols, {statistic} FROM prediction_maps "
            "WHERE prediction_id = ? AND kind = ? AND (? IS NULL OR layer = ?)",
            [info.prediction_id, kind, layer, layer],
        ).fetchall()
    return {
        (int(layer_), matrix): np.asarray(values, dtype=np.float32).reshape(tile_rows, tile_cols)
        for layer_, matrix, tile_rows, tile_cols, values in rows
    }


def prediction_lines(
    db: str | Path, layer: int, matrix: str, kind: str, *, prediction: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row and per-column sums of the element scores of one matrix: (row_sum, col_sum)."""
    info = prediction_info(db, prediction)
    with connect(db, read_only=True) as connection:
        row = connection.execute(
            "SELECT row_sum, col_sum FROM prediction_maps "
            "WHERE prediction_id = ? AND layer = ? AND matrix = ? AND kind = ?",
            [info.prediction_id, layer, matrix, kind],
        ).fetchone()
    if row is None:
        raise MutatuiError(f"no prediction for L{layer}.{matrix} kind {kind} in {db}")
    return np.asarray(row[0], dtype=np.float32), np.asarray(row[1], dtype=np.float32)


def top_predicted_sites(
    db: str | Path,
    *,
    prediction: str | None = None,
    kinds: Sequence[str] | None = None,
    per_matrix: int | None = None,
    limit: int | None = None,
    layers: Sequence[int] | None = None,
    matrices: Sequence[str] | None = None,
) -> list[PredictedSite]:
    """The stored top sites, best score first, optionally filtered.

    `per_matrix` keeps each matrix's first N (by rank) per kind; `limit` caps the whole list.
    """
    info = prediction_info(db, prediction)
    with connect(db, read_only=True) as connection:
        rows = connection.execute(
            "SELECT layer, matrix, kind, rank, row_index, col_index, score FROM prediction_sites "
            "WHERE prediction_id = ? AND (? IS NULL OR list_contains(?::VARCHAR[], kind)) "
            "AND (? IS NULL OR rank < ?) "
            "AND (? IS NULL OR list_contains(?::INTEGER[], layer)) "
            "AND (? IS NULL OR list_contains(?::VARCHAR[], matrix)) "
            "ORDER BY score DESC, layer, matrix, kind, rank LIMIT ?",
            [
                info.prediction_id,
                None if kinds is None else list(kinds),
                None if kinds is None else list(kinds),
                per_matrix,
                per_matrix,
                None if layers is None else list(layers),
                None if layers is None else list(layers),
                None if matrices is None else list(matrices),
                None if matrices is None else list(matrices),
                limit,
            ],
        ).fetchall()
    return [PredictedSite(*row) for row in rows]


def save_superweights(
    db: str | Path,
    *,
    model: str,
    probe_text: str,
    prompt: str,
    decoding: str,
    max_new_tokens: int,
    baseline_perplexity: float,
    baseline_text: str,
    results: Sequence[SuperweightResult],
) -> int:
    """Store one super-weight run and its verified candidates; return the run id."""
    initialize(db)
    with connect(db, read_only=False) as connection, transaction(connection):
        run_id = connection.execute(
            "SELECT coalesce(max(run_id), 0) + 1 FROM superweight_runs"
        ).fetchone()[0]
        connection.execute(
            "INSERT INTO superweight_runs (run_id, model, probe_text, prompt, decoding, "
            "max_new_tokens, baseline_perplexity, baseline_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                model,
                probe_text,
                prompt,
                decoding,
                max_new_tokens,
                baseline_perplexity,
                baseline_text,
            ],
        )
        connection.executemany(
            "INSERT INTO superweights VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    run_id,
                    r.rank,
                    r.layer,
                    r.matrix,
                    r.row,
                    r.col,
                    r.weight,
                    r.output_activation,
                    r.input_activation,
                    r.spike_ratio,
                    r.position,
                    r.perplexity,
                    r.changed,
                    r.diverge_at,
                    r.text,
                ]
                for r in results
            ],
        )
    return int(run_id)


def superweight_results(db: str | Path, run_id: int | None = None) -> list[SuperweightResult]:
    """The candidates of one run (default: the newest), by rank."""
    with connect(db, read_only=True) as connection:
        if not has_table(connection, "superweight_runs"):
            return []
        if run_id is None:
            run_id = connection.execute("SELECT max(run_id) FROM superweight_runs").fetchone()[0]
        rows = connection.execute(
            "SELECT rank, layer, matrix, row_index, col_index, weight, output_activation, "
            "input_activation, spike_ratio, position, perplexity, changed, diverge_at, text "
            "FROM superweights WHERE run_id = ? ORDER BY rank",
            [run_id],
        ).fetchall()
    return [SuperweightResult(*row) for row in rows]


SUPER_PERPLEXITY_RATIO = 2.0
"""A candidate is a super weight when zeroing it alone at least doubles the probe's
perplexity."""


def super_weights(db: str | Path, model: str) -> list[SuperweightResult]:
    """The super weights of `model` in its newest run here: the candidates whose zeroing
    multiplied the perplexity by `SUPER_PERPLEXITY_RATIO` or more (none without a run)."""
    with connect(db, read_only=True) as connection:
        if not has_table(connection, "superweight_runs"):
            return []
        run = connection.execute(
            "SELECT run_id, baseline_perplexity FROM superweight_runs WHERE model = ? "
            "ORDER BY run_id DESC LIMIT 1",
            [model],
        ).fetchone()
    if run is None:
        return []
    run_id, baseline = run
    return [
        result
        for result in superweight_results(db, run_id)
        if result.perplexity >= SUPER_PERPLEXITY_RATIO * baseline
    ]


def superweight_sites(db: str | Path) -> list[str]:
    """Site strings of the newest run's candidates, strongest spike first (for the explorer)."""
    return [result.site for result in superweight_results(db)]


def prediction_shapes(
    db: str | Path, prediction: str | None = None
) -> dict[tuple[int, str], tuple[int, int]]:
    """(rows, cols) of every matrix a prediction covers, keyed by (layer, matrix)."""
    info = prediction_info(db, prediction)
    with connect(db, read_only=True) as connection:
        rows = connection.execute(
            "SELECT DISTINCT layer, matrix, rows, cols FROM prediction_maps WHERE prediction_id = ?",
            [info.prediction_id],
        ).fetchall()
    return {(int(layer), matrix): (int(r), int(c)) for layer, matrix, r, c in rows}


def predicted_layer(
    db: str | Path,
    layer: int,
    matrix: str,
    kind: str,
    *,
    prediction: str | None = None,
    statistic: str = "tile_sum",
) -> PredictedLayer:
    """The explorer's predicted layer for one matrix and kind (see `mutatui.guided.layer`)."""
    from mutatui.guided.layer import PredictedLayer

    tiles = prediction_tiles(db, layer, matrix, kind, prediction=prediction, statistic=statistic)
    return PredictedLayer(tiles, prediction_info(db, prediction).tile_size)
