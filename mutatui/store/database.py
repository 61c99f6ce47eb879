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
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import duckdb

from mutatui import process
from mutatui.engine.forms import shown
from mutatui.errors import MutatuiError
from mutatui.store.places import refuse_bundled, unwritable
from mutatui.store.schema import SCHEMA_VERSION, TABLES

LOCK_WAIT_SECONDS = 30.0

T = TypeVar("T")


CONFIG = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}
"""Every connection's settings: opening a file that is not DuckDB's (a SQLite file) never
makes DuckDB fetch an extension from the network. One config for every connection, since
DuckDB refuses a second connection to a file with another."""


def _is_lock_conflict(error: duckdb.Error) -> bool:
    """Another process holds the file, or this process has it open in the other mode."""
    text = str(error).lower()
    if any(sign.lower() in text for sign in DAMAGE_SIGNS):
        return False  # "... in block at location 8192": a damaged file, not a held one
    return (
        bool(re.search(r"\block\b", text))
        or "conflicting" in text
        or ("different configuration" in text)
    )


def _cause(error: BaseException) -> str:
    """The operating system's reason at the end of a DuckDB or OS error ("No space left on
    device"), or the error's first line."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return first.rsplit(": ", 1)[-1] if '": ' in first else first


DAMAGE_SIGNS = ("Could not read enough bytes", "Corrupt database file", "checksum")
"""What DuckDB says of a file cut short or changed on disk."""


def damaged(target: Path, error: duckdb.Error) -> MutatuiError | None:
    """The one line for a damaged database file (truncated, or failing its checksums), or None
    when the error is not that."""
    text = str(error)
    if not any(sign in text for sign in DAMAGE_SIGNS):
        return None
    first = text.splitlines()[0] if text else type(error).__name__
    detail = re.sub(r' from file "[^"]*"', "", first.split("Error: ", 1)[-1])
    detail = re.sub(
        r"computed checksum \d+ does not match stored checksum \d+", "checksum mismatch", detail
    )
    return MutatuiError(f"{shown(target)} is damaged (DuckDB: {detail}); nothing was changed")


DUCKDB_MAGIC = b"DUCK"
"""The bytes at offset 8 of every DuckDB file."""

HEADER_BYTES = 3 * 4096
"""A DuckDB file is its headers and then whole blocks: a size that is not is a file cut short."""


def check_whole(target: Path) -> None:
    """Refuse a DuckDB file whose size is not whole blocks (copied or written part-way): DuckDB
    would read what is there as an empty database, or fail on a block past the end."""
    if not target.is_file():
        return
    with target.open("rb") as handle:
        if handle.read(12)[8:] != DUCKDB_MAGIC:
            return  # not DuckDB's: opening it says what it is
    size = target.stat().st_size
    if size < HEADER_BYTES or size % 4096:
        raise MutatuiError(
            f"{shown(target)} is damaged (its {size:,} bytes are not whole blocks of a DuckDB "
            "file: cut short?); nothing was changed"
        )


def check_regular(target: Path) -> None:
    """Refuse a path that is neither a regular file nor missing: a named pipe would block the
    open forever, a device or socket is no database."""
    if target.is_dir():
        raise MutatuiError(f"{shown(target)} is a directory; give a database file")
    if target.exists() and not target.is_file():
        raise MutatuiError(
            f"{shown(target)} is not a regular file (a named pipe, device or socket); give a "
            "database file"
        )


def _open_error(target: Path, error: duckdb.Error) -> MutatuiError:
    """One line for a file DuckDB could not open: the path's problem, or the file's."""
    text = str(error)
    if target.is_dir():
        return MutatuiError(f"{shown(target)} is a directory; give a database file")
    if (found := damaged(target, error)) is not None:
        return found
    if "not a valid DuckDB database" in text:
        return MutatuiError(f"{shown(target)} is not a mutatui database (not a DuckDB file)")
    if "Extension" in text or "sqlite" in text.lower():
        return MutatuiError(f"{shown(target)} is not a mutatui database (a SQLite file?)")
    return MutatuiError(f"cannot open {shown(target)}: {_cause(error)}")


def write_failure(path: str | Path, error: BaseException) -> MutatuiError | None:
    """The one line for a write that the file system refused (full disk, read-only file,
    permissions), or None for any other error."""
    refused = isinstance(error, OSError) or (
        isinstance(error, duckdb.Error)
        and any(
            word in str(error)
            for word in ("Could not write", "No space left", "Read-only", "Permission denied")
        )
    )
    if not refused:
        return None
    return MutatuiError(
        f"cannot write {shown(path)}: {_cause(error)}; everything committed before is kept"
    )


def cannot_write(path: str | Path, error: BaseException) -> MutatuiError:
    """The one line for a file that could not be written, whatever the cause."""
    return MutatuiError(f"cannot write {shown(path)}: {_cause(error)}")


def _retried(target: Path, opening: Callable[[], T], wait: float) -> T:
    """`opening()`, tried again while another process holds `target` (up to `wait` seconds)."""
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            return opening()
        except duckdb.Error as error:
            if not _is_lock_conflict(error):
                raise _open_error(target, error) from None
            if time.monotonic() > deadline:
                raise MutatuiError(f"{shown(target)} is busy: {_cause(error)}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def quiet(connection: duckdb.DuckDBPyConnection) -> None:
    """No progress bar from DuckDB on the terminal the explorer draws."""
    connection.execute("SET enable_progress_bar = false")


@contextmanager
def connect(
    path: str | Path, *, read_only: bool, wait: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection, retried while another process holds the file."""
    target = Path(path)
    if read_only and not target.exists():
        raise MutatuiError(f"no such database: {shown(target)}")
    if not read_only and not target.parent.is_dir():
        raise MutatuiError(f"cannot write {shown(target)}: {shown(target.parent)} is not a folder")
    check_regular(target)
    check_whole(target)
    # the file itself, so that its write-ahead log lies beside it whatever name it was given
    real = str(target.resolve())
    connection = _retried(
        target, lambda: duckdb.connect(real, read_only=read_only, config=CONFIG), wait
    )
    try:
        yield connection
    except RuntimeError as error:  # a stop signal inside a query (DuckDB's own Error is apart)
        stop = process.interruption(error)
        if stop is None:
            raise
        raise stop from None
    except duckdb.Error as error:
        failure = damaged(target, error) or (
            write_failure(target, error) if not read_only else None
        )
        if failure is None:
            failure = incomplete(connection, target, error)
        if failure is None:
            raise
        raise failure from None
    finally:
        try:
            connection.close()
        except duckdb.Error as error:
            failure = write_failure(target, error)
            if failure is None:
                raise
            raise failure from None


