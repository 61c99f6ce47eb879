"""All the SQL a screen needs: create or resume one, append batches, merge, export, summarise.

Every function opens a short-lived connection (`store.database.connect`) and closes it before
returning, so an explorer can read the database between two batches of a running screen.
A batch is one transaction holding its mutations and their results together: after a crash the
database holds whole batches only, and a resume continues after the last one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mutatui.engine.forms import shown
from mutatui.engine.machine import Machine
from mutatui.errors import MutatuiError
from mutatui.exact.noise import NoiseFloor
from mutatui.store.database import (
    attach_read_only,
    cannot_write,
    check_readable,
    check_writable,
    connect,
    has_table,
    initialize,
    live_status,
    removed_on_failure,
    transaction,
)
from mutatui.store.effects import (
    EFFECT_COLUMNS,
    add_noise,
    effect_count,
    effect_row,
    insert_effects,
    insert_margins,
    merge_noise,
    read_noise,
)
from mutatui.store.engines import EngineRecord, copy_engine, read_engine
from mutatui.store.machines import copy_machines, read_machines
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
EXPORT_TABLES = (
    "screens",
    "engines",
    "probes",
    "probe_margins",
    "matrices",
    "mutations",
    "results",
    "effects",
    "tags",
)
EXPORT_FORMATS = ("parquet", "csv")
EXPORT_ORDER = {
    "engines": "screen_id",
    "probes": "screen_id, probe_id",
    "matrices": "screen_id, layer, matrix",
    "mutations": "screen_id, mutation_id",
    "results": "screen_id, mutation_id, probe_id",
    "effects": "screen_id, mutation_id, probe_id",
    "probe_margins": "screen_id, probe_id",
    "tags": "screen_id, mutation_id, tag",
}


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


_SCREEN_FIELDS = (
    "screen_id, name, kind, model, spec, spec_hash, shard, planned_mutations, status, "
    "elapsed_seconds"
)


def _first(result: duckdb.DuckDBPyConnection) -> tuple | None:
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
        row = _first(
            connection.execute(f"SELECT {_SCREEN_FIELDS} FROM screens WHERE name = ?", [name])
        )
    return ScreenRecord(*row) if row else None


def screen_records(path: str | Path) -> list[ScreenRecord]:
    """Every screen's stored record (spec and all), oldest first: what a writer reads."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            f"SELECT {_SCREEN_FIELDS} FROM screens ORDER BY screen_id"
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
        taken = _first(connection.execute("SELECT 1 FROM screens WHERE name = ?", [screen.name]))
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
        row = _first(
            connection.execute("SELECT count(*) FROM mutations WHERE screen_id = ?", [screen_id])
        )
    return int(row[0])


def resume_point(path: str | Path, screen_id: int) -> int:
    """The id after the last committed mutation of the screen (0 for a fresh one).

    Batches are committed in id order, each whole or not at all, so everything below this id
    that the screen (or its shard) owns is already stored.
    """
    with connect(path, read_only=True) as connection:
        row = _first(
            connection.execute(
                "SELECT max(mutation_id) FROM mutations WHERE screen_id = ?", [screen_id]
            )
        )
    return 0 if row[0] is None else int(row[0]) + 1


