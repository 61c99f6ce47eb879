"""Hu et al.'s published screens into a mutatui database: one screen of the kind `published` per
model (Llama-2-7B, Zephyr-7B), carrying the model's real shapes and no weights.

A screen holds Table 2's tile NSMs as its mutations, each with its Mmlu21 result (the score, the
destructive flag) and its Drosophila result (the cosine, or silent), graded as mutatui grades
its own (`screening.grading`: a destroyed score is severe; a cosine of at most 0.5 with a
destroyed score malignant, as the paper defines it); Table 1's per-matrix NSMs and distinct
phenotypes of every experiment; and Zephyr's writer mutations (Table 3, Document 2B) as
mutations of their own, with their outputs' first words and the authors' labels, and the texts
themselves unless left out (`texts=False`, as in the bundled screens.db). Nothing is written
while any problem stands, and then everything at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mutatui.engine.families import MATRIX_ORDER
from mutatui.engine.forms import DROSOPHILA_PROMPT
from mutatui.errors import MutatuiError
from mutatui.paper import tables
from mutatui.paper.models import CITATION, PAPER_MODELS, TILE, PaperModel
from mutatui.screening.grading import choice_severity, text_severity
from mutatui.screening.style import first_word
from mutatui.store.published import PublishedScreen, write_published

DROSOPHILA = DROSOPHILA_PROMPT
MMLU21_QUESTIONS = 21
MMLU21_BASELINE = 14
"""The standard models answer the first 14 of the 21 questions right, the other 7 wrong."""


AS_STYLE = {
    "poem": "poetic",
    "dialogue": "conversational",
    "narrative": "narrative",
    "other": "other",
}
"""The authors' labels (Table 3's fills) in the words of mutatui's results' `style`, so that
the explorer's writers view takes them as it takes its own (a first-person narrative is a
style of its own there); `published_outputs` keeps the authors' words."""


def screen_name(model: PaperModel) -> str:
    return f"hu2024-{model.name.lower()}"


@dataclass
class Sources:
    """What was read from the folder, with every problem and note."""

    problems: tables.Problems = field(default_factory=tables.Problems)
    experiments: list[tables.Experiment] = field(default_factory=list)
    counts: list[tables.MatrixCount] = field(default_factory=list)
    tiles: list[tables.TileNSM] = field(default_factory=list)
    writers: list[tables.Writer] = field(default_factory=list)
    outputs: list[tables.Output] = field(default_factory=list)


def read_sources(folder: Path) -> Sources:
    """Every file of the supplementary material, read and checked."""
    tables.check_folder(folder)
    sources = Sources()
    problems = sources.problems
    sources.experiments, sources.counts = tables.read_table1(folder, problems)
    sources.tiles = tables.read_table2(folder, problems)
    writers, outputs = tables.read_table3(folder, problems)
    inputs = tables.read_document1(folder, problems)
    for name in (tables.DOCUMENT2A, tables.DOCUMENT2B):
        found, said = tables.read_document2(folder, name, inputs, problems)
        writers += found
        outputs += said
    sources.writers, sources.outputs = writers, outputs
    return sources


class PaperFilesError(MutatuiError):
    """The files have problems (`lines`, one each): nothing was written."""

    def __init__(self, lines: list[str], folder: Path) -> None:
        self.lines = lines
        count = f"{len(lines)} problem{'s' if len(lines) != 1 else ''}"
        super().__init__(f"{count} in {folder}; nothing was written")


@dataclass(frozen=True)
class ImportReport:
    screens: list[str]
    mutations: dict[str, int]
    notes: list[str]


def import_paper(
    folder: Path,
    db: Path,
    *,
    texts: bool = True,
    replace: bool = False,
    progress: Callable[[str], None] = lambda _line: None,
) -> ImportReport:
    """Read, check and import; raise with one line per problem (nothing written then)."""
    sources = read_sources(folder)
    if sources.problems:
        raise PaperFilesError(sources.problems.lines, folder)
    screens = [build_screen(model, sources, texts=texts) for model in PAPER_MODELS.values()]
    progress(f"writing {', '.join(screen.name for screen in screens)} into {db}")
    write_published(db, screens, replace=replace)
    return ImportReport(
        [screen.name for screen in screens],
        {screen.name: len(screen.mutations) for screen in screens},
        list(sources.problems.notes),
    )


