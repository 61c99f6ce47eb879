"""Reads a screen's results for analysis: one numpy array per column, no per-row Python objects.

The analysis works per mutation: a mutation has a phenotype on a probe set when its output
changed on at least one of those text probes (the paper's non-silent mutation). The SQL here
aggregates results per mutation so that a million-result screen arrives as a few arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import duckdb
import numpy as np

from mutatui.errors import MutatuiError
from mutatui.exact.noise import NoiseFloor
from mutatui.store.catalog import ScreenSummary, list_screens
from mutatui.store.database import check_readable, connect, has_table
from mutatui.store.effects import count_missing, effect_count, read_noise
from mutatui.store.queries import MatrixShape, Probe


@dataclass
class SiteFrame:
    """One entry per tested mutation (a mutation with at least one result on the chosen probes).

    `changed` is the phenotype (output differs on any chosen text probe); `severity` is the
    highest grade over those probes (and the choice probe, unless left out: `load_sites`);
    `malignant` and `destructive` are true when any probe says so.
    `cosine` is the lowest similarity to the baseline over those probes (1 where no output
    changed or none was embedded); `choice_delta` the change in questions answered right (0 where
    the assay did not run). `effect` is the largest mean KL divergence over those probes (the
    unmutated model's next-token distributions to the mutant's, over the baseline's
    continuation: `exact.effects`), `margin` the largest margin of the unmutated model at a
    step where one of them diverged (how far from a tie the change happened); both NaN where
    the screen recorded no effect sizes (`effects_recorded`), `margin` also where none changed.
    """

    screen: ScreenSummary
    probes: list[Probe]
    matrices: list[MatrixShape]
    mutation_id: np.ndarray
    layer: np.ndarray
    matrix: np.ndarray
    row0: np.ndarray
    row1: np.ndarray
    col0: np.ndarray
    col1: np.ndarray
    kind: np.ndarray
    changed: np.ndarray
    severity: np.ndarray
    malignant: np.ndarray
    destructive: np.ndarray
    cosine: np.ndarray
    choice_delta: np.ndarray
    effect: np.ndarray
    margin: np.ndarray
    effects_recorded: bool = False
    effects_missing: int = 0
    """Text results of the chosen probes without effect sizes (a backfill part-way)."""
    noise: NoiseFloor | None = None
    """The noise floor of the effect sizes (None: they predate controls, or there are none):
    an effect at or below its KL is no effect."""

    def __len__(self) -> int:
        return len(self.mutation_id)

    def subset(self, mask: np.ndarray) -> SiteFrame:
        """The same frame restricted to the mutations where `mask` is true."""
        columns = {name: getattr(self, name)[mask] for name in _SITE_COLUMNS}
        return SiteFrame(
            self.screen,
            self.probes,
            self.matrices,
            **columns,
            effects_recorded=self.effects_recorded,
            effects_missing=self.effects_missing,
            noise=self.noise,
        )

    def has_choice_probe(self) -> bool:
        return any(probe.kind == "choice" for probe in self.probes)

    def extents(self) -> dict[tuple[int, str], tuple[int, int]]:
        """(layer, matrix) -> the matrix's (rows, cols)."""
        return {(m.layer, m.matrix): (m.rows, m.cols) for m in self.matrices}

    def text_probes(self, chosen: Sequence[str] | None = None) -> list[str]:
        """The text probes a phenotype is read from: `chosen`, or else every text probe."""
        return list(chosen) if chosen else [p.name for p in self.probes if p.kind == "text"]

    def with_min_severity(self, level: int) -> SiteFrame:
        """The same mutations, with a phenotype only where the severity reaches `level`.

        Where nearly every mutation changes the text (64x64 tiles of a small model), a changed
        output says little; its grade still separates a reworded answer from a broken one.
        """
        return replace(self, changed=self.changed & (self.severity >= level))

    def site_keys(self) -> list[tuple[int, str, int, int, int, int]]:
        """(layer, matrix, row0, row1, col0, col1) per mutation: equal for the kinds of a site."""
        return list(
            zip(
                self.layer.tolist(),
                self.matrix.tolist(),
                self.row0.tolist(),
                self.row1.tolist(),
                self.col0.tolist(),
                self.col1.tolist(),
                strict=True,
            )
        )


