"""Published screens in the store: another lab's screen, imported from its tables (kind
`published`, `mutatui import-paper`), written whole in one transaction or not at all, and read
back for the explorer and the analyses (per-matrix counts of every experiment, writers and
their outputs)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from mutatui.errors import MutatuiError
from mutatui.store.database import connect, has_table, initialize, transaction
from mutatui.store.screens import (
    MATRIX_COLUMNS,
    MUTATION_COLUMNS,
    PROBE_COLUMNS,
    RESULT_COLUMNS,
    insert_rows,
    result_row,
)

PUBLISHED = "published"
"""`screens.kind` of an imported screen: no weights, no spec to resume or verify."""

EXPERIMENT_COLUMNS = ("experiment", "type", "max_nsms", "min_nsms", "zero_nsms")
COUNT_COLUMNS = ("experiment", "layer", "matrix", "nsms", "distinct_phenotypes")
WRITER_COLUMNS = ("writer", "source", "mutation_id", "rihf", "cosine", "mmlu_right", "mmlu_wrong")
OUTPUT_COLUMNS = ("writer", "source", "input_index", "prompt", "first_word", "style", "text")
_TABLES = (
    "published_outputs",
    "published_writers",
    "published_counts",
    "published_experiments",
    "effects",
    "probe_margins",
    "tags",
    "results",
    "mutations",
    "matrices",
    "probes",
    "engines",
    "machines",
    "noise_floors",
    "screens",
)
"""Every table a screen has rows in, for a replaced import."""


@dataclass(frozen=True)
class PublishedScreen:
    """Everything of one published screen, as rows of the store's tables."""

    name: str
    model: str
    """The model's Hugging Face id (live mode looks for it in the local cache)."""
    description: dict[str, object]
    """What the screen is: the citation, the model's shape, the files read (its `spec`)."""
    probes: list[Mapping[str, object]]
    matrices: list[Mapping[str, object]]
    mutations: list[Sequence[object]]
    results: list[Mapping[str, object]]
    experiments: list[Sequence[object]] = field(default_factory=list)
    counts: list[Sequence[object]] = field(default_factory=list)
    writers: list[Sequence[object]] = field(default_factory=list)
    outputs: list[Sequence[object]] = field(default_factory=list)


def write_published(path: str | Path, screens: Sequence[PublishedScreen], *, replace: bool) -> None:
    """Write the screens in one transaction: all of them or, on any error, none. A screen of
    the same name is refused unless `replace` (then it goes, rows and all, first)."""
    initialize(path)
    with connect(path, read_only=False) as connection, transaction(connection):
        for screen in screens:
            existing = connection.execute(
                "SELECT screen_id, kind FROM screens WHERE name = ?", [screen.name]
            ).fetchone()
            if existing is not None and not (replace and existing[1] == PUBLISHED):
                raise MutatuiError(
                    f"{path} already holds a screen named {screen.name!r}"
                    + ("; --replace imports it again" if existing[1] == PUBLISHED else "")
                )
            if existing is not None:
                _delete(connection, existing[0])
            _insert_screen(connection, screen)


def _delete(connection: duckdb.DuckDBPyConnection, screen_id: int) -> None:
    for table in _TABLES:
        if has_table(connection, table):
            connection.execute(f"DELETE FROM {table} WHERE screen_id = ?", [screen_id])


