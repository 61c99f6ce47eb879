"""The screen catalog: every screen of a database in one listing, as the explorer's screen
list, `mutatui analyze` and the findings pick from it. One definition of a screen's summary
(`ScreenSummary`) and of the status it is shown with (`database.live_status`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from mutatui.store.database import connect, live_status, quiet
from mutatui.store.effects import floors_by_screen
from mutatui.store.engines import numbers_by_screen
from mutatui.store.machines import machines_by_screen
from mutatui.store.merge import describe_parts, shard_parts
from mutatui.store.schema import phenotypic


@dataclass(frozen=True)
class ScreenSummary:
    screen_id: int
    name: str
    kind: str
    model: str
    status: str
    """complete, running or interrupted (running, but its writer is gone)."""
    decoding: str
    probes: int
    planned: int | None
    mutations: int
    phenotypes: int
    created_at: datetime | None
    shard: str | None = None
    """The parts of the spec it holds (`K/N`, or `a,b,c/N` after a merge); None: all of it."""
    numbers: str | None = None
    """What it computed in (`bfloat16 weights in float32 arithmetic`); None: not recorded."""
    machine: str | None = None
    """Where it ran, in a few words (`store.machines`); None: not recorded."""
    noise: str | None = None
    """Its effect sizes' noise floor in a few words ("KL 0"); None: no effect sizes."""

    @property
    def phenotype_rate(self) -> float:
        return self.phenotypes / self.mutations if self.mutations else 0.0

    @property
    def state(self) -> str:
        """The status, with the parts held when the screen is only some shards of its spec."""
        parts = shard_parts(self.shard)
        if parts is None:
            return self.status
        return f"{self.status}, {describe_parts(*parts)}"


def list_screens(path: str | Path) -> list[ScreenSummary]:
    """Every screen in the database, newest first, with its tested and phenotypic counts.

    A screen writes each mutation in the same transaction as its results, so the mutations
    table counts the tested ones; the results with a phenotype (`schema.phenotypic`) the
    phenotypic ones."""
    with connect(path, read_only=True) as connection:
        quiet(connection)
        rows = connection.execute(
            f"""
            SELECT s.screen_id, s.name, s.kind, s.model, s.status, s.decoding,
                   (SELECT count(*) FROM probes p WHERE p.screen_id = s.screen_id),
                   s.planned_mutations,
                   (SELECT count(*) FROM mutations m WHERE m.screen_id = s.screen_id),
                   (SELECT count(DISTINCT r.mutation_id) FROM results r
                     WHERE r.screen_id = s.screen_id AND {phenotypic("r")}),
                   s.created_at, s.shard
            FROM screens s ORDER BY s.created_at DESC, s.screen_id DESC
            """
        ).fetchall()
        numbers = numbers_by_screen(connection)
        machines = machines_by_screen(connection)
        floors = floors_by_screen(connection)
    summaries = [
        ScreenSummary(
            *row,
            numbers=numbers.get(row[0]),
            machine=machines.get(row[0]),
            noise=floors.get(row[0]),
        )
        for row in rows
    ]
    return [replace(s, status=live_status(path, s.status)) for s in summaries]