def build_screen(model: PaperModel, sources: Sources, *, texts: bool) -> PublishedScreen:
    """One model's published screen, as rows of the store's tables."""
    writers = [w for w in sources.writers if model.name == "Zephyr"]
    prompts = _prompts(sources, model)
    probes = [_text_probe(number, prompt) for number, prompt in enumerate(prompts)]
    choice_id = len(probes)
    probes.append(
        {
            "probe_id": choice_id,
            "name": "mmlu21",
            "kind": "choice",
            "prompt": "Mmlu21: the authors' 21 MMLU questions (14 the standard model answers right)",
            "baseline_score": MMLU21_BASELINE,
            "questions": MMLU21_QUESTIONS,
        }
    )
    mutations, results, positions = _tile_rows(model, sources.tiles, choice_id)
    listed = len(mutations)
    writer_rows, output_rows = _writer_rows(
        model, writers, sources.outputs, prompts, mutations, results, positions, choice_id, texts
    )
    experiments = [e for e in sources.experiments if e.model == model.name]
    return PublishedScreen(
        name=screen_name(model),
        model=model.hub_id,
        description={
            "published": {
                "citation": CITATION,
                "model": model.name,
                "hub_id": model.hub_id,
                "shape": {
                    "layers": model.layers,
                    "hidden": model.hidden,
                    "intermediate": model.intermediate,
                    "heads": model.heads,
                    "kv_heads": model.kv_heads,
                },
                "tile": TILE,
                "kinds": ["max", "min", "zero"],
                "experiments": [e.name for e in experiments],
                "mutations": "Table 2: the Mmlu21 NSMs scoring at most 10 of 21",
                "listed": listed,
                "selection": "Mmlu21 score at most 10 of 21",
                "texts": texts,
            }
        },
        probes=probes,
        matrices=_matrix_rows(model),
        mutations=mutations,
        results=results,
        experiments=[
            [e.name, e.kind, e.totals["max"], e.totals["min"], e.totals["zero"]]
            for e in experiments
        ],
        counts=[
            [c.experiment, c.layer, c.matrix, c.nsms, c.distinct]
            for c in sources.counts
            if c.model == model.name
        ],
        writers=writer_rows,
        outputs=output_rows,
    )


def _prompts(sources: Sources, model: PaperModel) -> list[str]:
    """The screen's text probes: Drosophila (Table 2's cosines), then for Zephyr the other
    prompts of Table 3."""
    prompts = [DROSOPHILA]
    if model.name == "Zephyr":
        for output in sources.outputs:
            if output.source == "table3" and output.prompt not in prompts:
                prompts.append(output.prompt)
    return prompts


def _text_probe(number: int, prompt: str) -> dict[str, object]:
    return {
        "probe_id": number,
        "name": "drosophila" if prompt == DROSOPHILA else f"table3-{number}",
        "kind": "text",
        "style": "describe" if prompt == DROSOPHILA else None,
        "prompt": prompt,
    }


def _matrix_rows(model: PaperModel) -> list[dict[str, object]]:
    rows = []
    for layer in range(model.layers):
        for matrix in MATRIX_ORDER:
            part = "self_attn" if matrix in ("q", "k", "v", "o") else "mlp"
            height, width = model.shape(matrix)
            rows.append(
                {
                    "layer": layer,
                    "matrix": matrix,
                    "module_path": f"model.layers.{layer}.{part}.{matrix}_proj",
                    "rows": height,
                    "cols": width,
                    "min": float("nan"),  # the tables give no weights
                    "max": float("nan"),
                }
            )
    return rows


Key = tuple[int, str, int, int, str]
"""(layer, matrix, tile row, tile column, kind): a tile mutation."""


def _site(model: PaperModel, layer: int, matrix: str, loc1: int, loc2: int) -> list[int]:
    rows, cols = model.shape(matrix)
    row0, col0 = loc1 * TILE, loc2 * TILE
    return [row0, min(row0 + TILE, rows), col0, min(col0 + TILE, cols)]


