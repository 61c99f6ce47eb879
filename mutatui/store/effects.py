"""Effect sizes in the store: the `effects` rows of text results and each text probe's
baseline margins (`probe_margins`), written with a screen's batches or added to a screen
recorded without them (`screening.effects`); a screen's rows saved to a Parquet file and added
to another copy of the same screen (`save_rows`, `add_rows`), so that effect sizes computed
on one machine, or over several sessions, are not computed again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mutatui.engine.forms import shown
from mutatui.engine.sites import Site
from mutatui.errors import MutatuiError
from mutatui.exact.noise import NoiseFloor
from mutatui.store.database import cannot_write, connect, has_table, transaction

EFFECT_COLUMNS = ("delta_nll", "kl_prefix", "kl_all", "diverge_margin")
"""A text result's effect sizes: carried in its result mapping, stored in `effects`."""
ROBUST_MARGIN = 1.0
"""Logits: a change that diverged where the unmutated model's margin is smaller tipped a near
tie of its own (at 1 the baseline's token is e times as likely as the runner-up). The default
of `analyze --robust`, the explorer's robust filter and its fragile steps."""


@dataclass(frozen=True)
class PendingResult:
    """A stored text result without effect sizes: its mutation as stored, and its outcome's
    first differing token."""

    mutation_id: int
    site: Site
    kind: str
    value: float
    diverge_at: int | None


def effect_row(values: Mapping[str, object]) -> list[object] | None:
    """An `effects` row (mutation_id, probe_id, then `EFFECT_COLUMNS`) of a result mapping;
    None when it carries no effect sizes (not recorded, or a choice probe)."""
    if all(values.get(column) is None for column in EFFECT_COLUMNS[:3]):
        return None
    return [values["mutation_id"], values["probe_id"], *(values.get(c) for c in EFFECT_COLUMNS)]


def insert_effects(
    connection: duckdb.DuckDBPyConnection, screen_id: int, rows: Sequence[Sequence[object]]
) -> None:
    """Rows of (mutation_id, probe_id, *EFFECT_COLUMNS), inside the caller's transaction."""
    if rows:
        connection.executemany(
            "INSERT INTO effects (screen_id, mutation_id, probe_id, "
            f"{', '.join(EFFECT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [[screen_id, *row] for row in rows],
        )


def insert_margins(
    connection: duckdb.DuckDBPyConnection, screen_id: int, probes: Sequence[Mapping[str, object]]
) -> None:
    """Each probe row's `margins` not stored yet, inside the caller's transaction."""
    for probe in probes:
        if probe.get("margins"):
            connection.execute(
                "INSERT INTO probe_margins SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM "
                "probe_margins WHERE screen_id = ? AND probe_id = ?)",
                [screen_id, probe["probe_id"], probe["margins"], screen_id, probe["probe_id"]],
            )


_ADD_NOISE = (
    " ON CONFLICT (screen_id) DO UPDATE SET "
    "controls = noise_floors.controls + excluded.controls, "
    "kl = greatest(noise_floors.kl, excluded.kl), "
    "delta_nll = greatest(noise_floors.delta_nll, excluded.delta_nll)"
)
"""How a screen's noise floor takes in more controls: counted, the largest values kept."""


def add_noise(connection: duckdb.DuckDBPyConnection, screen_id: int, floor: NoiseFloor) -> None:
    """Inside the caller's transaction: the controls of `floor` added to the screen's noise
    floor, whose largest values are kept."""
    connection.execute(
        f"INSERT INTO noise_floors VALUES (?, ?, ?, ?){_ADD_NOISE}",
        [screen_id, floor.controls, floor.kl, floor.nll],
    )


def merge_noise(
    connection: duckdb.DuckDBPyConnection, source: str, source_id: int, target_id: int
) -> None:
    """In a merge: the noise floor of `source`'s screen `source_id` (an attached database)
    added to screen `target_id`'s."""
    if has_table(connection, "noise_floors", source):
        connection.execute(
            f"INSERT INTO noise_floors SELECT ?, controls, kl, delta_nll FROM "
            f"{source}.noise_floors WHERE screen_id = ?{_ADD_NOISE}",
            [target_id, source_id],
        )


def read_noise(connection: duckdb.DuckDBPyConnection, screen_id: int) -> NoiseFloor | None:
    """The screen's noise floor; None when its effect sizes (if any) predate controls."""
    if not has_table(connection, "noise_floors"):
        return None
    row = connection.execute(
        "SELECT controls, kl, delta_nll FROM noise_floors WHERE screen_id = ?", [screen_id]
    ).fetchone()
    return None if row is None else NoiseFloor(int(row[0]), float(row[1]), float(row[2]))


