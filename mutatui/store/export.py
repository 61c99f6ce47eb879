"""A database's tables written out as Parquet or CSV files (`mutatui export`)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from mutatui.engine.forms import shown
from mutatui.errors import MutatuiError
from mutatui.store.database import cannot_write, check_readable, connect

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