def _tile_rows(
    model: PaperModel, tiles: list[tables.TileNSM], choice_id: int
) -> tuple[list[list[object]], list[dict[str, object]], dict[Key, int]]:
    """Table 2's NSMs as mutations and results (Mmlu21, and Drosophila where the table says)."""
    mutations: list[list[object]] = []
    results: list[dict[str, object]] = []
    positions: dict[Key, int] = {}
    for tile in (t for t in tiles if t.model == model.name):
        key = (tile.layer, tile.matrix, tile.loc1, tile.loc2, tile.kind)
        if key in positions:
            continue  # the table lists a tile once per kind
        mutation_id = len(mutations)
        positions[key] = mutation_id
        site = _site(model, tile.layer, tile.matrix, tile.loc1, tile.loc2)
        mutations.append([mutation_id, tile.layer, tile.matrix, *site, tile.kind, float("nan")])
        malignant = tile.destructive and tile.cosine is not None and tile.cosine <= 0.5
        delta = tile.score - MMLU21_BASELINE
        results.append(
            {
                "mutation_id": mutation_id,
                "probe_id": choice_id,
                "changed": True,
                "choice_score": tile.score,
                "choice_delta": delta,
                "destructive": tile.destructive,
                "severity": choice_severity(delta, tile.destructive),
                "malignant": malignant,
            }
        )
        if tile.silent or tile.cosine is not None:
            changed = not tile.silent
            results.append(
                {
                    "mutation_id": mutation_id,
                    "probe_id": 0,
                    "changed": changed,
                    "cosine": tile.cosine,
                    "severity": _text_severity(changed, tile.cosine),
                    "malignant": malignant,
                }
            )
    return mutations, results, positions


def _text_severity(changed: bool, cosine: float | None) -> int:
    return text_severity(
        changed=changed,
        cosine=cosine,
        edit_distance=0.0,
        empty=False,
        repetitive=False,
        garbage=False,
        nonfinite=False,
    )


def _writer_rows(
    model: PaperModel,
    writers: list[tables.Writer],
    outputs: list[tables.Output],
    prompts: list[str],
    mutations: list[list[object]],
    results: list[dict[str, object]],
    positions: dict[Key, int],
    choice_id: int,
    texts: bool,
) -> tuple[list[list[object]], list[list[object]]]:
    """Writers as mutations (their own, or Table 2's where the same tile is there) with their
    Table 3 results; every writer's row and every published output's row."""
    writer_rows: list[list[object]] = []
    results_of: dict[int, dict[int, dict[str, object]]] = {}
    for writer in writers:
        mutation_id = None
        if writer.kind is not None:
            key = (writer.layer, writer.matrix, writer.loc1, writer.loc2, writer.kind)
            if key not in positions:
                positions[key] = len(mutations)
                site = _site(model, writer.layer, writer.matrix, writer.loc1, writer.loc2)
                mutations.append(
                    [len(mutations), writer.layer, writer.matrix, *site, writer.kind, float("nan")]
                )
            mutation_id = positions[key]
        source = "table3" if len(writer.label) == 1 else _source_of(writer, outputs)
        writer_rows.append(
            [
                writer.label,
                source,
                mutation_id,
                writer.rihf,
                writer.cosine,
                writer.mmlu_right,
                writer.mmlu_wrong,
            ]
        )
        if mutation_id is None:
            continue
        own = results_of.setdefault(mutation_id, {})
        if writer.mmlu_right is not None or source == "table3":
            score = (
                MMLU21_BASELINE
                if writer.mmlu_right is None
                else writer.mmlu_right + (writer.mmlu_wrong or 0)
            )
            delta = score - MMLU21_BASELINE
            own.setdefault(
                choice_id,
                {
                    "mutation_id": mutation_id,
                    "probe_id": choice_id,
                    "changed": delta != 0 or writer.mmlu_right is not None,
                    "choice_score": score,
                    "choice_delta": delta,
                    "severity": choice_severity(delta, False),
                },
            )
        for output in outputs:
            if output.writer != writer.label or output.source != source:
                continue
            if output.prompt not in prompts or (source != "table3" and output.index != 0):
                continue
            probe_id = prompts.index(output.prompt)
            cosine = writer.cosine if probe_id == 0 else None
            own.setdefault(
                probe_id,
                {
                    "mutation_id": mutation_id,
                    "probe_id": probe_id,
                    "changed": True,
                    "cosine": cosine,
                    "text": output.text if texts else None,
                    "first_word": first_word(output.text),
                    "style": AS_STYLE.get(output.style) if output.style else None,
                    "severity": _text_severity(True, cosine),
                },
            )
    taken = {(r["mutation_id"], r["probe_id"]) for r in results}
    for mutation_id, by_probe in results_of.items():
        for probe_id, row in by_probe.items():
            if (mutation_id, probe_id) not in taken:
                results.append(row)
    results.sort(key=lambda row: (row["mutation_id"], row["probe_id"]))
    output_rows = [
        [
            output.writer,
            output.source,
            output.index,
            output.prompt,
            first_word(output.text),
            output.style,
            output.text if texts else None,
        ]
        for output in outputs
        if model.name == "Zephyr"
    ]
    return writer_rows, output_rows


def _source_of(writer: tables.Writer, outputs: list[tables.Output]) -> str:
    return next((o.source for o in outputs if o.writer == writer.label), "document2b")