def floors_by_screen(connection: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """Per screen with effect sizes, their noise floor in a few words ("KL 0"), or that they
    were computed before controls."""
    if not has_table(connection, "effects"):
        return {}
    measured = connection.execute("SELECT DISTINCT screen_id FROM effects").fetchall()
    floors = (
        dict(connection.execute("SELECT screen_id, kl FROM noise_floors").fetchall())
        if has_table(connection, "noise_floors")
        else {}
    )
    return {
        screen_id: f"KL {floors[screen_id]:.2g}" if screen_id in floors else "before controls"
        for (screen_id,) in measured
    }


def noise_of(path: str | Path, screen_id: int) -> NoiseFloor | None:
    with connect(path, read_only=True) as connection:
        return read_noise(connection, screen_id)


def count_legacy(connection: duckdb.DuckDBPyConnection, screen_id: int) -> int:
    """How many of the screen's effect sizes were computed before controls (taken against the
    traced baseline, with a KL that could round below zero): 0 once it has a noise floor."""
    if not has_table(connection, "effects") or read_noise(connection, screen_id) is not None:
        return 0
    return effect_count(connection, screen_id)


def legacy_effects(path: str | Path, screen_id: int) -> int:
    """`count_legacy` of a file's screen."""
    with connect(path, read_only=True) as connection:
        return count_legacy(connection, screen_id)


def clear_effects(path: str | Path, screen_id: int) -> int:
    """For a recompute: the screen's effect sizes removed and its noise floor started (empty),
    in one transaction; return how many were removed."""
    with connect(path, read_only=False) as connection, transaction(connection):
        removed = effect_count(connection, screen_id)
        connection.execute("DELETE FROM effects WHERE screen_id = ?", [screen_id])
        connection.execute("DELETE FROM noise_floors WHERE screen_id = ?", [screen_id])
        add_noise(connection, screen_id, NoiseFloor())
    return removed


def add_margins(path: str | Path, screen_id: int, probes: Sequence[Mapping[str, object]]) -> None:
    with connect(path, read_only=False) as connection, transaction(connection):
        insert_margins(connection, screen_id, probes)


_NOISE_COLUMNS = ("noise_controls", "noise_kl", "noise_delta_nll")
_ROWS_COLUMNS = ("spec_hash", "mutation_id", "probe_id", *EFFECT_COLUMNS, *_NOISE_COLUMNS)
"""A saved rows file's columns: the screen's spec hash on every row says whose rows they are
(the same spec, the same mutation and probe ids, in any copy of the screen), and the screen's
noise floor when they were saved, which goes with them."""


def save_rows(path: str | Path, screen_id: int, out: Path) -> int:
    """Write the screen's `effects` rows to a Parquet file; return how many."""
    if out.is_dir() or not out.parent.is_dir():
        raise MutatuiError(f"cannot write {shown(out)}: give a file in an existing folder")
    with connect(path, read_only=True) as connection:
        if not has_table(connection, "effects"):
            raise MutatuiError(f"{shown(path)} holds no effect sizes yet; nothing to save")
        legacy = count_legacy(connection, screen_id)
        if legacy:
            raise MutatuiError(
                f"the screen's {legacy} effect sizes were computed before controls; "
                "`mutatui effects --recompute` first, then save them"
            )
        relation = connection.sql(
            "SELECT s.spec_hash, "
            f"{', '.join('e.' + c for c in _ROWS_COLUMNS[1 : 3 + len(EFFECT_COLUMNS)])}, "
            "n.controls AS noise_controls, n.kl AS noise_kl, n.delta_nll AS noise_delta_nll "
            "FROM effects e JOIN screens s USING (screen_id) JOIN noise_floors n USING (screen_id) "
            "WHERE e.screen_id = $screen ORDER BY e.mutation_id, e.probe_id",
            params={"screen": screen_id},
        )
        count = effect_count(connection, screen_id)
        try:
            relation.write_parquet(str(out))
        except duckdb.Error as error:
            out.unlink(missing_ok=True)
            raise cannot_write(out, error) from None
    return count


def add_rows(path: str | Path, screen_id: int, source: Path) -> int:
    """Add the rows of a `save_rows` file that the screen lacks, for its own results only, in
    one transaction; return how many. A file of another screen (spec) is refused."""
    if not source.is_file():
        raise MutatuiError(
            f"{shown(source)}: no such file (a file of `mutatui effects --save-rows`)"
        )
    with connect(path, read_only=False) as connection, transaction(connection):
        try:
            columns = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM parquet_schema($file) WHERE name != 'duckdb_schema'",
                    {"file": str(source)},
                ).fetchall()
            ]
        except duckdb.Error:
            raise MutatuiError(
                f"{shown(source)} is not a Parquet file (a file of `mutatui effects --save-rows`)"
            ) from None
        if columns == list(_ROWS_COLUMNS[: -len(_NOISE_COLUMNS)]):
            raise MutatuiError(
                f"{shown(source)} holds effect sizes computed before controls; compute them "
                "again (`mutatui effects` computes what is missing)"
            )
        if columns != list(_ROWS_COLUMNS):
            raise MutatuiError(
                f"{shown(source)} does not hold effect-size rows (columns {', '.join(columns)}; "
                f"expected {', '.join(_ROWS_COLUMNS)})"
            )
        (spec_hash,) = connection.execute(
            "SELECT spec_hash FROM screens WHERE screen_id = ?", [screen_id]
        ).fetchall()[0]
        others = connection.execute(
            "SELECT count(*) FROM read_parquet($file) WHERE spec_hash != $hash",
            {"file": str(source), "hash": spec_hash},
        ).fetchall()[0][0]
        if others:
            raise MutatuiError(
                f"{shown(source)} holds rows of another screen (another spec): {others} rows; "
                "nothing added"
            )
        before = effect_count(connection, screen_id)
        connection.execute(
            f"INSERT INTO effects (screen_id, mutation_id, probe_id, {', '.join(EFFECT_COLUMNS)}) "
            f"SELECT $screen, f.mutation_id, f.probe_id, {', '.join('f.' + c for c in EFFECT_COLUMNS)} "
            "FROM read_parquet($file) f "
            "WHERE EXISTS (SELECT 1 FROM results r WHERE r.screen_id = $screen "
            "AND r.mutation_id = f.mutation_id AND r.probe_id = f.probe_id) "
            "AND NOT EXISTS (SELECT 1 FROM effects e WHERE e.screen_id = $screen "
            "AND e.mutation_id = f.mutation_id AND e.probe_id = f.probe_id)",
            {"file": str(source), "screen": screen_id},
        )
        added = effect_count(connection, screen_id) - before
        if added:
            controls, kl, nll = connection.execute(
                "SELECT max(noise_controls), max(noise_kl), max(noise_delta_nll) "
                "FROM read_parquet($file)",
                {"file": str(source)},
            ).fetchall()[0]
            add_noise(connection, screen_id, NoiseFloor(int(controls), kl, nll))
        return added