def _insert_screen(connection: duckdb.DuckDBPyConnection, screen: PublishedScreen) -> None:
    screen_id = connection.execute(
        "SELECT coalesce(max(screen_id), 0) + 1 FROM screens"
    ).fetchall()[0][0]
    spec = json.dumps(screen.description, sort_keys=True)
    connection.execute(
        "INSERT INTO screens (screen_id, name, kind, model, spec, spec_hash, decoding, "
        "max_new_tokens, planned_mutations, status) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 'complete')",
        [
            screen_id,
            screen.name,
            PUBLISHED,
            screen.model,
            spec,
            "published",
            "sample(T=0.7) as published",
            len(screen.mutations),
        ],
    )
    insert_rows(
        connection,
        "probes",
        PROBE_COLUMNS,
        screen_id,
        [[probe.get(c) for c in PROBE_COLUMNS] for probe in screen.probes],
    )
    insert_rows(
        connection,
        "matrices",
        MATRIX_COLUMNS,
        screen_id,
        [[matrix[c] for c in MATRIX_COLUMNS] for matrix in screen.matrices],
    )
    insert_rows(connection, "mutations", MUTATION_COLUMNS, screen_id, screen.mutations)
    insert_rows(
        connection, "results", RESULT_COLUMNS, screen_id, [result_row(r) for r in screen.results]
    )
    for table, columns, rows in (
        ("published_experiments", EXPERIMENT_COLUMNS, screen.experiments),
        ("published_counts", COUNT_COLUMNS, screen.counts),
        ("published_writers", WRITER_COLUMNS, screen.writers),
        ("published_outputs", OUTPUT_COLUMNS, screen.outputs),
    ):
        insert_rows(connection, table, columns, screen_id, rows)


@dataclass(frozen=True)
class ExperimentCounts:
    """One experiment of a published screen: its type, its total NSMs by kind, and per
    (layer, matrix) its NSMs and distinct phenotypes."""

    name: str
    type: str
    totals: dict[str, int]
    nsms: dict[tuple[int, str], int]
    distinct: dict[tuple[int, str], int | None]


def experiment_counts(path: str | Path, screen_id: int) -> list[ExperimentCounts]:
    """The experiments of a published screen, in the order the authors list them (none for
    another screen)."""
    with connect(path, read_only=True) as connection:
        if not has_table(connection, "published_experiments"):
            return []
        experiments = connection.execute(
            "SELECT experiment, type, max_nsms, min_nsms, zero_nsms FROM published_experiments "
            "WHERE screen_id = ? ORDER BY rowid",
            [screen_id],
        ).fetchall()
        counts = connection.execute(
            "SELECT experiment, layer, matrix, nsms, distinct_phenotypes FROM published_counts "
            "WHERE screen_id = ?",
            [screen_id],
        ).fetchall()
    found = []
    for name, kind, maximum, minimum, zero in experiments:
        rows = [row for row in counts if row[0] == name]
        found.append(
            ExperimentCounts(
                name,
                kind,
                {"max": maximum, "min": minimum, "zero": zero},
                {(layer, matrix): nsms for _, layer, matrix, nsms, _ in rows},
                {(layer, matrix): distinct for _, layer, matrix, _, distinct in rows},
            )
        )
    return found


@dataclass(frozen=True)
class PublishedOutput:
    """A writer's (or the standard model's) published output, as stored."""

    writer: str
    source: str
    input_index: int
    prompt: str
    first_word: str | None
    style: str | None
    text: str | None


def published_outputs(path: str | Path, screen_id: int) -> list[PublishedOutput]:
    with connect(path, read_only=True) as connection:
        if not has_table(connection, "published_outputs"):
            return []
        rows = connection.execute(
            f"SELECT {', '.join(OUTPUT_COLUMNS)} FROM published_outputs WHERE screen_id = ? "
            "ORDER BY source, writer, input_index",
            [screen_id],
        ).fetchall()
    return [PublishedOutput(*row) for row in rows]


def description_of(spec: str) -> dict[str, object] | None:
    """A published screen's description (its `spec`), or None for another screen's spec."""
    try:
        found = json.loads(spec)
    except (TypeError, ValueError):
        return None
    return found if isinstance(found, dict) and "published" in found else None


@dataclass(frozen=True)
class PublishedTiles:
    """The tiles a published screen's table lists (Table 2: those with an Mmlu21 result), one
    entry each, with the screen's description and every matrix's shape: the table is a
    selection of tiles of an exhaustive screen, so a matrix's other tiles were screened too."""

    description: dict[str, object]
    shapes: dict[tuple[int, str], tuple[int, int]]
    """(layer, matrix) -> (rows, cols) of the weight."""
    layer: np.ndarray
    matrix: np.ndarray
    row0: np.ndarray
    col0: np.ndarray
    kind: np.ndarray
    score: np.ndarray
    destructive: np.ndarray

    def __len__(self) -> int:
        return len(self.layer)

    @property
    def tile(self) -> int:
        return int(self.description.get("tile", 64))  # type: ignore[call-overload]

    @property
    def kinds(self) -> list[str]:
        return [str(kind) for kind in self.description.get("kinds", ())]  # type: ignore[union-attr]


