"""Opening a mutatui database under DuckDB's single-writer rule.

DuckDB lets one process hold a database file open for writing, and then no other process may
open it at all. So nobody holds it for long: a screen opens it, appends one batch in one
transaction, and closes it; the explorer opens it read-only for a query and closes it. Both
retry while the other holds the file. A screen also holds `<db>.lock` (an flock) for its whole
run, so a second screen on the same database is refused instead of interleaving.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from mutatui.errors import MutatuiError
from mutatui.store.schema import SCHEMA_VERSION, TABLES

LOCK_WAIT_SECONDS = 30.0


def _is_lock_conflict(error: duckdb.Error) -> bool:
    """Another process holds the file, or this process has it open in the other mode."""
    text = str(error).lower()
    return "lock" in text or "conflicting" in text or "different configuration" in text


@contextmanager
def connect(
    path: str | Path, *, read_only: bool, wait: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection, retried while another process holds the file."""
    target = Path(path)
    if read_only and not target.is_file():
        raise MutatuiError(f"no such database: {target}")
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            connection = duckdb.connect(str(target), read_only=read_only)
            break
        except duckdb.Error as error:
            if not _is_lock_conflict(error):
                raise MutatuiError(
                    f"{target} is not a mutatui database: {str(error).splitlines()[0]}"
                ) from error
            if time.monotonic() > deadline:
                raise MutatuiError(f"{target} is busy: {str(error).splitlines()[0]}") from error
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    try:
        yield connection
    finally:
        connection.close()


def schema_version(connection: duckdb.DuckDBPyConnection) -> int | None:
    """The database's schema version, or None when it is not a mutatui database."""
    tables = {
        row[0]
        for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    if "meta" not in tables:
        return None
    found = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    if not found:
        return None
    row = found[0]
    try:
        return int(row[0])
    except ValueError:
        raise MutatuiError(
            f"unknown schema version {row[0]!r} (this mutatui reads versions 1..{SCHEMA_VERSION})"
        ) from None


def has_table(
    connection: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None
) -> bool:
    """Whether the database (or the attached `catalog`) has `table`: a table added within a
    schema version is missing from files made before it."""
    query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    parameters: list[object] = [table]
    if catalog is not None:
        query += " AND table_catalog = ?"
        parameters.append(catalog)
    return bool(connection.execute(query, parameters).fetchone()[0])


def check_readable(path: str | Path) -> None:
    """Raise a one-line error unless `path` is a mutatui database this version can read."""
    with connect(path, read_only=True) as connection:
        version = schema_version(connection)
    if version is None:
        raise MutatuiError(f"{path} is not a mutatui database (no schema version)")
    if version > SCHEMA_VERSION:
        raise MutatuiError(
            f"{path} has schema version {version}, newer than this mutatui ({SCHEMA_VERSION}); upgrade mutatui"
        )


def initialize(path: str | Path) -> None:
    """Create the tables of a new database, or check (and migrate) an existing one."""
    with connect(path, read_only=False) as connection:
        version = schema_version(connection)
        if version is None:
            existing = connection.execute(
                "SELECT count(*) FROM information_schema.tables"
            ).fetchall()[0][0]
            if existing:
                raise MutatuiError(
                    f"{path} is a DuckDB file with other tables, not a mutatui database"
                )
            connection.execute(TABLES)
            connection.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
        elif version > SCHEMA_VERSION:
            raise MutatuiError(
                f"{path} has schema version {version}, newer than this mutatui ({SCHEMA_VERSION}); upgrade mutatui"
            )
        elif version < SCHEMA_VERSION:
            migrate(connection, version)
        # Tables are created IF NOT EXISTS, so tables added within a version appear here too.
        connection.execute(TABLES)


MIGRATIONS: dict[int, str] = {}
"""SQL that takes a database from version N to N+1."""


def migrate(connection: duckdb.DuckDBPyConnection, version: int) -> None:
    for step in range(version, SCHEMA_VERSION):
        if step not in MIGRATIONS:
            raise MutatuiError(f"database schema version {step} cannot be migrated; rebuild it")
        connection.execute(MIGRATIONS[step])
        connection.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(step + 1)]
        )


def lock_path(path: str | Path) -> Path:
    """The file a screen holds an flock on while it writes `path`."""
    target = Path(path)
    return target.with_name(target.name + ".lock")


def wal_path(path: str | Path) -> Path:
    """DuckDB's write-ahead log of `path`: while it exists, the file alone is not the database."""
    target = Path(path)
    return target.with_name(target.name + ".wal")


def copy_database(source: str | Path, target: str | Path) -> None:
    """Copy `source` to `target` as one self-contained file, also while a screen writes it.

    The copy is taken while holding `source` open read-only, which DuckDB allows only between
    a writer's batches; a write-ahead log left by a killed writer is copied too and folded into
    the copy, so its committed batches are in the one file.
    """
    copied = Path(target)
    with connect(source, read_only=True, wait=600):
        shutil.copyfile(source, copied)
        if wal_path(source).exists():
            shutil.copyfile(wal_path(source), wal_path(copied))
        else:
            wal_path(copied).unlink(missing_ok=True)
    with connect(copied, read_only=False) as connection:
        connection.execute("CHECKPOINT")


@contextmanager
def writer_lock(path: str | Path) -> Iterator[None]:
    """Hold `<db>.lock` for the block; refuse at once when another screen holds it.

    The kernel drops an flock when its process dies, also on SIGKILL, so a stale lock file
    never blocks a resume.
    """
    target = lock_path(path)
    try:
        descriptor = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise MutatuiError(f"cannot write a database at {path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
            raise MutatuiError(
                f"another screen is writing {path} (pid {holder or '?'}); "
                "wait for it or use another database"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)


def writer_alive(path: str | Path) -> bool:
    """True while some process holds the writer lock of `path` (a screen is running)."""
    target = lock_path(path)
    if not target.exists():
        return False
    descriptor = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