_WITHOUT_EFFECTS = (
    "NOT EXISTS (SELECT 1 FROM effects e WHERE e.screen_id = r.screen_id "
    "AND e.mutation_id = r.mutation_id AND e.probe_id = r.probe_id)"
)
"""SQL condition on a `results r` row: it has no effect sizes yet."""


def effect_count(connection: duckdb.DuckDBPyConnection, screen_id: int) -> int:
    """The screen's `effects` rows (the table exists)."""
    return connection.execute(
        "SELECT count(*) FROM effects WHERE screen_id = ?", [screen_id]
    ).fetchall()[0][0]


def pending_results(path: str | Path, screen_id: int, probe_id: int) -> list[PendingResult]:
    """The probe's stored results without effect sizes, in mutation order (the file has the
    `effects` table: its writer initialized it)."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            "SELECT m.mutation_id, m.layer, m.matrix, m.row0, m.row1, m.col0, m.col1, m.kind, "
            "m.value, r.diverge_at FROM results r JOIN mutations m USING (screen_id, mutation_id) "
            f"WHERE r.screen_id = ? AND r.probe_id = ? AND {_WITHOUT_EFFECTS} ORDER BY m.mutation_id",
            [screen_id, probe_id],
        ).fetchall()
    return [
        PendingResult(mutation_id, Site(layer, matrix, row0, row1, col0, col1), kind, value, at)
        for mutation_id, layer, matrix, row0, row1, col0, col1, kind, value, at in rows
    ]


def count_missing(
    connection: duckdb.DuckDBPyConnection, screen_id: int, probe_ids: Sequence[int] | None = None
) -> int:
    """Text results of the screen (of `probe_ids`, default all) without effect sizes: nonzero
    while `mutatui effects` is part-way, when a grade by effect would read the missing ones as
    no effect."""
    return connection.execute(
        "SELECT count(*) FROM results r JOIN probes p USING (screen_id, probe_id) "
        "WHERE r.screen_id = ? AND p.kind = 'text' "
        f"AND (? IS NULL OR list_contains(?, r.probe_id)) AND {_WITHOUT_EFFECTS}",
        [screen_id, probe_ids, probe_ids],
    ).fetchall()[0][0]


def missing_effects(path: str | Path, screen_id: int) -> int:
    """`count_missing` of a file's screen over all its text probes (0 without the table)."""
    with connect(path, read_only=True) as connection:
        if not has_table(connection, "effects"):
            return 0
        return count_missing(connection, screen_id)