def attach_read_only(
    connection: duckdb.DuckDBPyConnection,
    path: str | Path,
    alias: str,
    wait: float = LOCK_WAIT_SECONDS,
) -> None:
    """Attach `path` read-only as `alias`, retried as `connect` is while a writer holds it."""
    target = Path(path).resolve()
    _retried(
        target, lambda: connection.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(target)]), wait
    )


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block's statements committed together or not at all.

    A COMMIT that the file system refuses has already ended the transaction, so the rollback
    after it is skipped rather than raised over the cause (which `connect` turns into one
    line).
    """
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.TransactionException):  # a failed COMMIT ended it already
            connection.execute("ROLLBACK")
        raise


def check_version(path: str | Path, version: int | None) -> None:
    """The one rule for every command, readers and writers alike: versions 1 up to this
    mutatui's are read and written (older ones migrated on write); others are refused."""
    if version is None:
        raise MutatuiError(f"{shown(path)} is not a mutatui database (no schema version)")
    if version > SCHEMA_VERSION:
        raise MutatuiError(
            f"{shown(path)} has schema version {version}, newer than this mutatui "
            f"({SCHEMA_VERSION}); upgrade mutatui"
        )
    if version < 1:
        raise MutatuiError(
            f"{shown(path)} has schema version {version}; this mutatui reads and writes "
            f"versions 1..{SCHEMA_VERSION}"
        )


