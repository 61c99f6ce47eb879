"""Screen databases with planted phenotype patterns, written through the real schema.

Used by the analysis and plot tests: every expected statistic follows from the pattern.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from mutatui.store.database import connect, initialize
from mutatui.store.screens import MUTATION_COLUMNS

TILE = 64


@dataclass
class Outcome:
    changed: bool = True
    severity: int = 1
    style: str | None = "descriptive"
    first_word: str | None = "the"
    malignant: bool = False
    probe: str = "describe"
    cosine: float | None = None


@dataclass
class FixtureScreen:
    """A tile screen: matrices as grids of 64x64 tiles, every tile tested with max and min.
    `tile=1` makes an element screen; `sites` (layer, matrix, row, col) tests only those."""

    name: str = "fixture"
    tile: int = TILE
    sites: set[tuple[int, str, int, int]] | None = None
    probes: dict[str, str] = field(
        default_factory=lambda: {
            "describe": "The life cycle of a frog begins in water.",
            "explain": "Photosynthesis turns light into sugar.",
        }
    )
    matrices: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    outcomes: dict[tuple[int, str, int, int, str], list[Outcome]] = field(default_factory=dict)
    tags: list[tuple[int, str, int, int, str, str]] = field(default_factory=list)
    choice_deltas: dict[tuple[int, str, int, int, str], int] = field(default_factory=dict)
    """With any: a choice probe (baseline 14 of 21 right), asked of these mutations."""

    def matrix(self, layer: int, name: str, tile_rows: int, tile_cols: int) -> FixtureScreen:
        self.matrices[(layer, name)] = (tile_rows * self.tile, tile_cols * self.tile)
        return self

    def hit(self, layer: int, name: str, row: int, col: int, kind: str, **outcome) -> None:
        """A phenotype on tile (row, col) for `kind` (rows and cols in tile units)."""
        self.outcomes.setdefault((layer, name, row, col, kind), []).append(Outcome(**outcome))

    def write(self, path: Path) -> Path:
        initialize(path)
        with connect(path, read_only=False) as db:
            screen_id = 1 + db.execute("SELECT count(*) FROM screens").fetchone()[0]
            db.execute(
                """INSERT INTO screens (screen_id, name, model, spec, spec_hash, decoding,
                   max_new_tokens, status) VALUES (?, ?, 'fixture', ?, 'x', 'greedy', 48, 'complete')""",
                [screen_id, self.name, json.dumps({"fixture": True})],
            )
            probe_ids = {}
            for probe_id, (name, text) in enumerate(self.probes.items()):
                probe_ids[name] = probe_id
                db.execute(
                    """INSERT INTO probes (screen_id, probe_id, name, kind, style, prompt,
                       baseline_text) VALUES (?, ?, ?, 'text', 'describe', ?, ?)""",
                    [screen_id, probe_id, name, f"Tell me: {name}", text],
                )
            choice_id = len(self.probes)
            if self.choice_deltas:
                db.execute(
                    """INSERT INTO probes (screen_id, probe_id, name, kind, prompt, baseline_score,
                       questions) VALUES (?, ?, 'choice', 'choice', 'shipped', 14, 21)""",
                    [screen_id, choice_id],
                )
            for (layer, name), (rows, cols) in sorted(self.matrices.items()):
                db.execute(
                    "INSERT INTO matrices VALUES (?, ?, ?, ?, ?, ?, -1.0, 1.0)",
                    [screen_id, layer, name, f"layers.{layer}.{name}", rows, cols],
                )
            mutations, results = [], []
            mutation_id = 0
            size = self.tile
            for (layer, name), (rows, cols) in sorted(self.matrices.items()):
                for row, col in itertools.product(range(rows // size), range(cols // size)):
                    if self.sites is not None and (layer, name, row, col) not in self.sites:
                        continue
                    for kind in ("max", "min"):
                        mutations.append(
                            (
                                screen_id,
                                mutation_id,
                                layer,
                                name,
                                row * size,
                                (row + 1) * size,
                                col * size,
                                (col + 1) * size,
                                kind,
                                1.0 if kind == "max" else -1.0,
                            )
                        )
                        found = {
                            o.probe: o for o in self.outcomes.get((layer, name, row, col, kind), [])
                        }
                        for probe, probe_id in probe_ids.items():
                            o = found.get(
                                probe,
                                Outcome(changed=False, severity=0, style=None, first_word=None),
                            )
                            results.append(
                                (
                                    screen_id,
                                    mutation_id,
                                    probe_id,
                                    o.changed,
                                    o.severity if o.changed else 0,
                                    o.malignant and o.changed,
                                    o.style if o.changed else None,
                                    o.first_word if o.changed else None,
                                    f"{o.first_word} ..." if o.changed else None,
                                    o.cosine if o.changed else None,
                                    None,
                                )
                            )
                        delta = self.choice_deltas.get((layer, name, row, col, kind))
                        if delta is not None:
                            no_text = (False, None, None, None, None)
                            results.append(
                                (
                                    screen_id,
                                    mutation_id,
                                    choice_id,
                                    delta != 0,
                                    choice_severity(delta),
                                    *no_text,
                                    delta,
                                )
                            )
                        for tag_layer, tag_name, tag_row, tag_col, tag_kind, tag in self.tags:
                            if (tag_layer, tag_name, tag_row, tag_col, tag_kind) == (
                                layer,
                                name,
                                row,
                                col,
                                kind,
                            ):
                                db.execute(
                                    "INSERT INTO tags (screen_id, mutation_id, tag) VALUES (?, ?, ?)",
                                    [screen_id, mutation_id, tag],
                                )
                        mutation_id += 1
            insert_columns(
                db,
                "mutations",
                ("screen_id", *MUTATION_COLUMNS),
                mutations,
            )
            insert_columns(
                db,
                "results",
                (
                    "screen_id",
                    "mutation_id",
                    "probe_id",
                    "changed",
                    "severity",
                    "malignant",
                    "style",
                    "first_word",
                    "text",
                    "cosine",
                    "choice_delta",
                ),
                results,
            )
        return path


def choice_severity(delta: int) -> int:
    """The choice grade of a score change, on the shipped set's baseline of 14 right."""
    return 3 if delta <= -7 else 2 if delta <= -3 else 1 if delta < 0 else 0


def insert_columns(db, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert many rows in one statement (DuckDB's executemany is slow row by row)."""
    values = {f"c{i}": [row[i] for row in rows] for i in range(len(columns))}
    selects = ", ".join(f"unnest($c{i})" for i in range(len(columns)))
    db.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selects}", values)


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """The pipe tables of a Markdown text by their bold title line: header row first."""
    tables: dict[str, list[list[str]]] = {}
    blocks = text.split("\n\n")
    for title, block in itertools.pairwise(blocks):
        lines = block.splitlines()
        if title.startswith("**") and lines and all(line.startswith("|") for line in lines):
            assert set(lines[1]) <= set("|-")  # the header's rule
            rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
            tables[title.strip("*")] = [rows[0], *rows[2:]]
    return tables
