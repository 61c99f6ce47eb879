"""The SQL of a screen's own life: create or resume one, append batches, summarise it (merging
screens is `store.merge`, writing tables out `store.export`).

Every function opens a short-lived connection (`store.database.connect`) and closes it before
returning, so an explorer can read the database between two batches of a running screen.
A batch is one transaction holding its mutations and their results together: after a crash the
database holds whole batches only, and a resume continues after the last one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mutatui.engine.machine import Machine
from mutatui.errors import MutatuiError
from mutatui.exact.noise import NoiseFloor
from mutatui.store.database import (
    check_readable,
    connect,
    has_table,
    initialize,
    live_status,
    transaction,
)
from mutatui.store.effects import (
    EFFECT_COLUMNS,
    add_noise,
    effect_count,
    effect_row,
    insert_effects,
    insert_margins,
    read_noise,
)
from mutatui.store.engines import EngineRecord, read_engine
from mutatui.store.machines import read_machines
from mutatui.store.schema import phenotypic

MUTATION_COLUMNS = (
    "mutation_id",
    "layer",
    "matrix",
    "row0",
    "row1",
    "col0",
    "col1",
    "kind",
    "value",
)
RESULT_COLUMNS = (
    "mutation_id",
    "probe_id",
    "changed",
    "diverge_at",
    "edit_distance",
    "cosine",
    "text",
    "first_word",
    "empty",
    "repetitive",
    "garbage",
    "nonfinite",
    "choice_score",
    "choice_delta",
    "destructive",
    "severity",
    "malignant",
    "style",
    "settled_naively",
)
RESULT_DEFAULTS: dict[str, object] = {
    "empty": False,
    "repetitive": False,
    "garbage": False,
    "nonfinite": False,
    "destructive": False,
    "severity": 0,
    "malignant": False,
    "settled_naively": False,
}
PROBE_COLUMNS = (
    "probe_id",
    "name",
    "kind",
    "style",
    "prompt",
    "baseline_text",
    "baseline_tokens",
    "baseline_score",
    "questions",
)
MATRIX_COLUMNS = ("layer", "matrix", "module_path", "rows", "cols", "min", "max")


@dataclass(frozen=True)
class NewScreen:
    """What a screen records about itself when it starts."""

    name: str
    model: str
    spec: str
    spec_hash: str
    decoding: str
    max_new_tokens: int
    shard: str | None
    planned_mutations: int


@dataclass(frozen=True)
class ScreenRecord:
    screen_id: int
    name: str
    kind: str
    model: str
    spec: str
    spec_hash: str
    shard: str | None
    planned_mutations: int | None
    status: str
    elapsed_seconds: float


SCREEN_FIELDS = (
    "screen_id, name, kind, model, spec, spec_hash, shard, planned_mutations, status, "
    "elapsed_seconds"
)


def first_row(result: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of a result, read to the end (DuckDB 2 wants every result finished)."""
    found = result.fetchall()
    return found[0] if found else None


def _insert(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> None:
    """Insert rows; `table` and `columns` are this module's constants, never user input."""
    if not rows:
        return
    placeholders = ", ".join("?" for _ in columns)
    connection.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        [list(row) for row in rows],
    )


def insert_rows(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    screen_id: int,
    rows: Sequence[Sequence[object]],
) -> None:
    """Rows of one screen into `table` (a schema table, `columns` the store's constants), in
    the caller's transaction."""
    _insert(connection, table, ("screen_id", *columns), [(screen_id, *row) for row in rows])


def find_screen(path: str | Path, name: str) -> ScreenRecord | None:
    """The screen called `name`, or None."""
    with connect(path, read_only=True) as connection:
        row = first_row(
            connection.execute(f"SELECT {SCREEN_FIELDS} FROM screens WHERE name = ?", [name])
        )
    return ScreenRecord(*row) if row else None


