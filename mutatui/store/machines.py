"""Where each screen ran (the `machines` table): a row per machine that computed some of it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from mutatui.engine.machine import MACHINE_FIELDS, Machine
from mutatui.store.database import connect, has_table, transaction

_COLUMNS = ", ".join(MACHINE_FIELDS)


def record_machine(path: str | Path, screen_id: int, machine: Machine) -> None:
    """Note that `machine` computes part of screen `screen_id` (once per machine)."""
    values = [getattr(machine, name) for name in MACHINE_FIELDS]
    with connect(path, read_only=False) as connection, transaction(connection):
        connection.execute(
            f"INSERT INTO machines (screen_id, digest, {_COLUMNS}) "
            f"VALUES (?, ?, {', '.join('?' for _ in values)}) ON CONFLICT DO NOTHING",
            [screen_id, machine.digest, *values],
        )


def read_machines(connection: duckdb.DuckDBPyConnection, screen_id: int) -> list[Machine]:
    """The machines that computed screen `screen_id`, first first (none recorded: [])."""
    if not has_table(connection, "machines"):
        return []
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM machines WHERE screen_id = ? ORDER BY first_seen, digest",
        [screen_id],
    ).fetchall()
    return [Machine(*row) for row in rows]


def machines_of(path: str | Path, screen_id: int) -> list[Machine]:
    with connect(path, read_only=True) as connection:
        return read_machines(connection, screen_id)


def copy_machines(
    connection: duckdb.DuckDBPyConnection, source: str, source_id: int, target_id: int
) -> None:
    """In a merge: the machines of `source`'s screen `source_id` (an attached database) for
    screen `target_id`."""
    if not has_table(connection, "machines", source):
        return
    connection.execute(
        f"INSERT INTO machines SELECT ? AS screen_id, * EXCLUDE (screen_id) FROM {source}.machines "
        "WHERE screen_id = ? ON CONFLICT DO NOTHING",
        [target_id, source_id],
    )


def machines_by_screen(connection: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """Per screen, where it ran in a few words: the first machine's processor and kernels,
    and how many others computed part of it (none recorded: no entry)."""
    if not has_table(connection, "machines"):
        return {}
    rows = connection.execute(
        "SELECT screen_id, arg_min(processor || '; ' || kernels, first_seen), count(*) "
        "FROM machines GROUP BY screen_id"
    ).fetchall()
    return {
        screen_id: first + (f" (+{count - 1} more)" if count > 1 else "")
        for screen_id, first, count in rows
    }
