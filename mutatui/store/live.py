"""The SQL of live mode: live runs kept as part of a live screen (`screens.kind = 'live'`).

One live screen per model, decoding, max_new_tokens and chat setting, so that all its results
are comparable (the same baseline per prompt), exactly like a screen's. A completed run becomes a
graded row of `mutations` and `results` (one mutation per site and kind, one probe per prompt;
running it again replaces its result), so the explorer's grid and detail pane show it. Every run,
cancelled and failed ones too, is logged in `live_runs` with its partial texts and timings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import duckdb

from mutatui.engine.sites import Site
from mutatui.errors import MutatuiError
from mutatui.store import screens
from mutatui.store.database import connect, has_table, initialize, transaction
from mutatui.store.places import ensure_data_folder

LIVE_KIND = "live"

CHOICE_COLUMNS = ("choice_score", "choice_delta", "destructive")
RESULT_COLUMNS = tuple(
    column
    for column in screens.RESULT_COLUMNS
    if column not in ("mutation_id", "probe_id", *CHOICE_COLUMNS)
)
"""The `results` columns a graded live run fills (choice-probe columns stay NULL)."""


@dataclass(frozen=True)
class LiveScreenKey:
    """What makes live results comparable: they share a live screen."""

    model: str
    decoding: str
    max_new_tokens: int
    chat: bool = True

    @property
    def name(self) -> str:
        chat = "" if self.chat else " · no chat"
        return f"live · {self.model} · {self.decoding} · {self.max_new_tokens} tokens{chat}"

    def spec(self) -> str:
        """The screen's spec as canonical JSON."""
        return json.dumps(
            {
                "kind": LIVE_KIND,
                "model": self.model,
                "decoding": self.decoding,
                "max_new_tokens": self.max_new_tokens,
                "chat": self.chat,
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class MatrixRow:
    """A `matrices` row: the mutated matrix's shape and unmutated extremes."""

    layer: int
    matrix: str
    module_path: str
    rows: int
    cols: int
    min: float
    max: float


@dataclass(frozen=True, kw_only=True)
class LiveRunOutcome:
    """What a live run did: the columns of `live_runs` that are saved and read back alike."""

    kind: str
    value: float
    prompt: str
    status: str
    steps: int
    baseline_text: str
    mutant_text: str
    diverge_at: int | None
    first_token_seconds: float | None
    tokens_per_second: float | None
    elapsed_seconds: float
    error: str | None = None


OUTCOME_COLUMNS = tuple(field.name for field in fields(LiveRunOutcome))
"""The `live_runs` columns named like `LiveRunOutcome`'s fields (identifiers of ours)."""


@dataclass(frozen=True, kw_only=True)
class LiveRunRecord(LiveRunOutcome):
    """One live run, ready to save. `baseline_tokens` and `graded` only for completed runs.

    `matrices` lists the model's matrices (all of them, so the grid can show the whole model;
    at least the mutated one); they are written once per live screen.
    """

    key: LiveScreenKey
    matrices: tuple[MatrixRow, ...]
    site: Site
    style: str | None = None
    baseline_tokens: list[int] | None = None
    graded: Mapping[str, object] | None = None


@dataclass(frozen=True)
class SavedLiveRun:
    screen_id: int
    screen_name: str
    run_id: int
    mutation_id: int | None
    probe_id: int | None


@dataclass(frozen=True, kw_only=True)
class LiveRunRow(LiveRunOutcome):
    """A row of `live_runs` as the explorer shows it."""

    screen_id: int
    run_id: int
    site: str
    mutation_id: int | None
    probe_id: int | None


_SITE_COLUMNS = ("layer", "matrix", "row0", "row1", "col0", "col1")
_RUN_COLUMNS = ("screen_id", "run_id", *_SITE_COLUMNS, *OUTCOME_COLUMNS, "mutation_id", "probe_id")


def save_live_run(path: str | Path, record: LiveRunRecord) -> SavedLiveRun:
    """Save one live run in one transaction (creating the database and live screen if needed)."""
    if record.graded is not None and not set(record.graded) <= set(RESULT_COLUMNS):
        unknown = sorted(set(record.graded) - set(RESULT_COLUMNS))
        raise MutatuiError(f"unknown result columns {unknown}; valid: {', '.join(RESULT_COLUMNS)}")
    ensure_data_folder(path)  # the first run of a fresh data directory is saved too
    initialize(path)
    with connect(path, read_only=False) as connection, transaction(connection):
        return _save(connection, record)


def _save(connection: duckdb.DuckDBPyConnection, record: LiveRunRecord) -> SavedLiveRun:
    screen_id, created = _live_screen(connection, record.key)
    if created:
        _add_matrices(connection, screen_id, record.matrices)
    mutation_id = probe_id = None
    if record.graded is not None:
        probe_id = _probe(connection, screen_id, record)
        mutation_id = _mutation(connection, screen_id, record)
        _write_result(connection, screen_id, mutation_id, probe_id, record.graded)
    run_id = _next_id(connection, "live_runs", "run_id", screen_id)
    site = record.site
    connection.execute(
        f"INSERT INTO live_runs ({', '.join(_RUN_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _RUN_COLUMNS)})",
        [
            screen_id,
            run_id,
            *(site.layer, site.matrix, site.row0, site.row1, site.col0, site.col1),
            *(getattr(record, column) for column in OUTCOME_COLUMNS),
            mutation_id,
            probe_id,
        ],
    )
    connection.execute(
        "UPDATE screens SET updated_at = current_timestamp, "
        "elapsed_seconds = elapsed_seconds + ?, "
        "planned_mutations = (SELECT count(*) FROM mutations WHERE screen_id = ?) "
        "WHERE screen_id = ?",
        [record.elapsed_seconds, screen_id, screen_id],
    )
    return SavedLiveRun(screen_id, record.key.name, run_id, mutation_id, probe_id)


def _next_id(connection: duckdb.DuckDBPyConnection, table: str, column: str, screen_id: int) -> int:
    # table and column are constants of this module, never user input.
    row = connection.execute(
        f"SELECT coalesce(max({column}) + 1, 0) FROM {table} WHERE screen_id = ?", [screen_id]
    ).fetchone()
    return int(row[0])


def _live_screen(connection: duckdb.DuckDBPyConnection, key: LiveScreenKey) -> tuple[int, bool]:
    """The live screen's id, and whether it was created just now."""
    found = connection.execute(
        "SELECT screen_id, kind FROM screens WHERE name = ?", [key.name]
    ).fetchone()
    if found is not None:
        if found[1] != LIVE_KIND:
            raise MutatuiError(f"a screen named {key.name!r} exists and is not a live screen")
        return int(found[0]), False
    screen_id = int(
        connection.execute("SELECT coalesce(max(screen_id) + 1, 1) FROM screens").fetchone()[0]
    )
    spec = key.spec()
    connection.execute(
        "INSERT INTO screens (screen_id, name, kind, model, spec, spec_hash, decoding, "
        "max_new_tokens, planned_mutations, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 'complete')",
        [
            screen_id,
            key.name,
            LIVE_KIND,
            key.model,
            spec,
            hashlib.sha256(spec.encode()).hexdigest(),
            key.decoding,
            key.max_new_tokens,
        ],
    )
    return screen_id, True


def _add_matrices(
    connection: duckdb.DuckDBPyConnection, screen_id: int, matrices: Sequence[MatrixRow]
) -> None:
    connection.executemany(
        "INSERT INTO matrices (screen_id, layer, matrix, module_path, rows, cols, min, max) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [screen_id, m.layer, m.matrix, m.module_path, m.rows, m.cols, m.min, m.max]
            for m in matrices
        ],
    )


def _probe(connection: duckdb.DuckDBPyConnection, screen_id: int, record: LiveRunRecord) -> int:
    """The prompt's probe; its baseline is the same for every run of this live screen."""
    found = connection.execute(
        "SELECT probe_id FROM probes WHERE screen_id = ? AND kind = 'text' AND prompt = ?",
        [screen_id, record.prompt],
    ).fetchone()
    if found is not None:
        return int(found[0])
    probe_id = _next_id(connection, "probes", "probe_id", screen_id)
    connection.execute(
        "INSERT INTO probes (screen_id, probe_id, name, kind, style, prompt, baseline_text, "
        "baseline_tokens) VALUES (?, ?, ?, 'text', ?, ?, ?, ?)",
        [
            screen_id,
            probe_id,
            f"live-{probe_id}",
            record.style,
            record.prompt,
            record.baseline_text,
            record.baseline_tokens,
        ],
    )
    return probe_id


def _mutation(connection: duckdb.DuckDBPyConnection, screen_id: int, record: LiveRunRecord) -> int:
    """The site and kind's mutation row (one per site, kind and value in a live screen)."""
    site = record.site
    identity = [screen_id, site.layer, site.matrix, site.row0, site.row1, site.col0, site.col1]
    found = connection.execute(
        "SELECT mutation_id FROM mutations WHERE screen_id = ? AND layer = ? AND matrix = ? "
        "AND row0 = ? AND row1 = ? AND col0 = ? AND col1 = ? AND kind = ? "
        "AND value IS NOT DISTINCT FROM ?",
        [*identity, record.kind, record.value],
    ).fetchone()
    if found is not None:
        return int(found[0])
    mutation_id = _next_id(connection, "mutations", "mutation_id", screen_id)
    connection.execute(
        "INSERT INTO mutations (screen_id, mutation_id, layer, matrix, row0, row1, col0, col1, "
        "kind, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [screen_id, mutation_id, *identity[1:], record.kind, record.value],
    )
    return mutation_id


def _write_result(
    connection: duckdb.DuckDBPyConnection,
    screen_id: int,
    mutation_id: int,
    probe_id: int,
    graded: Mapping[str, object],
) -> None:
    columns = [column for column in RESULT_COLUMNS if column in graded]
    names = ", ".join(("screen_id", "mutation_id", "probe_id", *columns))
    marks = ", ".join("?" * (3 + len(columns)))
    connection.execute(
        "DELETE FROM results WHERE screen_id = ? AND mutation_id = ? AND probe_id = ?",
        [screen_id, mutation_id, probe_id],
    )
    connection.execute(
        f"INSERT INTO results ({names}) VALUES ({marks})",
        [screen_id, mutation_id, probe_id, *(graded[column] for column in columns)],
    )


@dataclass(frozen=True)
class ScreenDecoding:
    """How a screen decoded, so that live mode can reproduce its results."""

    mode: str
    temperature: float
    seed: int
    max_new_tokens: int
    chat: bool


def screen_decoding(path: str | Path, screen_id: int) -> ScreenDecoding | None:
    """A screen's decoding settings from its spec; None when the spec does not say them (a live
    screen's spec names its decoding only as text, and live screens decode greedily unless
    started otherwise)."""
    with connect(path, read_only=True) as connection:
        row = connection.execute(
            "SELECT spec, max_new_tokens FROM screens WHERE screen_id = ?", [screen_id]
        ).fetchone()
    if row is None:
        return None
    try:
        spec = json.loads(row[0])
        decoding = spec["decoding"]
        return ScreenDecoding(
            mode=str(decoding["mode"]),
            temperature=float(decoding.get("temperature", 0.7)),
            seed=int(decoding.get("seed", 0)),
            max_new_tokens=int(row[1]),
            chat=bool(spec.get("chat", True)),
        )
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


def read_live_runs(path: str | Path, screen_id: int | None = None) -> list[LiveRunRow]:
    """Live runs, oldest first, of one live screen or of all of them."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM live_runs "
            "WHERE ? IS NULL OR screen_id = ? ORDER BY screen_id, run_id",
            [screen_id, screen_id],
        ).fetchall()
    return _run_rows(rows)


def live_runs_at(path: str | Path, model: str, site: Site) -> list[LiveRunRow]:
    """The live runs of `model` on exactly `site` (every kind), oldest first: what the explorer
    shows beside a screened mutation of that site. None when the file or its table is absent
    (no live run was saved there yet)."""
    if not Path(path).exists():
        return []
    with connect(path, read_only=True) as connection:
        if not has_table(connection, "live_runs"):
            return []
        rows = connection.execute(
            f"SELECT {', '.join('r.' + c for c in _RUN_COLUMNS)} FROM live_runs r "
            "JOIN screens s USING (screen_id) WHERE s.kind = $live AND s.model = $model "
            "AND r.layer = $layer AND r.matrix = $matrix AND r.row0 = $row0 AND r.row1 = $row1 "
            "AND r.col0 = $col0 AND r.col1 = $col1 ORDER BY r.created_at, r.screen_id, r.run_id",
            {"live": LIVE_KIND, "model": model, **dataclasses.asdict(site)},
        ).fetchall()
    return _run_rows(rows)


def _run_rows(rows: list[tuple]) -> list[LiveRunRow]:
    outcome = slice(2 + len(_SITE_COLUMNS), 2 + len(_SITE_COLUMNS) + len(OUTCOME_COLUMNS))
    return [
        LiveRunRow(
            screen_id=row[0],
            run_id=row[1],
            site=str(Site(*row[2 : outcome.start])),
            **dict(zip(OUTCOME_COLUMNS, row[outcome], strict=True)),
            mutation_id=row[-2],
            probe_id=row[-1],
        )
        for row in rows
    ]
