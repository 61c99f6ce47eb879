"""Every read the explorer makes, and its tag writes.

The explorer never holds a connection: each function opens a short-lived one (a screen process
may be writing the file). A screen is read once into `ScreenData`, numpy arrays over all its
mutations plus its changed results only (phenotypes are a few percent of the results), so that
moving, zooming, changing layer or filter never touches the database. Texts are read on demand,
for one mutation at a time, by `mutation_detail`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mutatui.engine.families import MATRIX_ORDER
from mutatui.engine.sites import Site
from mutatui.errors import MutatuiError
from mutatui.exact.noise import NoiseFloor
from mutatui.store.catalog import ScreenSummary
from mutatui.store.database import connect, has_table, initialize, live_status, quiet
from mutatui.store.effects import read_noise
from mutatui.store.engines import read_engine
from mutatui.store.places import ensure_data_folder
from mutatui.store.published import (
    PUBLISHED,
    ExperimentCounts,
    description_of,
    experiment_counts,
)

KINDS = ("max", "min", "zero", "value")
TRIAGE_TAGS = ("writer", "poetic", "conversational", "interesting", "junk")


@dataclass(frozen=True)
class Probe:
    probe_id: int
    name: str
    kind: str
    style: str | None
    prompt: str
    baseline_text: str | None
    baseline_score: int | None
    questions: int | None


@dataclass(frozen=True)
class MatrixShape:
    layer: int
    matrix: str
    rows: int
    cols: int
    min: float
    max: float

    @property
    def label(self) -> str:
        return f"L{self.layer}.{self.matrix}"


@dataclass(frozen=True)
class PublishedView:
    """What a published screen holds beyond mutations and results: its citation, its
    experiments' per-matrix counts, and per mutation its Mmlu21 score, destructive flag and
    Drosophila cosine (NaN where the table gives none)."""

    citation: str
    baseline_score: int
    score: np.ndarray
    destructive: np.ndarray
    cosine: np.ndarray
    experiments: list[ExperimentCounts]


@dataclass
class ScreenData:
    """One screen in memory. Mutations are sorted by (layer, matrix, row0, col0);
    `matrix_slices[i]` is the range of matrix `matrices[i]`."""

    summary: ScreenSummary
    probes: list[Probe]
    matrices: list[MatrixShape]
    matrix_slices: list[slice]
    mutation_id: np.ndarray
    matrix_index: np.ndarray
    row0: np.ndarray
    row1: np.ndarray
    col0: np.ndarray
    col1: np.ndarray
    kind: np.ndarray
    """Index into KINDS."""
    tested: np.ndarray
    """Probes the mutation ran on (0 would be planned but not run; a screen writes each
    mutation together with its results, so rows present are tested)."""
    phenotype_mutation: np.ndarray
    """For each changed result: the index of its mutation in the arrays above."""
    phenotype_probe: np.ndarray
    phenotype_severity: np.ndarray
    phenotype_malignant: np.ndarray
    phenotype_style: np.ndarray
    """Index into `styles`, -1 for none."""
    phenotype_word: np.ndarray
    """Index into `words`, -1 for none."""
    styles: list[str]
    words: list[str]
    tags: dict[int, dict[str, str | None]] = field(default_factory=dict)
    """mutation index -> {tag: note}."""
    written: int = 0
    """Mutations in the file when it was read (a running screen's progress)."""
    effect: np.ndarray | None = None
    """Per mutation, its effect size: the largest mean KL divergence over its text probes
    (`exact.effects`), NaN where none was recorded; None for a screen without effect sizes."""
    phenotype_margin: np.ndarray | None = None
    """For each changed result: the unmutated model's margin at the step where it diverged
    (NaN where not recorded); None for a screen without effect sizes."""
    noise: NoiseFloor | None = None
    """The noise floor of the effect sizes: an effect at or below its KL is none."""
    published: PublishedView | None = None
    """A published screen's own numbers (None for any other screen)."""

    def matrix_position(self, layer: int, matrix: str) -> int | None:
        for position, shape in enumerate(self.matrices):
            if shape.layer == layer and shape.matrix == matrix:
                return position
        return None

    @property
    def layers(self) -> list[int]:
        return sorted({shape.layer for shape in self.matrices})

    @property
    def matrix_types(self) -> list[str]:
        """Matrix types in a block's order (attention, then MLP), others after them."""
        names = {shape.matrix for shape in self.matrices}
        known = [name for name in MATRIX_ORDER if name in names]
        return known + sorted(names - set(known))

    def index_of(self, mutation_id: int) -> int | None:
        hits = np.flatnonzero(self.mutation_id == mutation_id)
        return int(hits[0]) if len(hits) else None

    def site(self, position: int) -> Site:
        """The site of the mutation at `position` in the arrays above."""
        shape = self.matrices[int(self.matrix_index[position])]
        return Site(
            shape.layer,
            shape.matrix,
            int(self.row0[position]),
            int(self.row1[position]),
            int(self.col0[position]),
            int(self.col1[position]),
        )


@dataclass(frozen=True)
class ResultDetail:
    probe: Probe
    changed: bool
    text: str | None
    first_word: str | None
    diverge_at: int | None
    edit_distance: float | None
    cosine: float | None
    severity: int
    malignant: bool
    style: str | None
    flags: tuple[str, ...]
    choice_score: int | None
    choice_delta: int | None
    effect: tuple[float | None, ...] | None = None
    """Text probes of a screen with effect sizes: (delta_nll, kl_prefix, kl_all,
    diverge_margin), as `effects` holds them."""
    baseline_tokens: tuple[int, ...] = ()
    margins: tuple[float, ...] = ()
    """The unmutated model's margin at each baseline step (empty where not recorded)."""


@dataclass(frozen=True)
class MutationDetail:
    mutation_id: int
    layer: int
    matrix: str
    row0: int
    row1: int
    col0: int
    col1: int
    kind: str
    value: float
    results: list[ResultDetail]
    tags: dict[str, str | None]

    @property
    def site(self) -> Site:
        return Site(self.layer, self.matrix, self.row0, self.row1, self.col0, self.col1)


def screen_progress(path: str | Path, screen_id: int) -> tuple[str, int]:
    """(status as shown, mutations written): a cheap check whether a screen has moved on."""
    with connect(path, read_only=True) as connection:
        status = connection.execute(
            "SELECT status FROM screens WHERE screen_id = ?", [screen_id]
        ).fetchone()
        count = connection.execute(
            "SELECT count(*) FROM mutations WHERE screen_id = ?", [screen_id]
        ).fetchone()[0]
    return (live_status(path, status[0]) if status else "missing"), int(count)


def load_screen(path: str | Path, screen_id: int) -> ScreenData:
    """Read one screen into memory: all mutations, the changed results, probes and tags."""
    with connect(path, read_only=True) as connection:
        quiet(connection)
        summary_row = connection.execute(
            "SELECT screen_id, name, kind, model, status, decoding, planned_mutations, created_at, "
            "shard FROM screens WHERE screen_id = ?",
            [screen_id],
        ).fetchone()
        engine = read_engine(connection, screen_id)
        probes = [
            Probe(*row)
            for row in connection.execute(
                "SELECT probe_id, name, kind, style, prompt, baseline_text, baseline_score,"
                " questions FROM probes WHERE screen_id = ? ORDER BY probe_id",
                [screen_id],
            ).fetchall()
        ]
        matrices = [
            MatrixShape(*row)
            for row in connection.execute(
                "SELECT layer, matrix, rows, cols, min, max FROM matrices WHERE screen_id = ?"
                " ORDER BY layer, matrix",
                [screen_id],
            ).fetchall()
        ]
        runs = connection.execute(
            "SELECT layer, matrix, count(*) FROM mutations WHERE screen_id = ?"
            " GROUP BY layer, matrix ORDER BY layer, matrix",
            [screen_id],
        ).fetchall()
        # A mutation is written with its results, in one transaction: every mutation row is
        # tested, on every probe.
        mutations = connection.execute(
            """
            SELECT mutation_id, row0, row1, col0, col1,
                   coalesce(list_position($kinds, kind), 4) - 1 AS kind
            FROM mutations WHERE screen_id = $screen
            ORDER BY layer, matrix, row0, col0, mutation_id
            """,
            {"screen": screen_id, "kinds": list(KINDS)},
        ).fetchnumpy()
        styles, words = (
            [
                row[0]
                for row in connection.execute(
                    f"SELECT DISTINCT {column} FROM results WHERE screen_id = ? AND changed"
                    f" AND {column} IS NOT NULL ORDER BY 1",
                    [screen_id],
                ).fetchall()
            ]
            for column in ("style", "first_word")
        )
        effects = None
        if has_table(connection, "effects"):
            effects = connection.execute(
                "SELECT mutation_id, max(kl_all) AS effect FROM effects WHERE screen_id = ?"
                " GROUP BY mutation_id",
                [screen_id],
            ).fetchnumpy()
        recorded = effects is not None and len(effects["mutation_id"]) > 0
        noise = read_noise(connection, screen_id) if recorded else None
        # with effect sizes, each changed result brings the margin it diverged at
        margin, join = (
            (", coalesce(e.diverge_margin, 'nan')::DOUBLE AS margin", _EFFECT_JOIN)
            if recorded
            else ("", "")
        )
        changed = connection.execute(
            "SELECT r.mutation_id, r.probe_id, r.severity, r.malignant,"
            " coalesce(list_position($styles, r.style), 0) - 1 AS style,"
            f" coalesce(list_position($words, r.first_word), 0) - 1 AS word{margin}"
            f" FROM results r{join} WHERE r.screen_id = $screen AND r.changed"
            " ORDER BY r.mutation_id, r.probe_id",
            {"screen": screen_id, "styles": styles, "words": words},
        ).fetchnumpy()
        tag_rows = connection.execute(
            "SELECT mutation_id, tag, note FROM tags WHERE screen_id = ?", [screen_id]
        ).fetchall()
    if summary_row is None:
        raise MutatuiError(f"no screen {screen_id} in {path}")
    numbers = None if engine is None else engine.numbers
    data = _assemble(
        path,
        summary_row,
        numbers,
        probes,
        matrices,
        runs,
        mutations,
        changed,
        styles,
        words,
        tag_rows,
    )
    if recorded:
        data.effect = np.full(len(data.mutation_id), np.nan)
        positions, found = _positions_of(
            data.mutation_id, _column(effects, "mutation_id", np.int64)
        )
        data.effect[positions[found]] = _column(effects, "effect", np.float64)[found]
        data.phenotype_margin = _column(changed, "margin", np.float64)
        data.noise = noise
    if data.summary.kind == PUBLISHED:
        data.published = _published_view(path, data)
    return data


def _published_view(path: str | Path, data: ScreenData) -> PublishedView:
    """A published screen's per-mutation score, flag and cosine, and its experiments."""
    screen_id = data.summary.screen_id
    with connect(path, read_only=True) as connection:
        quiet(connection)
        spec = connection.execute(
            "SELECT spec FROM screens WHERE screen_id = ?", [screen_id]
        ).fetchone()[0]
        choice = connection.execute(
            "SELECT r.mutation_id, r.choice_score, r.destructive, p.baseline_score "
            "FROM results r JOIN probes p USING (screen_id, probe_id) "
            "WHERE r.screen_id = ? AND p.kind = 'choice'",
            [screen_id],
        ).fetchall()
        cosines = connection.execute(
            "SELECT mutation_id, cosine FROM results WHERE screen_id = ? AND probe_id = 0",
            [screen_id],
        ).fetchall()
    count = len(data.mutation_id)
    score, cosine = np.full(count, np.nan), np.full(count, np.nan)
    destructive = np.zeros(count, dtype=bool)
    baseline = 0
    if choice:
        positions, found = _positions_of(data.mutation_id, np.array([r[0] for r in choice]))
        score[positions[found]] = np.array([r[1] for r in choice], dtype=float)[found]
        destructive[positions[found]] = np.array([bool(r[2]) for r in choice])[found]
        baseline = int(choice[0][3] or 0)
    if cosines:
        positions, found = _positions_of(data.mutation_id, np.array([r[0] for r in cosines]))
        values = np.array([np.nan if r[1] is None else r[1] for r in cosines], dtype=float)
        cosine[positions[found]] = values[found]
    described = (description_of(spec) or {}).get("published", {})
    return PublishedView(
        str(described.get("citation", "")),
        baseline,
        score,
        destructive,
        cosine,
        experiment_counts(path, screen_id),
    )


_EFFECT_JOIN = " LEFT JOIN effects e USING (screen_id, mutation_id, probe_id)"


def _positions_of(mutation_id: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `ids` is in `mutation_id` (an unsorted array of distinct ids), and
    whether it is there at all."""
    order = np.argsort(mutation_id, kind="stable")
    if not len(order):
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    at = np.clip(np.searchsorted(mutation_id[order], ids), 0, len(order) - 1)
    return order[at], mutation_id[order][at] == ids


def _column(frame: dict, name: str, dtype) -> np.ndarray:
    values = frame[name]
    if isinstance(values, np.ma.MaskedArray):
        values = values.filled(0)
    return np.asarray(values, dtype=dtype)


def _assemble(
    path, summary_row, numbers, probes, matrices, runs, mutations, changed, styles, words, tag_rows
) -> ScreenData:
    mutation_id = _column(mutations, "mutation_id", np.int64)
    shapes = {(shape.layer, shape.matrix): position for position, shape in enumerate(matrices)}
    matrix_index = np.full(len(mutation_id), -1, dtype=np.int32)
    slices = [slice(0, 0)] * len(matrices)
    start = 0
    for layer, matrix, count in runs:  # the mutations are sorted by (layer, matrix) too
        position = shapes.get((layer, matrix))
        if position is not None:
            matrix_index[start : start + count] = position
            slices[position] = slice(start, start + count)
        start += count
    kind = _column(mutations, "kind", np.int8)
    phenotype_mutation, _ = _positions_of(mutation_id, _column(changed, "mutation_id", np.int64))
    index_of = {int(value): position for position, value in enumerate(mutation_id)}
    tags: dict[int, dict[str, str | None]] = {}
    for tagged_id, tag, note in tag_rows:
        position = index_of.get(int(tagged_id))
        if position is not None:
            tags.setdefault(position, {})[tag] = note
    tested = np.full(len(mutation_id), len(probes), dtype=np.int32)
    phenotypic = np.zeros(len(mutation_id), dtype=bool)
    phenotypic[phenotype_mutation] = True
    screen_id, name, kind_name, model, status, decoding, planned, created_at, shard = summary_row
    shown = live_status(path, status)
    summary = ScreenSummary(
        screen_id,
        name,
        kind_name,
        model,
        shown,
        decoding,
        len(probes),
        planned,
        int((tested > 0).sum()),
        int(phenotypic.sum()),
        created_at,
        shard,
        numbers,
    )
    return ScreenData(
        summary=summary,
        probes=probes,
        matrices=matrices,
        matrix_slices=slices,
        mutation_id=mutation_id,
        matrix_index=matrix_index,
        row0=_column(mutations, "row0", np.int32),
        row1=_column(mutations, "row1", np.int32),
        col0=_column(mutations, "col0", np.int32),
        col1=_column(mutations, "col1", np.int32),
        kind=kind,
        tested=tested,
        phenotype_mutation=np.asarray(phenotype_mutation, dtype=np.int64),
        phenotype_probe=_column(changed, "probe_id", np.int32),
        phenotype_severity=_column(changed, "severity", np.int8),
        phenotype_malignant=_column(changed, "malignant", bool),
        phenotype_style=_column(changed, "style", np.int32),
        phenotype_word=_column(changed, "word", np.int32),
        styles=styles,
        words=words,
        tags=tags,
        written=len(mutation_id),
    )


_FLAGS = ("empty", "repetitive", "garbage", "nonfinite", "destructive", "settled_naively")


def mutation_detail(path: str | Path, screen_id: int, mutation_id: int) -> MutationDetail:
    """One mutation with every result (texts included) and its tags."""
    with connect(path, read_only=True) as connection:
        site = connection.execute(
            "SELECT layer, matrix, row0, row1, col0, col1, kind, value FROM mutations"
            " WHERE screen_id = ? AND mutation_id = ?",
            [screen_id, mutation_id],
        ).fetchone()
        probes = {
            row[0]: Probe(*row)
            for row in connection.execute(
                "SELECT probe_id, name, kind, style, prompt, baseline_text, baseline_score,"
                " questions FROM probes WHERE screen_id = ?",
                [screen_id],
            ).fetchall()
        }
        rows = connection.execute(
            f"SELECT probe_id, changed, text, first_word, diverge_at, edit_distance, cosine,"
            f" severity, malignant, style, choice_score, choice_delta, {', '.join(_FLAGS)}"
            f" FROM results WHERE screen_id = ? AND mutation_id = ? ORDER BY probe_id",
            [screen_id, mutation_id],
        ).fetchall()
        tags = dict(
            connection.execute(
                "SELECT tag, note FROM tags WHERE screen_id = ? AND mutation_id = ?"
                " ORDER BY created_at, tag",
                [screen_id, mutation_id],
            ).fetchall()
        )
        effects, steps = _effects_and_steps(connection, screen_id, mutation_id)
    if site is None:
        raise MutatuiError(f"no mutation {mutation_id} in screen {screen_id} of {path}")
    results = []
    for row in rows:
        probe_id, changed, text, word, diverge, distance, cosine, severity, malignant = row[:9]
        style, score, delta = row[9:12]
        flags = tuple(name for name, on in zip(_FLAGS, row[12:], strict=True) if on)
        probe = probes.get(probe_id) or Probe(
            probe_id, f"probe {probe_id}", "text", None, "", None, None, None
        )
        results.append(
            ResultDetail(
                probe,
                changed,
                text,
                word,
                diverge,
                distance,
                cosine,
                severity,
                malignant,
                style,
                flags,
                score,
                delta,
                effects.get(probe_id),
                *steps.get(probe_id, ((), ())),
            )
        )
    layer, matrix, row0, row1, col0, col1, kind, value = site
    return MutationDetail(
        mutation_id, layer, matrix, row0, row1, col0, col1, kind, value, results, tags
    )


def _effects_and_steps(
    connection, screen_id: int, mutation_id: int
) -> tuple[dict[int, tuple], dict[int, tuple[tuple[int, ...], tuple[float, ...]]]]:
    """By probe: the mutation's effect sizes, and the baseline's tokens with their margins
    (files made before these tables have neither)."""
    effects: dict[int, tuple] = {}
    steps: dict[int, tuple[tuple[int, ...], tuple[float, ...]]] = {}
    if has_table(connection, "effects"):
        for probe_id, *values in connection.execute(
            "SELECT probe_id, delta_nll, kl_prefix, kl_all, diverge_margin FROM effects"
            " WHERE screen_id = ? AND mutation_id = ?",
            [screen_id, mutation_id],
        ).fetchall():
            effects[probe_id] = tuple(values)
    if has_table(connection, "probe_margins"):
        for probe_id, tokens, margins in connection.execute(
            "SELECT p.probe_id, p.baseline_tokens, m.margins FROM probes p JOIN probe_margins m"
            " USING (screen_id, probe_id) WHERE p.screen_id = ?",
            [screen_id],
        ).fetchall():
            steps[probe_id] = (tuple(tokens or ()), tuple(margins))
    return effects, steps


FIRST_WORDS = 8
"""How many words of a changed output a list shows."""


def first_words(
    path: str | Path, screen_id: int, results: list[tuple[int, int]]
) -> dict[tuple[int, int], str]:
    """The first words of changed outputs, by (mutation_id, probe_id): one query for a list."""
    if not results:
        return {}
    mutation_ids, probe_ids = (list(column) for column in zip(*results, strict=True))
    with connect(path, read_only=True) as connection:
        quiet(connection)
        rows = connection.execute(
            "SELECT r.mutation_id, r.probe_id, r.text FROM results r"
            " JOIN (SELECT unnest(?::BIGINT[]) AS mutation_id, unnest(?::BIGINT[]) AS probe_id)"
            " wanted USING (mutation_id, probe_id) WHERE r.screen_id = ?",
            [mutation_ids, probe_ids, screen_id],
        ).fetchall()
    return {
        (mutation_id, probe_id): " ".join((text or "").split()[:FIRST_WORDS])
        for mutation_id, probe_id, text in rows
    }


def tags_of(path: str | Path, screen_id: int) -> dict[int, dict[str, str | None]]:
    """Every tag of a screen kept in `path` (a side database), by mutation id; none when the
    file does not exist yet."""
    if not Path(path).exists():
        return {}
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            "SELECT mutation_id, tag, note FROM tags WHERE screen_id = ? ORDER BY created_at, tag",
            [screen_id],
        ).fetchall()
    found: dict[int, dict[str, str | None]] = {}
    for mutation_id, tag, note in rows:
        found.setdefault(int(mutation_id), {})[tag] = note
    return found


def overlay_tags(data: ScreenData, side: dict[int, dict[str, str | None]]) -> None:
    """Add a side database's tags (`tags_of`) to a screen read from its own file."""
    for mutation_id, tags in side.items():
        position = data.index_of(mutation_id)
        if position is not None:
            data.tags.setdefault(position, {}).update(tags)


def add_tag(
    path: str | Path, screen_id: int, mutation_id: int, tag: str, note: str | None = None
) -> None:
    """Tag a mutation (or replace the note of an existing tag), written at once (into a new
    database when `path` is a side database not made yet)."""
    if not Path(path).exists():
        ensure_data_folder(path)
        initialize(path)
    with connect(path, read_only=False) as connection:
        connection.execute(
            "INSERT INTO tags (screen_id, mutation_id, tag, note) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (screen_id, mutation_id, tag) DO UPDATE SET note = excluded.note",
            [screen_id, mutation_id, tag, note or None],
        )


def remove_tag(path: str | Path, screen_id: int, mutation_id: int, tag: str) -> None:
    with connect(path, read_only=False) as connection:
        connection.execute(
            "DELETE FROM tags WHERE screen_id = ? AND mutation_id = ? AND tag = ?",
            [screen_id, mutation_id, tag],
        )