def screen_records(path: str | Path) -> list[ScreenRecord]:
    """Every screen's stored record (spec and all), oldest first: what a writer reads."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            f"SELECT {SCREEN_FIELDS} FROM screens ORDER BY screen_id"
        ).fetchall()
    return [ScreenRecord(*row) for row in rows]


def create_screen(
    path: str | Path,
    screen: NewScreen,
    probes: Sequence[Mapping[str, object]],
    matrices: Sequence[Mapping[str, object]],
) -> int:
    """Record a new screen with its probes (and baselines) and matrices; return its id."""
    initialize(path)
    with connect(path, read_only=False) as connection, transaction(connection):
        taken = first_row(connection.execute("SELECT 1 FROM screens WHERE name = ?", [screen.name]))
        if taken:
            raise MutatuiError(
                f"{path} already has a screen named {screen.name!r}; "
                "use --resume to continue it, or --name for a new one"
            )
        screen_id = connection.execute(
            "SELECT coalesce(max(screen_id), 0) + 1 FROM screens"
        ).fetchall()[0][0]
        connection.execute(
            "INSERT INTO screens (screen_id, name, kind, model, spec, spec_hash, decoding, "
            "max_new_tokens, shard, planned_mutations, status) "
            "VALUES (?, ?, 'screen', ?, ?, ?, ?, ?, ?, ?, 'running')",
            [
                screen_id,
                screen.name,
                screen.model,
                screen.spec,
                screen.spec_hash,
                screen.decoding,
                screen.max_new_tokens,
                screen.shard,
                screen.planned_mutations,
            ],
        )
        insert_rows(
            connection,
            "probes",
            PROBE_COLUMNS,
            screen_id,
            [[probe.get(c) for c in PROBE_COLUMNS] for probe in probes],
        )
        insert_rows(
            connection,
            "matrices",
            MATRIX_COLUMNS,
            screen_id,
            [[matrix[c] for c in MATRIX_COLUMNS] for matrix in matrices],
        )
        insert_margins(connection, screen_id, probes)
    return int(screen_id)


def load_probes(path: str | Path, screen_id: int) -> list[dict[str, object]]:
    """The probes of a screen with their baselines, in probe order."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            f"SELECT {', '.join(PROBE_COLUMNS)} FROM probes WHERE screen_id = ? ORDER BY probe_id",
            [screen_id],
        ).fetchall()
    return [dict(zip(PROBE_COLUMNS, row, strict=True)) for row in rows]


def mutation_ids(path: str | Path, screen_id: int) -> list[int]:
    """The ids of a screen's committed mutations, in order."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            "SELECT mutation_id FROM mutations WHERE screen_id = ? ORDER BY mutation_id",
            [screen_id],
        ).fetchall()
    return [row[0] for row in rows]


def committed_count(path: str | Path, screen_id: int) -> int:
    """How many of the screen's mutations are committed (each with all its results)."""
    with connect(path, read_only=True) as connection:
        row = first_row(
            connection.execute("SELECT count(*) FROM mutations WHERE screen_id = ?", [screen_id])
        )
    return int(row[0])


def resume_point(path: str | Path, screen_id: int) -> int:
    """The id after the last committed mutation of the screen (0 for a fresh one).

    Batches are committed in id order, each whole or not at all, so everything below this id
    that the screen (or its shard) owns is already stored.
    """
    with connect(path, read_only=True) as connection:
        row = first_row(
            connection.execute(
                "SELECT max(mutation_id) FROM mutations WHERE screen_id = ?", [screen_id]
            )
        )
    return 0 if row[0] is None else int(row[0]) + 1


def phenotype_count(path: str | Path, screen_id: int) -> int:
    """Mutations of the screen that changed some probe's output or destroyed its choice score."""
    with connect(path, read_only=True) as connection:
        row = first_row(
            connection.execute(
                "SELECT count(DISTINCT mutation_id) FROM results "
                f"WHERE screen_id = ? AND {phenotypic()}",
                [screen_id],
            )
        )
    return int(row[0])