def published_tiles(path: str | Path, screen_id: int) -> PublishedTiles:
    """The tiles a published screen's table lists (empty arrays for a table with none): its
    first `listed` mutations, as the importer wrote them (writers of other tables follow)."""
    with connect(path, read_only=True) as connection:
        spec = connection.execute(
            "SELECT spec FROM screens WHERE screen_id = ?", [screen_id]
        ).fetchone()
        shapes = connection.execute(
            "SELECT layer, matrix, rows, cols FROM matrices WHERE screen_id = ?", [screen_id]
        ).fetchall()
        rows = connection.execute(
            "SELECT m.layer, m.matrix, m.row0, m.col0, m.kind, r.choice_score, r.destructive "
            "FROM mutations m JOIN results r USING (screen_id, mutation_id) "
            "JOIN probes p USING (screen_id, probe_id) "
            "WHERE m.screen_id = ? AND p.kind = 'choice' ORDER BY m.mutation_id",
            [screen_id],
        ).fetchall()
    described = (description_of(spec[0]) if spec else None) or {}
    description = dict(described.get("published", {}))  # type: ignore[call-overload]
    listed = description.get("listed")
    if isinstance(listed, int):
        rows = rows[:listed]
    columns = list(zip(*rows, strict=True)) if rows else [()] * 7
    return PublishedTiles(
        description,
        {(layer, matrix): (height, width) for layer, matrix, height, width in shapes},
        np.array(columns[0], dtype=np.int64),
        np.array(columns[1], dtype=object),
        np.array(columns[2], dtype=np.int64),
        np.array(columns[3], dtype=np.int64),
        np.array(columns[4], dtype=object),
        np.array([np.nan if v is None else v for v in columns[5]], dtype=float),
        np.array([bool(v) for v in columns[6]], dtype=bool),
    )


@dataclass(frozen=True)
class WriterSite:
    """Where one published writer sits: its mutation's matrix, tile corner and kind."""

    writer: str
    layer: int
    matrix: str
    row0: int
    col0: int
    kind: str


def published_writer_sites(path: str | Path, screen_id: int) -> list[WriterSite]:
    """Every distinct writer mutation of a published screen (a writer named in two tables
    once), by its first label."""
    with connect(path, read_only=True) as connection:
        if not has_table(connection, "published_writers"):
            return []
        rows = connection.execute(
            "SELECT min(w.writer), m.layer, m.matrix, m.row0, m.col0, m.kind "
            "FROM published_writers w JOIN mutations m USING (screen_id, mutation_id) "
            "WHERE w.screen_id = ? GROUP BY m.mutation_id, m.layer, m.matrix, m.row0, m.col0, "
            "m.kind ORDER BY m.layer, m.matrix, m.row0, m.col0, m.kind",
            [screen_id],
        ).fetchall()
    return [WriterSite(*row) for row in rows]


@dataclass(frozen=True)
class PublishedWriter:
    """A writer as a table names it: its label, the table, its mutation (None: the standard
    model) and the first word the authors give for it (Table 3's RIHF)."""

    writer: str
    source: str
    mutation_id: int | None
    rihf: str | None


def published_writers(path: str | Path, screen_id: int) -> list[PublishedWriter]:
    with connect(path, read_only=True) as connection:
        if not has_table(connection, "published_writers"):
            return []
        rows = connection.execute(
            "SELECT writer, source, mutation_id, rihf FROM published_writers "
            "WHERE screen_id = ? ORDER BY source, writer",
            [screen_id],
        ).fetchall()
    return [PublishedWriter(*row) for row in rows]