def write_effects(
    path: str | Path,
    screen_id: int,
    probe_id: int,
    rows: Sequence[tuple[int, Sequence[object]]],
    noise: NoiseFloor,
) -> None:
    """(mutation_id, effect values in `EFFECT_COLUMNS` order) of one probe, and the noise
    floor of the controls they were measured against, in one transaction."""
    with connect(path, read_only=False) as connection, transaction(connection):
        insert_effects(
            connection,
            screen_id,
            [[mutation_id, probe_id, *values] for mutation_id, values in rows],
        )
        add_noise(connection, screen_id, noise)


@dataclass(frozen=True)
class FragileStep:
    """A baseline step where the unmutated model's margin is below the threshold."""

    step: int
    margin: float
    changes: int
    """Changed results of the probe that diverged at this step."""


@dataclass(frozen=True)
class ProbeTies:
    """How much of one text probe's phenotype near ties of its own baseline explain, and how
    large its effects are, changed or not (quantiles of the mean KL over the continuation)."""

    probe: str
    results: int
    changed: int
    changed_at_fragile: int
    """Changed results that diverged at a step whose baseline margin is below the threshold."""
    largest_fragile_margin: float | None
    """The largest baseline margin at which a change diverged below the threshold."""
    fragile_steps: list[FragileStep]
    kl_unchanged: tuple[float | None, float | None]
    """Median and 90th percentile over the unchanged results."""
    kl_changed: tuple[float | None, float | None]


def probe_ties(path: str | Path, screen_id: int, margin: float) -> list[ProbeTies]:
    """Per text probe with effect sizes, in probe order: `ProbeTies` at threshold `margin`."""
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            """
            SELECT p.probe_id, p.name, count(*), count(*) FILTER (r.changed),
                   count(*) FILTER (r.changed AND e.diverge_margin < $margin),
                   max(e.diverge_margin) FILTER (r.changed AND e.diverge_margin < $margin),
                   quantile_cont(e.kl_all, [0.5, 0.9]) FILTER (NOT r.changed),
                   quantile_cont(e.kl_all, [0.5, 0.9]) FILTER (r.changed)
            FROM effects e
            JOIN results r USING (screen_id, mutation_id, probe_id)
            JOIN probes p USING (screen_id, probe_id)
            WHERE e.screen_id = $screen
            GROUP BY p.probe_id, p.name ORDER BY p.probe_id
            """,
            {"screen": screen_id, "margin": margin},
        ).fetchall()
        steps = connection.execute(
            """
            WITH fragile AS (
                SELECT probe_id, unnest(range(len(margins))) AS step, unnest(margins) AS margin
                FROM probe_margins WHERE screen_id = $screen
            )
            SELECT f.probe_id, f.step, f.margin,
                   (SELECT count(*) FROM results r WHERE r.screen_id = $screen
                     AND r.probe_id = f.probe_id AND r.changed AND r.diverge_at = f.step)
            FROM fragile f WHERE f.margin < $margin ORDER BY f.probe_id, f.step
            """,
            {"screen": screen_id, "margin": margin},
        ).fetchall()
    by_probe: dict[int, list[FragileStep]] = {}
    for probe_id, step, step_margin, changes in steps:
        by_probe.setdefault(probe_id, []).append(FragileStep(step, step_margin, changes))
    return [
        ProbeTies(
            name,
            results,
            changed,
            fragile,
            largest,
            by_probe.get(probe_id, []),
            _pair(unchanged),
            _pair(changed_kl),
        )
        for probe_id, name, results, changed, fragile, largest, unchanged, changed_kl in rows
    ]


def _pair(quantiles: list[float] | None) -> tuple[float | None, float | None]:
    return (quantiles[0], quantiles[1]) if quantiles else (None, None)