def schema_version(connection: duckdb.DuckDBPyConnection) -> int | None:
    """The database's schema version, or None when it is not a mutatui database."""
    tables = {
        row[0]
        for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    if "meta" not in tables:
        return None
    try:
        found = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    except duckdb.Error as error:
        if any(sign in str(error) for sign in DAMAGE_SIGNS):
            raise  # the file's, said by `connect`
        return None  # a table named meta of some other program
    if not found:
        return None
    row = found[0]
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise MutatuiError(
            f"unknown schema version {str(row[0])[:20]!r} "
            f"(this mutatui reads versions 1..{SCHEMA_VERSION})"
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
    """Raise a one-line error unless `path` is a mutatui database this version can read, whole:
    its core tables there with their columns."""
    with connect(path, read_only=True) as connection:
        version = schema_version(connection)
        check_version(path, version)
        missing = missing_parts(connection)
    if missing:
        raise _lacking(path, missing)


CORE_TABLES = ("meta", "screens", "probes", "matrices", "mutations", "results")
"""The tables every mutatui database has had since version 1; later tables may be missing
from older files (readers check `has_table`), these never."""


@lru_cache(maxsize=1)
def expected_columns() -> dict[str, frozenset[str]]:
    """Every table of this version's schema with its columns (the schema built in memory)."""
    with duckdb.connect(":memory:", config=CONFIG) as connection:
        connection.execute(TABLES)
        rows = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
        ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return {table: frozenset(columns) for table, columns in found.items()}


def missing_parts(connection: duckdb.DuckDBPyConnection) -> str:
    """What the open database lacks of this version's schema, in a few words ("" if nothing):
    a core table, or a column of a table it has."""
    rows = connection.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = current_database()"
    ).fetchall()
    present: dict[str, set[str]] = {}
    for table, column in rows:
        present.setdefault(table, set()).add(column)
    lacking = [f"table {table}" for table in CORE_TABLES if table not in present]
    for table, columns in expected_columns().items():
        if table in present and (gone := sorted(columns - present[table])):
            lacking.append(
                f"{table}.{gone[0]}" + (f" and {len(gone) - 1} more" if gone[1:] else "")
            )
    return ", ".join(lacking[:3]) + (f" and {len(lacking) - 3} more" if len(lacking) > 3 else "")


def incomplete(
    connection: duckdb.DuckDBPyConnection, target: Path, error: duckdb.Error
) -> MutatuiError | None:
    """For a query that failed on a missing table or column, the one line saying the file lacks
    parts of the schema, or None when it does not (the error is then not the file's)."""
    if not isinstance(error, duckdb.CatalogException | duckdb.BinderException):
        return None
    try:
        missing = missing_parts(connection)
    except duckdb.Error:
        return None
    return _lacking(target, missing) if missing else None


def _lacking(path: str | Path, missing: str) -> MutatuiError:
    return MutatuiError(
        f"{shown(path)} is a mutatui database with parts missing ({missing}): changed "
        "outside mutatui; nothing was changed"
    )


@contextmanager
def removed_on_failure(path: str | Path) -> Iterator[None]:
    """A database the block creates is removed again when the block fails: a refused command
    leaves no file behind. One that existed before is left to its transactions."""
    target = Path(path)
    existed = target.exists()
    try:
        yield
    except BaseException:
        if not existed:
            for leftover in (wal_path(target), target):
                leftover.unlink(missing_ok=True)
        raise


def check_writable(path: str | Path) -> None:
    """Refuse now, before a long computation, a database it could not be stored into: one of
    another schema version, in a folder that does not exist, on a read-only file system or
    made read-only, or the bundled screens.db (by any name)."""
    target = Path(path)
    if target.exists():
        check_readable(target)
    elif not target.parent.is_dir():
        raise MutatuiError(f"cannot write {shown(target)}: no folder {shown(target.parent)}")
    refuse_unwritable(target)


def refuse_unwritable(target: Path) -> None:
    """Refuse the bundled screens.db and a database whose file or folder is read-only (the
    folder must exist): before any lock, write-ahead log or file is made."""
    refuse_bundled(target)
    if (why := unwritable(target)) is not None:
        raise MutatuiError(f"cannot write {shown(target)}: {why}; nothing was changed")


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
                    f"{shown(path)} is not a mutatui database (no schema version; a DuckDB "
                    "file with other tables)"
                )
            connection.execute(TABLES)
            connection.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            return
        check_version(path, version)
        if missing := missing_parts(connection):
            raise _lacking(path, missing)
        if version < SCHEMA_VERSION:
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
    """The file a screen holds an flock on while it writes `path`: beside the file itself, so
    that two names of one database (a symlink) take one lock."""
    target = Path(path).resolve()
    return target.with_name(target.name + ".lock")


def wal_path(path: str | Path) -> Path:
    """DuckDB's write-ahead log of `path`, beside the file itself (connect opens that): while
    it exists, the file alone is not the database."""
    target = Path(path).resolve()
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
    never blocks a resume. The holder removes the file when it is done; a process that locked
    a file removed meanwhile tries again on the new one.
    """
    if Path(path).parent.is_dir():  # else opening the lock says there is no such folder
        refuse_unwritable(Path(path))
    target = lock_path(path)
    while True:
        descriptor = _open_lock(target, path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
            os.close(descriptor)
            raise MutatuiError(
                f"another screen is writing {shown(path)} (pid {holder or '?'}); "
                "wait for it or use another database"
            ) from None
        if _same_file(descriptor, target):
            break
        os.close(descriptor)
    try:
        with suppress(OSError):  # the pid is for the refusal's message; a full disk has no room
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        target.unlink(missing_ok=True)
        os.close(descriptor)


def _open_lock(target: Path, path: str | Path) -> int:
    try:
        return os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        why = unwritable(Path(path)) if Path(path).parent.is_dir() else None
        raise MutatuiError(
            f"cannot write {shown(path)}: {why or error.strerror}; nothing was changed"
        ) from None


def _same_file(descriptor: int, target: Path) -> bool:
    """Whether `descriptor` is still the file at `target` (its holder may have removed it)."""
    try:
        return os.path.samestat(os.fstat(descriptor), target.stat())
    except FileNotFoundError:
        return False


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


def live_status(path: str | Path, status: str) -> str:
    """A screen marked running whose writer is gone (killed) is shown as interrupted."""
    if status == "running" and not writer_alive(path):
        return "interrupted"
    return status