def set_status(path: str | Path, screen_id: int, status: str) -> None:
    with connect(path, read_only=False) as connection:
        connection.execute(
            "UPDATE screens SET status = ?, updated_at = current_timestamp WHERE screen_id = ?",
            [status, screen_id],
        )


@dataclass(frozen=True)
class StyledOutcome:
    """A changed text outcome as stored: what its style label is computed from, and the label."""

    mutation_id: int
    probe_id: int
    text: str
    empty: bool
    repetitive: bool
    garbage: bool
    style: str


def styled_outcomes(path: str | Path, screen_id: int) -> list[StyledOutcome]:
    """Every changed text outcome of a screen that has a style label, in id order."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            """SELECT mutation_id, probe_id, text, empty, repetitive, garbage, style
               FROM results
               WHERE screen_id = ? AND changed AND style IS NOT NULL AND text IS NOT NULL
               ORDER BY mutation_id, probe_id""",
            [screen_id],
        ).fetchall()
    return [StyledOutcome(*row) for row in rows]


def set_styles(path: str | Path, screen_id: int, styles: Sequence[tuple[int, int, str]]) -> None:
    """Relabel outcomes, (mutation_id, probe_id, style) each, in one transaction."""
    if not styles:
        return
    mutation_ids, probe_ids, labels = (list(column) for column in zip(*styles, strict=True))
    with connect(path, read_only=False) as connection:
        connection.execute(
            """UPDATE results SET style = new.style
               FROM (SELECT unnest(?) AS mutation_id, unnest(?) AS probe_id, unnest(?) AS style)
                    AS new
               WHERE results.screen_id = ? AND results.mutation_id = new.mutation_id
                     AND results.probe_id = new.probe_id""",
            [mutation_ids, probe_ids, labels, screen_id],
        )


def result_row(values: Mapping[str, object]) -> list[object]:
    """A results row in `RESULT_COLUMNS` order; unknown keys are an error, missing ones default
    (effect sizes are `effect_row`'s)."""
    unknown = set(values) - set(RESULT_COLUMNS) - set(EFFECT_COLUMNS)
    if unknown:
        raise ValueError(f"not columns of results: {', '.join(sorted(unknown))}")
    return [values.get(c, RESULT_DEFAULTS.get(c)) for c in RESULT_COLUMNS]


def write_batch(
    path: str | Path,
    screen_id: int,
    mutations: Sequence[Sequence[object]],
    results: Sequence[Mapping[str, object]],
    seconds: float,
    noise: NoiseFloor | None = None,
) -> None:
    """Append one batch in one transaction: its mutations (rows in `MUTATION_COLUMNS` order),
    their results (mappings of result columns), the time it took and the noise floor of the
    controls its effect sizes were measured against."""
    with connect(path, read_only=False) as connection, transaction(connection):
        append_rows(connection, screen_id, mutations, results, seconds, noise)


def append_rows(
    connection: duckdb.DuckDBPyConnection,
    screen_id: int,
    mutations: Sequence[Sequence[object]],
    results: Sequence[Mapping[str, object]],
    seconds: float,
    noise: NoiseFloor | None = None,
) -> None:
    """`write_batch`'s inserts, inside a transaction the caller holds (the Ray driver commits
    a part's rows together with its ledger entry, `store.parts.write_part`)."""
    insert_rows(connection, "mutations", MUTATION_COLUMNS, screen_id, mutations)
    insert_rows(connection, "results", RESULT_COLUMNS, screen_id, [result_row(r) for r in results])
    insert_effects(connection, screen_id, [row for row in map(effect_row, results) if row])
    if noise is not None:
        add_noise(connection, screen_id, noise)
    connection.execute(
        "UPDATE screens SET elapsed_seconds = elapsed_seconds + ?, "
        "updated_at = current_timestamp WHERE screen_id = ?",
        [seconds, screen_id],
    )


@dataclass(frozen=True)
class ScreenDetails:
    screen: ScreenRecord
    status: str
    done: int
    phenotypes: int
    malignant: int
    severity: tuple[int, int, int, int]
    probes: list[str]
    matrices: int
    engine: EngineRecord | None = None
    effects: int = 0
    """Text results with effect sizes recorded (`effects` rows)."""
    noise: NoiseFloor | None = None
    """The noise floor of the effect sizes (None: they predate controls, or there are none)."""
    machines: tuple[Machine, ...] = ()
    """Where it ran (none recorded for screens made before machines were)."""
    text_changed: int = 0
    """Mutations that changed a text probe's output: what `mutatui analyze` counts."""
    choice_changed: int = 0
    """Mutations that changed (or destroyed) a choice probe's answers."""
    choice_probes: int = 0


def summarize(path: str | Path) -> list[ScreenDetails]:
    """Per screen: progress, phenotypes (mutations that changed any probe), severity counts."""
    check_readable(path)
    with connect(path, read_only=True) as connection:
        screens = [
            ScreenRecord(*row)
            for row in connection.execute(
                f"SELECT {SCREEN_FIELDS} FROM screens ORDER BY screen_id"
            ).fetchall()
        ]
        summaries = []
        for screen in screens:
            done = connection.execute(
                "SELECT count(*) FROM mutations WHERE screen_id = ?", [screen.screen_id]
            ).fetchall()[0][0]
            per_mutation = first_row(
                connection.execute(
                    "SELECT count(*) FILTER (WHERE changed), count(*) FILTER (WHERE malignant), "
                    "count(*) FILTER (WHERE severity = 0), count(*) FILTER (WHERE severity = 1), "
                    "count(*) FILTER (WHERE severity = 2), count(*) FILTER (WHERE severity = 3), "
                    "count(*) FILTER (WHERE text_changed), count(*) FILTER (WHERE choice_changed) "
                    f"FROM (SELECT bool_or{phenotypic('r')} AS changed, "
                    "bool_or(r.malignant) AS malignant, max(r.severity) AS severity, "
                    "bool_or(r.changed AND p.kind = 'text') AS text_changed, "
                    f"bool_or({phenotypic('r')} AND p.kind = 'choice') AS choice_changed "
                    "FROM results r JOIN probes p USING (screen_id, probe_id) "
                    "WHERE r.screen_id = ? GROUP BY r.mutation_id)",
                    [screen.screen_id],
                )
            )
            probe_rows = connection.execute(
                "SELECT name, kind, style FROM probes WHERE screen_id = ? ORDER BY probe_id",
                [screen.screen_id],
            ).fetchall()
            probes = [
                f"{name} ({kind}{', ' + style if style else ''})"
                for name, kind, style in probe_rows
            ]
            matrices = connection.execute(
                "SELECT count(*) FROM matrices WHERE screen_id = ?", [screen.screen_id]
            ).fetchall()[0][0]
            effects = (
                effect_count(connection, screen.screen_id)
                if has_table(connection, "effects")
                else 0
            )
            summaries.append(
                ScreenDetails(
                    screen=screen,
                    status=live_status(path, screen.status),
                    done=int(done),
                    phenotypes=int(per_mutation[0]),
                    malignant=int(per_mutation[1]),
                    severity=tuple(int(v) for v in per_mutation[2:6]),  # type: ignore[arg-type]
                    text_changed=int(per_mutation[6]),
                    choice_changed=int(per_mutation[7]),
                    choice_probes=sum(kind == "choice" for _, kind, _ in probe_rows),
                    probes=probes,
                    matrices=int(matrices),
                    engine=read_engine(connection, screen.screen_id),
                    noise=read_noise(connection, screen.screen_id),
                    machines=tuple(read_machines(connection, screen.screen_id)),
                    effects=int(effects),
                )
            )
    return summaries