_SITE_COLUMNS = tuple(
    field.name
    for field in fields(SiteFrame)
    if field.name
    not in ("screen", "probes", "matrices", "effects_recorded", "effects_missing", "noise")
)
"""The per-mutation array columns of a SiteFrame, derived from its fields."""


@dataclass
class StyledOutcomes:
    """Changed text outcomes with their style label and first word, one entry per (mutation, probe)."""

    mutation_id: np.ndarray
    probe: np.ndarray
    style: np.ndarray
    first_word: np.ndarray
    layer: np.ndarray
    matrix: np.ndarray
    row0: np.ndarray
    row1: np.ndarray
    col0: np.ndarray
    col1: np.ndarray
    kind: np.ndarray
    tagged_writer: np.ndarray

    def __len__(self) -> int:
        return len(self.mutation_id)


def pick_screen(path: str | Path, name: str | None) -> ScreenSummary:
    """The screen called `name`; without a name, the screen (not live session) with most results."""
    check_readable(path)
    screens = list_screens(path)
    if name is not None:
        for screen in screens:
            if screen.name == name:
                return screen
        names = ", ".join(screen.name for screen in screens) or "none"
        raise MutatuiError(f"no screen named {name!r} in {path}; screens: {names}")
    candidates = [screen for screen in screens if screen.kind != "live"]
    if not candidates:
        raise MutatuiError(f"{path} holds no screens to analyse")
    return max(candidates, key=lambda screen: (screen.mutations, -screen.screen_id))


def _probes(connection: duckdb.DuckDBPyConnection, screen_id: int) -> list[Probe]:
    rows = connection.execute(
        """SELECT probe_id, name, kind, style, prompt, baseline_text, baseline_score, questions
           FROM probes
           WHERE screen_id = ? ORDER BY probe_id""",
        [screen_id],
    ).fetchall()
    return [Probe(*row) for row in rows]


def _matrices(connection: duckdb.DuckDBPyConnection, screen_id: int) -> list[MatrixShape]:
    rows = connection.execute(
        "SELECT layer, matrix, rows, cols, min, max FROM matrices WHERE screen_id = ?"
        " ORDER BY layer, matrix",
        [screen_id],
    ).fetchall()
    return [MatrixShape(*row) for row in rows]


def _chosen_probe_ids(probes: list[Probe], names: Sequence[str] | None, kind: str) -> list[int]:
    of_kind = [probe for probe in probes if probe.kind == kind]
    if not names:
        return [probe.probe_id for probe in of_kind]
    by_name = {probe.name: probe.probe_id for probe in of_kind}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        valid = ", ".join(by_name) or "none"
        raise MutatuiError(f"no {kind} probe named {unknown[0]!r}; {kind} probes: {valid}")
    return [by_name[name] for name in names]


@dataclass(frozen=True)
class _EffectColumns:
    columns: str
    join: str


EFFECT_JOIN = _EffectColumns(
    columns="coalesce(max(e.kl_all), 'nan')::DOUBLE AS effect, "
    "coalesce(max(e.diverge_margin) FILTER (WHERE r.changed), 'nan')::DOUBLE AS margin",
    join="LEFT JOIN effects e ON e.screen_id = r.screen_id AND e.mutation_id = r.mutation_id "
    "AND e.probe_id = r.probe_id",
)
NO_EFFECTS = _EffectColumns(columns="'nan'::DOUBLE AS effect, 'nan'::DOUBLE AS margin", join="")
"""The effect columns of `load_sites`: from `effects`, or none for a screen without them (or a
file made before the table)."""


