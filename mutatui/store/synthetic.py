"""Synthetic screen databases of any size, written through the real schema.

For the explorer's tests, snapshots and latency benchmark, before (and besides) real screens.
The phenotypes are plausible, not random noise: each matrix has a few sensitive rows and
columns where phenotypes cluster (severe ones most of all), max and min are sensitive on
complementary axes, and a handful of "writer" rows in the down matrices, shared across layers,
turn descriptive answers conversational or poetic with a few rare first words. Everything is
drawn from one seeded generator and timestamps are fixed, so a seed always gives the same file.

`python -m mutatui.store.synthetic PATH --resume` finishes a screen built with `written` below
1.0, batch by batch with short connections, as a screen process would: the explorer's
live-update test runs it in a subprocess.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from mutatui.engine.families import MATRIX_ORDER
from mutatui.store.database import connect, initialize, writer_lock

FIXED_TIME = datetime(2026, 1, 1, 12, 0, 0)

STYLE_WRITERS = ("conversational", "poetic")
COMMON_WORDS = ("The", "A", "In", "This", "It", "Drosophila", "When", "Here")
WRITER_WORDS = ("Oh", "Ah", "Imagine", "Once", "Hey", "Whispers", "Behold", "Dear")
WRITER_WEIGHTS = (0.30, 0.22, 0.15, 0.12, 0.09, 0.06, 0.04, 0.02)

PROMPTS = (
    ("drosophila", "describe", "The life cycle of Drosophila:"),
    ("sunset", "describe", "Describe a sunset over the ocean."),
    ("python", "code", "Write a Python function that reverses a list."),
    ("photosynthesis", "explain", "Explain photosynthesis in two sentences."),
)
BASELINES = (
    "The life cycle of Drosophila has four stages: egg, larva, pupa and adult.",
    "The sun sinks into the ocean, painting the water orange and pink.",
    "def reverse(items):\n    return items[::-1]",
    "Plants use light to turn water and carbon dioxide into sugar and oxygen.",
)


@dataclass(frozen=True)
class SyntheticSpec:
    """The shape of a synthetic screen; the defaults are a small SmolLM2-like tile screen."""

    name: str = "synthetic"
    model: str = "synthetic-llama"
    seed: int = 0
    layers: int = 4
    hidden: int = 576
    intermediate: int = 1536
    kv: int = 192
    site: int = 64
    """Block edge: 64 for a tile screen, 1 for an element screen."""
    sites_per_matrix: int | None = None
    """None: every site of every matrix; else this many distinct sites drawn per matrix."""
    text_probes: int = 3
    choice_probe: bool = True
    status: str = "complete"
    written: float = 1.0
    """Fraction of the mutations whose results are in the file (the rest come with --resume)."""
    matrices: tuple[str, ...] = field(default=MATRIX_ORDER)

    def shape(self, matrix: str) -> tuple[int, int]:
        return {
            "q": (self.hidden, self.hidden),
            "k": (self.kv, self.hidden),
            "v": (self.kv, self.hidden),
            "o": (self.hidden, self.hidden),
            "gate": (self.intermediate, self.hidden),
            "up": (self.intermediate, self.hidden),
            "down": (self.hidden, self.intermediate),
        }[matrix]


@dataclass
class _Tables:
    mutations: dict[str, np.ndarray]
    results: dict[str, np.ndarray]


def _module_path(matrix: str) -> str:
    return f"self_attn.{matrix}_proj" if matrix in "qkvo" else f"mlp.{matrix}_proj"


def _axis_mask(rng: np.random.Generator, count: int, share: float) -> np.ndarray:
    mask = np.zeros(count, dtype=bool)
    hits = max(1, round(count * share))
    mask[rng.choice(count, size=min(hits, count), replace=False)] = True
    return mask


def _sites(spec: SyntheticSpec, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """(n, 2) block origins in block units, sorted row-major."""
    grid_rows, grid_cols = rows // spec.site, cols // spec.site
    total = grid_rows * grid_cols
    if spec.sites_per_matrix is None or spec.sites_per_matrix >= total:
        flat = np.arange(total)
    else:
        flat = np.sort(rng.choice(total, size=spec.sites_per_matrix, replace=False))
    return np.stack([flat // grid_cols, flat % grid_cols], axis=1)


def _generate(spec: SyntheticSpec) -> _Tables:
    rng = np.random.default_rng(spec.seed)
    text_probes = min(spec.text_probes, len(PROMPTS))
    probe_ids = list(range(text_probes)) + ([text_probes] if spec.choice_probe else [])
    writer_rows = np.sort(rng.choice(spec.hidden // spec.site, size=2, replace=False))
    mutation_parts: list[dict[str, np.ndarray]] = []
    result_parts: list[dict[str, np.ndarray]] = []
    next_id = 0
    for layer in range(spec.layers):
        for matrix in spec.matrices:
            rows, cols = spec.shape(matrix)
            sites = _sites(spec, rng, rows, cols)
            grid_rows, grid_cols = rows // spec.site, cols // spec.site
            # max and min are sensitive on complementary axes
            max_rows, max_cols = _axis_mask(rng, grid_rows, 0.04), _axis_mask(rng, grid_cols, 0.03)
            min_rows = _axis_mask(rng, grid_rows, 0.04) & ~max_rows
            min_cols = _axis_mask(rng, grid_cols, 0.03) & ~max_cols
            for kind, hot_rows, hot_cols in (
                ("max", max_rows, max_cols),
                ("min", min_rows, min_cols),
            ):
                count = len(sites)
                ids = np.arange(next_id, next_id + count)
                next_id += count
                on_row = hot_rows[sites[:, 0]]
                on_col = hot_cols[sites[:, 1]]
                writer = (
                    np.isin(sites[:, 0], writer_rows) & (matrix == "down") & (kind == "max")
                    if layer % 2 == 0
                    else np.zeros(count, dtype=bool)
                )
                probability = 0.015 + 0.55 * on_row + 0.45 * on_col + 0.6 * writer
                phenotype = rng.random(count) < np.minimum(probability, 0.97)
                severity = np.where(
                    on_row & on_col,
                    3,
                    np.where(on_row | on_col, rng.integers(1, 4, count), rng.integers(1, 3, count)),
                )
                mutation_parts.append(
                    {
                        "mutation_id": ids,
                        "layer": np.full(count, layer),
                        "matrix": np.full(count, matrix, dtype=object),
                        "row0": sites[:, 0] * spec.site,
                        "row1": (sites[:, 0] + 1) * spec.site,
                        "col0": sites[:, 1] * spec.site,
                        "col1": (sites[:, 1] + 1) * spec.site,
                        "kind": np.full(count, kind, dtype=object),
                        "value": np.full(count, 0.5 if kind == "max" else -0.5),
                    }
                )
                for probe_index, probe_id in enumerate(probe_ids):
                    is_choice = probe_id == text_probes
                    changed = phenotype & (rng.random(count) < (0.5 if is_choice else 0.8))
                    if probe_index == 0:
                        changed |= phenotype
                    result_parts.append(
                        _results_for_probe(
                            rng, ids, probe_id, is_choice, changed, severity, writer & changed
                        )
                    )
    return _Tables(_concat(mutation_parts), _concat(result_parts))


def _results_for_probe(
    rng: np.random.Generator,
    ids: np.ndarray,
    probe_id: int,
    is_choice: bool,
    changed: np.ndarray,
    severity: np.ndarray,
    writer: np.ndarray,
) -> dict[str, np.ndarray]:
    count = len(ids)
    result_severity = np.where(changed, severity, 0)
    destroyed = changed & (result_severity == 3)
    if is_choice:
        score = np.where(changed, np.where(destroyed, rng.integers(0, 6, count), 12), 14)
        empty_text = np.full(count, None, dtype=object)
        return {
            "mutation_id": ids,
            "probe_id": np.full(count, probe_id),
            "changed": changed,
            "diverge_at": np.full(count, None, dtype=object),
            "edit_distance": np.full(count, None, dtype=object),
            "cosine": np.full(count, None, dtype=object),
            "text": empty_text,
            "first_word": empty_text,
            "repetitive": np.zeros(count, dtype=bool),
            "garbage": np.zeros(count, dtype=bool),
            "choice_score": score,
            "choice_delta": score - 14,
            "destructive": destroyed,
            "severity": result_severity,
            "malignant": destroyed,
            "style": empty_text,
        }
    writer_here = writer & (probe_id != 2)
    words = np.where(
        writer_here,
        rng.choice(np.array(WRITER_WORDS, dtype=object), size=count, p=WRITER_WEIGHTS),
        rng.choice(np.array(COMMON_WORDS, dtype=object), size=count),
    )
    styles = np.where(
        writer_here,
        rng.choice(np.array(STYLE_WRITERS, dtype=object), size=count),
        np.where(probe_id == 2, "other", "descriptive"),
    )
    cosine = np.clip(1.0 - result_severity * 0.25 - rng.random(count) * 0.2, -0.2, 1.0)
    texts = np.array(
        [
            _mutant_text(word, probe_id, style, level) if is_changed else None
            for word, style, level, is_changed in zip(
                words, styles, result_severity, changed, strict=True
            )
        ],
        dtype=object,
    )
    none = np.full(count, None, dtype=object)
    return {
        "mutation_id": ids,
        "probe_id": np.full(count, probe_id),
        "changed": changed,
        "diverge_at": np.where(changed, rng.integers(0, 12, count), None).astype(object),
        "edit_distance": np.where(changed, np.round(rng.random(count), 3), None).astype(object),
        "cosine": np.where(changed, np.round(cosine, 3), None).astype(object),
        "text": texts,
        "first_word": np.where(changed, words, None).astype(object),
        "repetitive": changed & (result_severity == 3) & (rng.random(count) < 0.5),
        "garbage": changed & (result_severity == 3) & (rng.random(count) < 0.3),
        "choice_score": none,
        "choice_delta": none,
        "destructive": np.zeros(count, dtype=bool),
        "severity": result_severity,
        "malignant": changed & (result_severity == 3) & (cosine <= 0.5),
        "style": np.where(changed, styles, None).astype(object),
    }


def _mutant_text(word: str, probe_id: int, style: str, severity: int) -> str:
    if severity == 3:
        return f"{word} the the the the the the the"
    if style == "poetic":
        return f"{word}, gentle light upon the sea, the day dissolves in gold and memory."
    if style == "conversational":
        return f"{word}! What a lovely question. Let me tell you all about it, friend."
    base = BASELINES[probe_id].split(" ", 1)[-1]
    return f"{word} {base}"


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _select(table: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {key: column[mask] for key, column in table.items()}


def _write_screen(path: Path, spec: SyntheticSpec, tables: _Tables, written: int) -> int:
    with connect(path, read_only=False) as connection:
        screen_id = connection.execute(
            "SELECT coalesce(max(screen_id), 0) + 1 FROM screens"
        ).fetchone()[0]
        spec_json = json.dumps(asdict(spec), sort_keys=True)
        connection.execute(
            "INSERT INTO screens (screen_id, name, kind, model, spec, spec_hash, decoding,"
            " max_new_tokens, shard, planned_mutations, status, created_at, updated_at,"
            " elapsed_seconds) VALUES (?, ?, 'screen', ?, ?, ?, 'greedy', 48, NULL, ?, ?, ?, ?, ?)",
            [
                screen_id,
                spec.name,
                spec.model,
                spec_json,
                f"synthetic-{spec.seed}",
                len(tables.mutations["mutation_id"]),
                spec.status,
                FIXED_TIME,
                FIXED_TIME,
                3600.0,
            ],
        )
        for probe_id, (name, style, prompt) in enumerate(PROMPTS[: spec.text_probes]):
            connection.execute(
                "INSERT INTO probes VALUES (?, ?, ?, 'text', ?, ?, ?, ?, NULL, NULL)",
                [screen_id, probe_id, name, style, prompt, BASELINES[probe_id], [1, 2, 3]],
            )
        if spec.choice_probe:
            connection.execute(
                "INSERT INTO probes VALUES (?, ?, 'mmlu21', 'choice', 'choice', 'mmlu-21',"
                " NULL, NULL, 14, 21)",
                [screen_id, spec.text_probes],
            )
        for layer in range(spec.layers):
            for matrix in spec.matrices:
                rows, cols = spec.shape(matrix)
                connection.execute(
                    "INSERT INTO matrices VALUES (?, ?, ?, ?, ?, ?, -0.5, 0.5)",
                    [screen_id, layer, matrix, _module_path(matrix), rows, cols],
                )
    _write_batch(path, screen_id, tables, 0, written)
    return screen_id


def _write_batch(path: Path, screen_id: int, tables: _Tables, start: int, stop: int) -> None:
    """Append mutations [start, stop) and their results in one transaction, as a screen does."""
    if stop <= start:
        return
    mutation_ids = tables.mutations["mutation_id"]
    mutations = _select(tables.mutations, (mutation_ids >= start) & (mutation_ids < stop))
    result_ids = tables.results["mutation_id"]
    results = _select(tables.results, (result_ids >= start) & (result_ids < stop))
    mutations["screen_id"] = np.full(len(mutations["mutation_id"]), screen_id)
    results["screen_id"] = np.full(len(results["mutation_id"]), screen_id)
    with connect(path, read_only=False) as connection:
        connection.register("new_mutations", mutations)
        connection.register("new_results", results)
        connection.execute(
            "INSERT INTO mutations SELECT screen_id, mutation_id, layer, matrix, row0, row1,"
            " col0, col1, kind, value FROM new_mutations"
        )
        connection.execute(
            "INSERT INTO results (screen_id, mutation_id, probe_id, changed, diverge_at,"
            " edit_distance, cosine, text, first_word, repetitive, garbage, choice_score,"
            " choice_delta, destructive, severity, malignant, style)"
            " SELECT screen_id, mutation_id, probe_id, changed, diverge_at, edit_distance,"
            " cosine, text, first_word, repetitive, garbage, choice_score, choice_delta,"
            " destructive, severity, malignant, style FROM new_results ORDER BY mutation_id"
        )


def build_synthetic(path: str | Path, spec: SyntheticSpec | None = None) -> int:
    """Add one synthetic screen to the database at `path` (created if new); its screen_id."""
    spec = spec or SyntheticSpec()
    target = Path(path)
    initialize(target)
    tables = _generate(spec)
    total = len(tables.mutations["mutation_id"])
    return _write_screen(target, spec, tables, round(total * spec.written))


def resume_synthetic(path: str | Path, name: str, *, batches: int = 5, pause: float = 0.5) -> None:
    """Write the rest of a partly written synthetic screen in batches, then mark it complete."""
    target = Path(path)
    with connect(target, read_only=True) as connection:
        screen_id, spec_json = connection.execute(
            "SELECT screen_id, spec FROM screens WHERE name = ?", [name]
        ).fetchone()
        done = connection.execute(
            "SELECT coalesce(max(mutation_id) + 1, 0) FROM mutations WHERE screen_id = ?",
            [screen_id],
        ).fetchone()[0]
    fields = json.loads(spec_json)
    fields["matrices"] = tuple(fields["matrices"])
    spec = SyntheticSpec(**fields)
    tables = _generate(spec)
    total = len(tables.mutations["mutation_id"])
    edges = np.linspace(done, total, batches + 1).round().astype(int)
    with writer_lock(target):  # as a screen process holds it: the screen shows as running
        for start, stop in itertools.pairwise(edges):
            time.sleep(pause)
            _write_batch(target, screen_id, tables, int(start), int(stop))
        with connect(target, read_only=False) as connection:
            connection.execute(
                "UPDATE screens SET status = 'complete' WHERE screen_id = ?", [screen_id]
            )


def main() -> None:
    parser = argparse.ArgumentParser(description="build or finish a synthetic screen database")
    parser.add_argument("path")
    parser.add_argument("--name", default="synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--resume", action="store_true", help="write the rest of --name")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.5)
    args = parser.parse_args()
    if args.resume:
        resume_synthetic(args.path, args.name, batches=args.batches, pause=args.pause)
    else:
        build_synthetic(
            args.path, SyntheticSpec(name=args.name, seed=args.seed, layers=args.layers)
        )


if __name__ == "__main__":
    main()