def phenotype_count(path: str | Path, screen_id: int) -> int:
    """Mutations of the screen that changed some probe's output or destroyed its choice score."""
    with connect(path, read_only=True) as connection:
        row = _first(
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
                f"SELECT {_SCREEN_FIELDS} FROM screens ORDER BY screen_id"
            ).fetchall()
        ]
        summaries = []
        for screen in screens:
            done = connection.execute(
                "SELECT count(*) FROM mutations WHERE screen_id = ?", [screen.screen_id]
            ).fetchall()[0][0]
            per_mutation = _first(
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


def export_table(path: str | Path, table: str, file_format: str, out: str | Path) -> int:
    """Write one table to a Parquet or CSV file; return its row count."""
    if table not in EXPORT_TABLES:
        raise MutatuiError(f"unknown table {table!r}; valid: {', '.join(EXPORT_TABLES)}")
    if file_format not in EXPORT_FORMATS:
        raise MutatuiError(f"unknown format {file_format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    check_readable(path)
    target = Path(out)
    if target.is_dir():
        raise MutatuiError(f"{shown(target)} is a folder; give a file to export {table} into")
    if not target.parent.is_dir():
        raise MutatuiError(f"cannot write {shown(target)}: no folder {shown(target.parent)}")
    order = EXPORT_ORDER.get(table, "screen_id")
    with connect(path, read_only=True) as connection:
        count = connection.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        relation = connection.sql(f"SELECT * FROM {table} ORDER BY {order}")
        try:
            if file_format == "parquet":
                relation.write_parquet(str(target))
            else:
                relation.write_csv(str(target), header=True)
        except duckdb.Error as error:
            target.unlink(missing_ok=True)  # a part-written file is no export
            raise cannot_write(target, error) from None
    return int(count)


# -- merging --------------------------------------------------------------------------------

_PARTS = re.compile(r"^(\d+(?:,\d+)*)/(\d+)$")


def shard_parts(shard: str | None) -> tuple[frozenset[int], int] | None:
    """`K/N` or `a,b/N` as (parts, N); None for a whole screen."""
    if shard is None:
        return None
    match = _PARTS.match(shard)
    if match is None:
        raise MutatuiError(f"unreadable shard {shard!r} in a screen to merge")
    return frozenset(int(v) for v in match[1].split(",")), int(match[2])


def describe_parts(held: frozenset[int], count: int) -> str:
    """How many of a spec's parts a screen holds, and which: "3 of 54 parts (1-2, 5)", runs of
    consecutive parts shortened to ranges so that a long build stays one line."""
    runs: list[list[int]] = []
    for part in sorted(held):
        if runs and part == runs[-1][-1] + 1:
            runs[-1].append(part)
        else:
            runs.append([part])
    which = ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
    return f"{len(held)} of {count} parts ({which})"


def _union_shards(
    shards: Sequence[str | None],
) -> str | None:
    parts: set[int] = set()
    total: int | None = None
    for shard in shards:
        parsed = shard_parts(shard)
        if parsed is None:
            return None
        found, count = parsed
        if total is not None and count != total:
            raise MutatuiError(f"cannot merge shards of {total} parts with shards of {count}")
        total = count
        parts |= found
    assert total is not None
    if parts == set(range(1, total + 1)):
        return None
    return f"{','.join(str(p) for p in sorted(parts))}/{total}"


def _check_same_probes(
    connection: duckdb.DuckDBPyConnection, target: int, alias: str, source: int, name: str
) -> None:
    """Shards of one screen must agree on their probes and baselines, else they disagree on
    the model or the spec and their results cannot be mixed."""
    query = (
        "SELECT probe_id, name, kind, prompt, baseline_tokens, baseline_score, questions "
        "FROM {} WHERE screen_id = ? ORDER BY probe_id"
    )
    mine = connection.execute(query.format("probes"), [target]).fetchall()
    theirs = connection.execute(query.format(f"{alias}.probes"), [source]).fetchall()
    if mine != theirs:
        raise MutatuiError(
            f"screen {name!r}: the parts to merge disagree on probes or baselines "
            "(a different model or settings); merge refused"
        )


def merge(out: str | Path, inputs: Sequence[str | Path]) -> list[tuple[str, int]]:
    """Combine the screens of `inputs` into `out` without duplicates.

    Screens match by name and spec hash (shards of one spec share both); a name with a
    different spec is refused. Mutations already in `out` are kept, new ones appended in id
    order. Published screens are left out (`mutatui import-paper` writes them). Returns
    (screen name, mutations added) per screen touched.
    """
    if not inputs:
        raise MutatuiError("nothing to merge; give one or more input databases")
    out_path = Path(out).resolve()
    for source in inputs:
        if Path(source).resolve() == out_path:
            raise MutatuiError(f"{source} is the output; give inputs other than {out}")
        check_readable(source)
    check_writable(out)
    with removed_on_failure(out):
        return _merge_into(out, inputs)


def _merge_into(out: str | Path, inputs: Sequence[str | Path]) -> list[tuple[str, int]]:
    initialize(out)
    added: list[tuple[str, int]] = []
    with connect(out, read_only=False) as connection:
        aliases = []
        for number, source in enumerate(inputs):
            alias = f"src{number}"
            attach_read_only(connection, source, alias)
            aliases.append(alias)
        with transaction(connection):
            groups: dict[tuple[str, str], list[tuple[str, ScreenRecord]]] = {}
            for alias in aliases:
                for row in connection.execute(
                    f"SELECT {_SCREEN_FIELDS} FROM {alias}.screens ORDER BY screen_id"
                ).fetchall():
                    record = ScreenRecord(*row)
                    if record.kind == "published":
                        continue  # imported from its tables (`mutatui import-paper`), not merged
                    groups.setdefault((record.name, record.spec_hash), []).append((alias, record))
            for (name, spec_hash), members in groups.items():
                added.append((name, _merge_screen(connection, name, spec_hash, members)))
    return added


def _union_of(members: Sequence[tuple[str, ScreenRecord]], table: str) -> tuple[str, list[object]]:
    """A subquery over `table` of every member (aliases are ours, ids are parameters)."""
    parts = [f"SELECT * FROM {alias}.{table} WHERE screen_id = ?" for alias, _ in members]
    return " UNION ALL ".join(parts), [record.screen_id for _, record in members]


@dataclass(frozen=True)
class _Held:
    """A screen's parts (None: the whole spec), planned mutations and screening seconds."""

    parts: frozenset[int] | None
    planned: int | None
    seconds: float


def _adding(
    existing: ScreenRecord | None, members: Sequence[ScreenRecord]
) -> list[tuple[ScreenRecord, _Held]]:
    """The output's screen and the members that add parts to it, in merge order.

    A member whose parts are all held already (merged before, or twice in one merge) adds
    none: neither its mutations nor its plan nor its time. A whole screen holds every part.
    A member holding some parts already and some not is refused: its plan and time cannot be
    split by part. An output holding the whole spec keeps its time: when it was merged while
    a part still ran, the rest of that part's time cannot be told apart from what it had.
    """
    held: list[tuple[ScreenRecord, _Held]] = []
    already: set[int] = set()
    for record in [existing, *members] if existing is not None else members:
        parsed = shard_parts(record.shard)
        parts = None if parsed is None else parsed[0]
        if parts is not None and parts <= already:
            continue
        if already and (parts is None or parts & already):
            raise MutatuiError(
                f"screen {record.name!r}: a part to merge holds some parts that are merged "
                "already and some that are not; merge the single parts instead"
            )
        held.append((record, _Held(parts, record.planned_mutations, float(record.elapsed_seconds))))
        if parts is None:
            break
        already |= parts
    return held


def _merged_planned(held: Sequence[_Held]) -> int | None:
    """Planned mutations of the parts held, each counted once."""
    plans = [h.planned for h in held]
    return None if None in plans else sum(plans)  # type: ignore[arg-type]


def _reorder(connection: duckdb.DuckDBPyConnection, screen_id: int) -> None:
    """Rewrite a screen's mutations and results in id order, as a screen writes them, after a
    merge appended to rows already there (DuckDB's zone maps need the order for fast reads)."""
    for table, order in (("mutations", "mutation_id"), ("results", "mutation_id, probe_id")):
        connection.execute(
            f"CREATE TEMP TABLE reordered AS SELECT * FROM {table} WHERE screen_id = ? "
            f"ORDER BY {order}",
            [screen_id],
        )
        connection.execute(f"DELETE FROM {table} WHERE screen_id = ?", [screen_id])
        connection.execute(f"INSERT INTO {table} SELECT * FROM reordered ORDER BY {order}")
        connection.execute("DROP TABLE reordered")


def reorder_screen(path: str | Path, screen_id: int) -> None:
    """`_reorder` in a transaction of its own (a Ray screen commits parts out of id order)."""
    with connect(path, read_only=False) as connection, transaction(connection):
        _reorder(connection, screen_id)


_MERGED_TABLES = (
    # (table, its rows' key, the table that says a row is stored already, the key compared there)
    ("matrices", ("layer", "matrix"), "matrices", ("layer", "matrix")),
    # results before mutations: a result is new exactly when its mutation is not stored yet
    ("results", ("mutation_id", "probe_id"), "mutations", ("mutation_id",)),
    ("mutations", ("mutation_id",), "mutations", ("mutation_id",)),
    ("tags", ("mutation_id", "tag"), "tags", ("mutation_id", "tag")),
    ("effects", ("mutation_id", "probe_id"), "effects", ("mutation_id", "probe_id")),
    ("probe_margins", ("probe_id",), "probe_margins", ("probe_id",)),
)
"""The tables a merge appends to, in order. Names are the schema's, never user input."""


def _append_new_rows(
    connection: duckdb.DuckDBPyConnection,
    target: int,
    members: Sequence[tuple[str, ScreenRecord]],
    table: str,
    key: tuple[str, ...],
    stored_in: str,
    stored_key: tuple[str, ...],
) -> None:
    """Append to screen `target`'s `table` the members' rows (one per key) not stored yet
    (members made before the table was added have none)."""
    members = [member for member in members if has_table(connection, table, member[0])]
    if not members:
        return
    union, ids = _union_of(members, table)
    match = " AND ".join(f"m.{column} = s.{column}" for column in stored_key)
    connection.execute(
        f"INSERT INTO {table} SELECT ? AS screen_id, * EXCLUDE (screen_id) FROM "
        f"(SELECT DISTINCT ON ({', '.join(key)}) * FROM ({union})) s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {stored_in} m WHERE m.screen_id = ? AND {match}) "
        f"ORDER BY {', '.join(f's.{column}' for column in key)}",
        [target, *ids, target],
    )


def _merge_screen(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    spec_hash: str,
    members: Sequence[tuple[str, ScreenRecord]],
) -> int:
    row = _first(connection.execute(f"SELECT {_SCREEN_FIELDS} FROM screens WHERE name = ?", [name]))
    existing = None if row is None else ScreenRecord(*row)
    if existing is not None and existing.spec_hash != spec_hash:
        raise MutatuiError(
            f"screen {name!r} exists in the output with a different spec; merge refused"
        )
    adding = _adding(existing, [record for _, record in members])
    held = [part for _, part in adding]
    first_alias, first = members[0]
    if existing is None:
        target = connection.execute(
            "SELECT coalesce(max(screen_id), 0) + 1 FROM screens"
        ).fetchall()[0][0]
        for table in ("screens", "probes"):
            connection.execute(
                f"INSERT INTO {table} SELECT ? AS screen_id, * EXCLUDE (screen_id) "
                f"FROM {first_alias}.{table} WHERE screen_id = ?",
                [target, first.screen_id],
            )
    else:
        target = existing.screen_id
    copy_engine(connection, first_alias, first.screen_id, target)
    for alias, record in members:
        _check_same_probes(connection, target, alias, record.screen_id, name)
        copy_machines(connection, alias, record.screen_id, target)
    for alias, record in members:
        if any(added is record for added, _ in adding):
            merge_noise(connection, alias, record.screen_id, target)
    before = connection.execute(
        "SELECT count(*) FROM mutations WHERE screen_id = ?", [target]
    ).fetchall()[0][0]
    for table, key, stored_in, stored_key in _MERGED_TABLES:
        _append_new_rows(connection, target, members, table, key, stored_in, stored_key)
    if before:
        _reorder(connection, target)
    records = [record for _, record in members] + ([existing] if existing else [])
    shard = _union_shards([record.shard for record in records])
    planned = _merged_planned(held)
    after = connection.execute(
        "SELECT count(*) FROM mutations WHERE screen_id = ?", [target]
    ).fetchall()[0][0]
    # complete once it holds every part and every mutation they plan: also when the parts
    # come one merge at a time, or a part still running at one merge is merged again finished
    complete = shard is None and (
        after == planned
        if planned is not None
        else all(record.status == "complete" for record in records)
    )
    connection.execute(
        "UPDATE screens SET shard = ?, status = ?, planned_mutations = ?, elapsed_seconds = ?, "
        "updated_at = current_timestamp WHERE screen_id = ?",
        [
            shard,
            "complete" if complete else "interrupted",
            planned,
            sum(h.seconds for h in held),
            target,
        ],
    )
    return int(after - before)