def load_sites(
    path: str | Path,
    screen: ScreenSummary,
    probe_names: Sequence[str] | None = None,
    *,
    choice_severity: bool = True,
) -> SiteFrame:
    """Every mutation of `screen` with a result on the chosen text probes (default: all).

    Its severity is its worst grade over those probes and, with `choice_severity`, the choice
    probe (a mutation's severity, as the explorer shows it)."""
    with connect(path, read_only=True) as connection:
        probes = _probes(connection, screen.screen_id)
        matrices = _matrices(connection, screen.screen_id)
        text_ids = _chosen_probe_ids(probes, probe_names, "text")
        choice_ids = _chosen_probe_ids(probes, None, "choice")
        recorded = has_table(connection, "effects") and bool(
            effect_count(connection, screen.screen_id)
        )
        effects = EFFECT_JOIN if recorded else NO_EFFECTS
        missing = count_missing(connection, screen.screen_id, text_ids) if recorded else 0
        noise = read_noise(connection, screen.screen_id)
        arrays = connection.execute(
            f"""SELECT m.mutation_id, m.layer, m.matrix, m.row0, m.row1, m.col0, m.col1, m.kind,
                      bool_or(r.changed) AS changed,
                      greatest(max(r.severity),
                               CASE WHEN ? THEN coalesce(max(c.severity), 0) ELSE 0 END
                      )::TINYINT AS severity,
                      bool_or(r.malignant) AS malignant,
                      coalesce(bool_or(c.destructive), false) AS destructive,
                      coalesce(min(r.cosine), 1.0)::DOUBLE AS cosine,
                      coalesce(min(c.choice_delta), 0)::INTEGER AS choice_delta,
                      {effects.columns}
               FROM mutations m
               JOIN results r
                 ON r.screen_id = m.screen_id AND r.mutation_id = m.mutation_id
                AND list_contains(?, r.probe_id)
               {effects.join}
               LEFT JOIN results c
                 ON c.screen_id = m.screen_id AND c.mutation_id = m.mutation_id
                AND list_contains(?, c.probe_id)
               WHERE m.screen_id = ?
               GROUP BY ALL
               ORDER BY m.mutation_id""",
            [choice_severity, text_ids, choice_ids, screen.screen_id],
        ).fetchnumpy()
    columns = {name: np.asarray(arrays[name]) for name in _SITE_COLUMNS}
    for name in ("layer", "row0", "row1", "col0", "col1"):
        columns[name] = columns[name].astype(np.int64)
    columns["matrix"] = columns["matrix"].astype(str)
    columns["kind"] = columns["kind"].astype(str)
    for name in ("changed", "malignant", "destructive"):
        columns[name] = columns[name].astype(bool)
    columns["severity"] = columns["severity"].astype(np.int8)
    columns["cosine"] = columns["cosine"].astype(np.float64)
    columns["choice_delta"] = columns["choice_delta"].astype(np.int64)
    for name in ("effect", "margin"):
        columns[name] = columns[name].astype(np.float64)
    return SiteFrame(
        screen,
        probes,
        matrices,
        **columns,
        effects_recorded=recorded,
        effects_missing=missing,
        noise=noise,
    )


def load_styled(
    path: str | Path, screen: ScreenSummary, probe_names: Sequence[str] | None = None
) -> StyledOutcomes:
    """Changed outcomes on the chosen text probes, with style, first word and whether tagged writer."""
    with connect(path, read_only=True) as connection:
        probes = _probes(connection, screen.screen_id)
        text_ids = _chosen_probe_ids(probes, probe_names, "text")
        arrays = connection.execute(
            """SELECT r.mutation_id, p.name AS probe,
                      coalesce(r.style, '') AS style,
                      coalesce(lower(r.first_word), '') AS first_word,
                      m.layer, m.matrix, m.row0, m.row1, m.col0, m.col1, m.kind,
                      EXISTS (SELECT 1 FROM tags t
                              WHERE t.screen_id = r.screen_id AND t.mutation_id = r.mutation_id
                                AND t.tag = 'writer') AS tagged_writer
               FROM results r
               JOIN mutations m USING (screen_id, mutation_id)
               JOIN probes p USING (screen_id, probe_id)
               WHERE r.screen_id = ? AND r.changed AND list_contains(?, r.probe_id)
               ORDER BY r.mutation_id, r.probe_id""",
            [screen.screen_id, text_ids],
        ).fetchnumpy()
    columns = {name: np.asarray(values) for name, values in arrays.items()}
    for name in ("layer", "row0", "row1", "col0", "col1"):
        columns[name] = columns[name].astype(np.int64)
    for name in ("probe", "style", "first_word", "matrix", "kind"):
        columns[name] = columns[name].astype(str)
    columns["tagged_writer"] = columns["tagged_writer"].astype(bool)
    return StyledOutcomes(**columns)
