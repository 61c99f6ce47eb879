"""Screens combined from several databases (`mutatui merge`, the shards of one spec, the parts
of a Ray screen): matched by name and spec, their mutations taken once each, in id order."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mutatui.errors import MutatuiError
from mutatui.store.database import (
    attach_read_only,
    check_readable,
    check_writable,
    connect,
    has_table,
    initialize,
    removed_on_failure,
    transaction,
)
from mutatui.store.effects import merge_noise
from mutatui.store.engines import copy_engine
from mutatui.store.machines import copy_machines
from mutatui.store.screens import SCREEN_FIELDS, ScreenRecord, first_row

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
                    f"SELECT {SCREEN_FIELDS} FROM {alias}.screens ORDER BY screen_id"
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
    row = first_row(
        connection.execute(f"SELECT {SCREEN_FIELDS} FROM screens WHERE name = ?", [name])
    )
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
