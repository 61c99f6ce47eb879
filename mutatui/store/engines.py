"""How each screen's outcomes were computed (the `engines` table): engine path, dtype and
arithmetic, device, pinned matmul settings, and the near-tie tolerances measured at its start."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from pathlib import Path

import duckdb

from mutatui.store.database import connect, has_table


@dataclass(frozen=True)
class EngineRecord:
    """One screen's row of `engines` (columns documented in `store.schema`)."""

    path: str
    dtype: str
    arithmetic: str
    device: str
    precision: str
    element_tolerance: float
    block_tolerance: float
    measured_element: float | None
    measured_block: float | None
    calibration_mutations: int
    baseline_near_ties: int | None
    versions: str

    def describe(self) -> str:
        """One line for `mutatui info`."""
        return f"{self.path}, {self.numbers} on {self.device}"

    @property
    def numbers(self) -> str:
        """What the screen computed in (`numbers_of`)."""
        return numbers_of(self.dtype, self.arithmetic)


def numbers_of(dtype: str, arithmetic: str) -> str:
    """`bfloat16`, or `bfloat16 weights in float32 arithmetic`: what a screen computed in."""
    if arithmetic == "native" or dtype == arithmetic:
        return dtype
    return f"{dtype} weights in {arithmetic} arithmetic"


def numbers_by_screen(connection: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """`numbers_of` every screen with an engine row (none in files made before the table)."""
    if not has_table(connection, "engines"):
        return {}
    rows = connection.execute("SELECT screen_id, dtype, arithmetic FROM engines").fetchall()
    return {screen_id: numbers_of(dtype, arithmetic) for screen_id, dtype, arithmetic in rows}


_COLUMNS = ", ".join(field.name for field in fields(EngineRecord))


def record_engine(path: str | Path, screen_id: int, engine: EngineRecord) -> None:
    """Store (or replace) how screen `screen_id` is computed."""
    values = astuple(engine)
    placeholders = ", ".join("?" for _ in range(len(values) + 1))
    with connect(path, read_only=False) as connection:
        connection.execute("DELETE FROM engines WHERE screen_id = ?", [screen_id])
        connection.execute(
            f"INSERT INTO engines (screen_id, {_COLUMNS}) VALUES ({placeholders})",
            [screen_id, *values],
        )


def engine_of(path: str | Path, screen_id: int) -> EngineRecord | None:
    """How screen `screen_id` was computed; None for a screen made before this was recorded."""
    with connect(path, read_only=True) as connection:
        return read_engine(connection, screen_id)


def read_engine(connection: duckdb.DuckDBPyConnection, screen_id: int) -> EngineRecord | None:
    if not has_table(connection, "engines"):
        return None
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM engines WHERE screen_id = ?", [screen_id]
    ).fetchone()
    return None if row is None else EngineRecord(*row)


def copy_engine(
    connection: duckdb.DuckDBPyConnection, source: str, source_id: int, target_id: int
) -> None:
    """In a merge: give screen `target_id` the engine row of `source`'s screen `source_id`
    (an attached database), unless it has one or the source has none."""
    if not has_table(connection, "engines", source):
        return
    connection.execute(
        f"INSERT INTO engines SELECT ? AS screen_id, * EXCLUDE (screen_id) FROM {source}.engines "
        "WHERE screen_id = ? AND NOT EXISTS (SELECT 1 FROM engines WHERE screen_id = ?)",
        [target_id, source_id, target_id],
    )
