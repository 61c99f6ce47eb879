"""The ledger of a screen split into parts for Ray workers (table `screen_parts`).

The driver writes the ledger when the screen starts: one row per non-empty part K of N
(`screening.plan.Shard`). A finished part's mutations and results are appended in the same
transaction that marks its row done, so after a crash, a retry or a resume the database holds
each part whole or not at all, and a part already done is never written again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mutatui.exact.noise import NoiseFloor
from mutatui.store.database import connect, transaction
from mutatui.store.screens import append_rows


@dataclass(frozen=True)
class Ledger:
    """The parts of a screen: how many (N), and the ones not done yet with their sizes."""

    parts: int
    pending: dict[int, int]
    done_mutations: int


def has_ledger(path: str | Path, screen_id: int) -> bool:
    """True when the screen was started on Ray (it has parts)."""
    with connect(path, read_only=True) as connection:
        found = connection.execute(
            "SELECT count(*) FROM screen_parts WHERE screen_id = ?", [screen_id]
        ).fetchall()
    return bool(found[0][0])


def create_ledger(path: str | Path, screen_id: int, parts: int, sizes: Sequence[int]) -> None:
    """Record parts 1..`parts` of the screen with their sizes (`sizes[k - 1]`); empty parts
    are left out. A screen that already has a ledger keeps it."""
    numbers = [k for k in range(1, parts + 1) if sizes[k - 1] > 0]
    with connect(path, read_only=False) as connection, transaction(connection):
        existing = connection.execute(
            "SELECT count(*) FROM screen_parts WHERE screen_id = ?", [screen_id]
        ).fetchall()[0][0]
        if not existing:
            # One statement for all parts: a 7B screen has hundreds of thousands.
            connection.execute(
                "INSERT INTO screen_parts (screen_id, part, parts, mutations) "
                "SELECT ?, unnest(?::INTEGER[]), ?, unnest(?::BIGINT[])",
                [screen_id, numbers, parts, [sizes[k - 1] for k in numbers]],
            )


def load_ledger(path: str | Path, screen_id: int) -> Ledger | None:
    """The screen's ledger, or None when it has none."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            "SELECT part, parts, mutations, done FROM screen_parts WHERE screen_id = ? "
            "ORDER BY part",
            [screen_id],
        ).fetchall()
    if not rows:
        return None
    return Ledger(
        parts=int(rows[0][1]),
        pending={int(part): int(size) for part, _, size, done in rows if not done},
        done_mutations=sum(int(size) for _, _, size, done in rows if done),
    )


def write_part(
    path: str | Path,
    screen_id: int,
    part: int,
    mutations: Sequence[Sequence[object]],
    results: Sequence[Mapping[str, object]],
    *,
    seconds: float,
    worker: str,
    noise: NoiseFloor | None = None,
) -> bool:
    """Append a finished part's rows and mark it done, in one transaction. Returns False (and
    writes nothing) when the part is already done."""
    with connect(path, read_only=False) as connection, transaction(connection):
        found = connection.execute(
            "SELECT done FROM screen_parts WHERE screen_id = ? AND part = ?",
            [screen_id, part],
        ).fetchall()
        if not found:
            raise ValueError(f"screen {screen_id} has no part {part}")
        if found[0][0]:
            return False  # nothing written
        append_rows(connection, screen_id, mutations, results, seconds, noise)
        connection.execute(
            "UPDATE screen_parts SET done = true, worker = ?, seconds = ?, "
            "finished_at = current_timestamp WHERE screen_id = ? AND part = ?",
            [worker, seconds, screen_id, part],
        )
    return True
