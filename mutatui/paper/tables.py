"""Hu et al.'s supplementary tables and documents, read as published and checked.

Every reader returns what it read and a list of problems, one line each (a missing sheet, a
matrix name the model does not have, a coordinate outside its matrix, a type that is neither max,
min nor zero, a total that does not match its parts); the importer writes nothing while any
problem stands. Spreadsheets are read with openpyxl and documents with python-docx (the `paper`
extra).

The files, as the caption document (Supplementary_Material_Caption.docx) describes them:
- Table 1: per experiment, the total max, min and zero non-silent mutations (NSMs); per matrix
  (`L0_attn.q` ... `L31_mlp.down`) and per layer (`layers_0` ...), the NSMs and the distinct
  phenotypes of every experiment, one sheet each per model.
- Table 2: the tile NSMs of the Mmlu21 experiment scoring at most 10 of 21: matrix (`0.attn.q`),
  type, tile row (`NSM loc1`) and column (`NSM loc2`) in the weights' [out, in] layout, the
  Mmlu21 score, a destructive flag (Y) and the Drosophila cosine (or "standard": silent there).
- Table 3: Zephyr's "writer" mutations (Down matrices) and their outputs on four prompts; the
  authors' label of each output is its cell's fill colour: green poem, yellow dialogue, blue
  first-person narrative, white other.
- Document 1: the 151 inputs of the rare-initial-word (RIHF) computation; Documents 2A and 2B:
  Zephyr's outputs on them, standard and with 12 writer mutations (`1.down (0,38) minimum`).
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from mutatui.engine.families import MATRIX_ORDER
from mutatui.errors import MutatuiError
from mutatui.paper.models import PAPER_MODELS, PaperModel, parse_matrix

KINDS = {"max": "max", "min": "min", "zero": "zero", "maximum": "max", "minimum": "min"}
"""The tables' mutation types, as mutatui names them."""

TABLE1 = "Supplementary_Table1.xlsx"
TABLE2 = "Supplementary_Table2.xlsx"
TABLE3 = "Supplementary_Table3.xlsx"
DOCUMENT1 = "Supplementary_Document1.txt"
DOCUMENT2A = "Supplementary_Document2A.docx"
DOCUMENT2B = "Supplementary_Document2B.docx"
FILES = (TABLE1, TABLE2, TABLE3, DOCUMENT1, DOCUMENT2A, DOCUMENT2B)

STYLE_LABELS = ("poem", "dialogue", "narrative", "other")
"""The authors' labels of Table 3's outputs (green, yellow, blue, white fills)."""


@dataclass
class Problems:
    """One line per problem found, each naming the file, the sheet and the cell; and notes:
    defects of the published files themselves that the import keeps as they are (a cell that
    is not a number, stored as not given), said but not refused."""

    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, where: str, what: str) -> None:
        self.lines.append(f"{where}: {what}")

    def note(self, where: str, what: str) -> None:
        self.notes.append(f"{where}: {what}")

    def __bool__(self) -> bool:
        return bool(self.lines)


@dataclass(frozen=True)
class Experiment:
    """One experiment of a model in Table 1: its type (coding, description, multiple choice)
    and its total NSMs by kind."""

    model: str
    name: str
    kind: str
    totals: dict[str, int]


@dataclass(frozen=True)
class MatrixCount:
    """Table 1's NSMs (or distinct phenotypes) of one matrix in one experiment."""

    model: str
    experiment: str
    layer: int
    matrix: str
    nsms: int
    distinct: int | None


@dataclass(frozen=True)
class TileNSM:
    """One row of Table 2: a tile NSM of the Mmlu21 experiment."""

    model: str
    layer: int
    matrix: str
    kind: str
    loc1: int
    loc2: int
    score: int
    destructive: bool
    cosine: float | None
    """The Drosophila cosine; None where the tile was silent there, or none is given."""
    silent: bool = False
    """The table says "standard": the mutation did not change the Drosophila output."""


@dataclass(frozen=True)
class Writer:
    """One mutation of Table 3 or Document 2B (None for Table 3's standard model row)."""

    label: str
    kind: str | None
    layer: int | None
    matrix: str | None
    loc1: int | None
    loc2: int | None
    rihf: str | None
    cosine: float | None
    mmlu_right: int | None
    """Right answers among the 14 questions the standard model answers right (None: the
    standard model's own output, "standard")."""
    mmlu_wrong: int | None
    """Right answers among the 7 it answers wrong."""


@dataclass(frozen=True)
class Output:
    """One output of a writer (or of the standard model) on one input."""

    writer: str
    source: str
    index: int
    prompt: str
    text: str
    style: str | None
    """The authors' label (Table 3 only)."""


def _workbook(folder: Path, name: str, problems: Problems):
    """The workbook, or None with the problem said."""
    import openpyxl

    path = folder / name
    if not path.is_file():
        problems.add(name, "missing (expected in the folder of the supplementary material)")
        return None
    try:
        return openpyxl.load_workbook(path)
    except Exception as error:  # openpyxl raises many types for a damaged file
        problems.add(name, f"not a readable workbook ({type(error).__name__})")
        return None


def _sheet(workbook, file: str, name: str, problems: Problems):
    if name not in workbook.sheetnames:
        problems.add(file, f"no sheet {name!r} (sheets: {', '.join(workbook.sheetnames)})")
        return None
    return workbook[name]


def _rows(sheet) -> Iterator[tuple[int, tuple]]:
    """(row number, values) of every row after the header that has any value."""
    for number, values in enumerate(sheet.iter_rows(min_row=2, values_only=True), start=2):
        if any(value not in (None, "") for value in values):
            yield number, values


def _count(value: object, where: str, problems: Problems) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problems.add(where, f"{value!r} is not a count")
        return None
    if float(value) != int(value):
        problems.add(where, f"{value!r} is not a whole count")
        return None
    return int(value)


def _kind(value: object, where: str, problems: Problems) -> str | None:
    kind = KINDS.get(str(value).strip().lower())
    if kind is None:
        problems.add(where, f"type {value!r} is neither max, min nor zero")
    return kind


def read_table1(folder: Path, problems: Problems) -> tuple[list[Experiment], list[MatrixCount]]:
    """Table 1: the experiments with their totals, and every matrix's NSMs and distinct
    phenotypes; the matrices of each experiment must sum to its total, and each layer's row
    to its matrices."""
    workbook = _workbook(folder, TABLE1, problems)
    if workbook is None:
        return [], []
    experiments = _experiments(workbook, problems)
    counts: list[MatrixCount] = []
    for model in PAPER_MODELS.values():
        names = [e.name for e in experiments if e.model == model.name]
        nsms = _per_matrix(
            workbook, f"{model.name}_total_NSMs", model, names, problems, additive=True
        )
        distinct = _per_matrix(
            workbook, f"{model.name}_distinct_phenotpye", model, names, problems, additive=False
        )
        for (experiment, layer, matrix), count in nsms.items():
            counts.append(
                MatrixCount(
                    model.name,
                    experiment,
                    layer,
                    matrix,
                    count,
                    distinct.get((experiment, layer, matrix)),
                )
            )
        for experiment in experiments:
            if experiment.model != model.name:
                continue
            total = sum(experiment.totals.values())
            found = sum(c for (e, _, _), c in nsms.items() if e == experiment.name)
            if nsms and found != total:
                problems.add(
                    f"{TABLE1} {model.name}_total_NSMs",
                    f"{experiment.name}: the matrices sum to {found} NSMs, the total is {total}",
                )
    return experiments, counts


def _experiments(workbook, problems: Problems) -> list[Experiment]:
    sheet = _sheet(workbook, TABLE1, "Total_NSM", problems)
    if sheet is None:
        return []
    experiments = []
    model = None
    for number, values in _rows(sheet):
        where = f"{TABLE1} Total_NSM row {number}"
        model = str(values[0]).strip() if values[0] else model
        if model not in PAPER_MODELS:
            problems.add(where, f"model {model!r} is not one of {', '.join(PAPER_MODELS)}")
            continue
        totals = {
            kind: _count(value, f"{where} ({kind})", problems)
            for kind, value in zip(("max", "min", "zero"), values[3:6], strict=False)
        }
        if None in totals.values() or len(totals) < 3:
            continue
        experiments.append(Experiment(model, str(values[2]).strip(), str(values[1]), totals))
    return experiments


def _per_matrix(
    workbook,
    name: str,
    model: PaperModel,
    experiments: list[str],
    problems: Problems,
    *,
    additive: bool,
) -> dict[tuple[str, int, str], int]:
    """(experiment, layer, matrix) -> count of a per-matrix sheet; its per-layer rows checked
    against its matrices (their sum for NSMs, at most it for distinct phenotypes)."""
    sheet = _sheet(workbook, TABLE1, name, problems)
    if sheet is None:
        return {}
    header = [str(value).strip() for value in next(sheet.iter_rows(max_row=1, values_only=True))]
    columns = {
        experiment: header.index(experiment) for experiment in experiments if experiment in header
    }
    for experiment in experiments:
        if experiment not in columns:
            problems.add(f"{TABLE1} {name}", f"no column for experiment {experiment!r}")
    counts: dict[tuple[str, int, str], int] = {}
    layers: dict[tuple[str, int], int] = {}
    for number, values in _rows(sheet):
        where = f"{TABLE1} {name} row {number}"
        label = str(values[0]).strip()
        layer_match = re.fullmatch(r"layers_(\d+)", label)
        parsed = parse_matrix(label)
        if layer_match is None and parsed is None:
            problems.add(where, f"{label!r} is neither a matrix (L0_attn.q) nor a layer (layers_0)")
            continue
        if parsed is not None and parsed[0] >= model.layers:
            problems.add(where, f"{label}: layer {parsed[0]} outside 0..{model.layers - 1}")
            continue
        for experiment, column in columns.items():
            count = _count(values[column], f"{where} ({experiment})", problems)
            if count is None:
                continue
            if parsed is not None:
                counts[(experiment, *parsed)] = count
            else:
                layers[(experiment, int(layer_match.group(1)))] = count
    for (experiment, layer), count in layers.items():
        found = sum(counts.get((experiment, layer, matrix), 0) for matrix in MATRIX_ORDER)
        # NSMs add up; distinct phenotypes may repeat between a layer's matrices
        if found != count if additive else count > found:
            relation = "its matrices sum to" if additive else "more than its matrices'"
            problems.add(
                f"{TABLE1} {name}", f"{experiment} layers_{layer}: {count}, {relation} {found}"
            )
    return counts


def read_table2(folder: Path, problems: Problems) -> list[TileNSM]:
    """Table 2: every tile NSM scoring at most 10 in Mmlu21, its tile inside its matrix."""
    workbook = _workbook(folder, TABLE2, problems)
    if workbook is None:
        return []
    tiles: list[TileNSM] = []
    for model in PAPER_MODELS.values():
        sheet = _sheet(workbook, TABLE2, model.name, problems)
        if sheet is None:
            continue
        for number, values in _rows(sheet):
            tile = _tile(model, values, f"{TABLE2} {model.name} row {number}", problems)
            if tile is not None:
                tiles.append(tile)
    return tiles


def _tile(model: PaperModel, values: tuple, where: str, problems: Problems) -> TileNSM | None:
    matrix_text, kind_text, loc1, loc2, score, destructive, cosine = (list(values) + [None] * 7)[:7]
    parsed = parse_matrix(matrix_text)
    kind = _kind(kind_text, where, problems)
    if parsed is None:
        problems.add(where, f"matrix {matrix_text!r} is not a layer and type (0.attn.q)")
        return None
    layer, matrix = parsed
    if layer >= model.layers:
        problems.add(where, f"layer {layer} outside 0..{model.layers - 1}")
        return None
    rows, cols = model.tiles(matrix)
    row, col = _count(loc1, where, problems), _count(loc2, where, problems)
    points = _count(score, where, problems)
    if kind is None or row is None or col is None or points is None:
        return None
    if row >= rows or col >= cols:
        problems.add(
            where,
            f"tile ({row}, {col}) outside {layer}.{matrix}, which is {rows} x {cols} tiles",
        )
        return None
    if points > 21:
        problems.add(where, f"Mmlu21 score {points} above 21")
        return None
    flag = str(destructive or "").strip().upper()
    if flag not in ("", "Y", "N"):
        problems.add(where, f"destructive flag {destructive!r} is neither Y nor empty")
        return None
    similarity = None
    silent = str(cosine).strip().lower() == "standard"
    if not silent and isinstance(cosine, int | float) and not isinstance(cosine, bool):
        if not -1.0 <= cosine <= 1.0:
            problems.add(where, f"Drosophila cosine {cosine} outside -1..1")
            return None
        similarity = float(cosine)
    elif not silent:
        problems.note(
            where,
            f"Drosophila cosine {cosine!r} is neither a number nor 'standard': kept as not given",
        )
    return TileNSM(
        model.name, layer, matrix, kind, row, col, points, flag == "Y", similarity, silent
    )


_WRITER = re.compile(
    r"(?P<kind>maximum|minimum|zero)\s+NSM\s*layer\s+(?P<layer>\d+),\s*(?P<matrix>\w+)\s+matrix"
    r"\s*X=(?P<x>\d+),?\s*Y=(?P<y>\d+)",
    re.IGNORECASE | re.DOTALL,
)


def read_table3(folder: Path, problems: Problems) -> tuple[list[Writer], list[Output]]:
    """Table 3: Zephyr's writers, their four outputs each, and the authors' colour labels.
    A writer's X and Y are its tile row and column, as Document 2B writes them `(0,38)`: the
    row a Down matrix's 64 output channels, the column one of its 224 input tiles."""
    workbook = _workbook(folder, TABLE3, problems)
    if workbook is None:
        return [], []
    sheet = workbook[workbook.sheetnames[0]]
    colours = _theme_colours(workbook)
    header = next(sheet.iter_rows(max_row=1))
    prompts = [(cell.column, str(cell.value).strip()) for cell in header[2:] if cell.value]
    writers: list[Writer] = []
    outputs: list[Output] = []
    for row in sheet.iter_rows(min_row=2):
        label = row[0].value
        if not label:
            continue
        where = f"{TABLE3} row {row[0].row}"
        writer = _writer(str(label).strip(), str(row[1].value or ""), where, problems)
        if writer is None:
            continue
        writers.append(writer)
        for number, (column, prompt) in enumerate(prompts):
            cell = row[column - 1]
            if cell.value is None:
                continue
            style = _style_of(cell, colours, f"{where} {cell.coordinate}", problems)
            text = _after_prompt(str(cell.value), prompt)
            outputs.append(Output(writer.label, "table3", number, prompt, text, style))
    return writers, outputs


def _writer(label: str, text: str, where: str, problems: Problems) -> Writer | None:
    if "standard model" in text.lower():
        return Writer(label, None, None, None, None, None, None, None, None, None)
    match = _WRITER.search(text)
    if match is None:
        problems.add(where, f"{text[:40]!r} does not name a mutation (type, layer, matrix, X, Y)")
        return None
    matrix = match.group("matrix").lower()
    if matrix not in MATRIX_ORDER:
        problems.add(where, f"matrix type {matrix!r} is none of {', '.join(MATRIX_ORDER)}")
        return None
    rihf = re.search(r'RIHF:\s*"([^"]+)"', text)
    cosine = re.search(r"Cosine Similarity:\s*([\d.]+)", text)
    score = re.search(r"Mmlu21 score:\s*(\d+)\|(\d+)", text)
    return Writer(
        label,
        KINDS[match.group("kind").lower()],
        int(match.group("layer")),
        matrix,
        int(match.group("x")),
        int(match.group("y")),
        rihf.group(1) if rihf else None,
        float(cosine.group(1)) if cosine else None,
        int(score.group(1)) if score else None,
        int(score.group(2)) if score else None,
    )


def _theme_colours(workbook) -> list[str]:
    """The workbook theme's colours by index (lt1, dk1, lt2, dk2, accent1..6, ...), as hex."""
    theme = getattr(workbook, "loaded_theme", None)
    if not theme:
        return []
    names = {"a": "http://schemas.openxmlformats.org/drawingml/2006/main"}
    root = ElementTree.fromstring(theme)
    scheme = root.find(".//a:clrScheme", names)
    if scheme is None:
        return []
    found = {}
    for element in scheme:
        tag = element.tag.split("}")[-1]
        colour = element[0]
        found[tag] = colour.get("val") if colour.tag.endswith("srgbClr") else colour.get("lastClr")
    order = ["lt1", "dk1", "lt2", "dk2", *(f"accent{n}" for n in range(1, 7)), "hlink"]
    return [found.get(name) or "FFFFFF" for name in order]


def _style_of(cell, colours: list[str], where: str, problems: Problems) -> str:
    """The authors' label of an output cell from its fill: green poem, yellow dialogue, blue
    first-person narrative, none (white) other."""
    fill = cell.fill
    if fill is None or fill.fill_type is None:
        return "other"
    colour = fill.fgColor
    if colour.type == "theme" and colour.theme is not None and colour.theme < len(colours):
        hex_colour = colours[colour.theme]
    elif colour.type == "rgb" and isinstance(colour.rgb, str):
        hex_colour = colour.rgb[-6:]
    else:
        problems.add(where, "a fill colour that is neither a theme colour nor RGB")
        return "other"
    red, green, blue = (int(hex_colour[n : n + 2], 16) / 255 for n in (0, 2, 4))
    hue, _, saturation = colorsys.rgb_to_hls(red, green, blue)
    if saturation < 0.15:
        return "other"
    degrees = hue * 360
    if 40 <= degrees < 70:
        return "dialogue"  # yellow
    if 70 <= degrees < 170:
        return "poem"  # green
    if 170 <= degrees < 260:
        return "narrative"  # blue
    problems.add(where, f"a fill colour #{hex_colour} that is none of green, yellow, blue")
    return "other"


def _after_prompt(text: str, prompt: str) -> str:
    """An output cell's text after the echoed input (`<s> prompt`, or `N:prompt`)."""
    body = re.sub(r"^\d+:.*?\n", "", text.strip(), count=1) if re.match(r"^\d+:", text) else text
    body = body.removeprefix("<s>").strip()
    return body[len(prompt) :] if body.startswith(prompt) else body


def read_document1(folder: Path, problems: Problems) -> list[str]:
    """Document 1: the 151 inputs of the RIHF computation, a line each."""
    path = folder / DOCUMENT1
    if not path.is_file():
        problems.add(DOCUMENT1, "missing")
        return []
    return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]


def read_document2(
    folder: Path, name: str, inputs: list[str], problems: Problems
) -> tuple[list[Writer], list[Output]]:
    """Document 2A (the standard model, writer 'standard') or 2B (12 writers): the outputs on
    the inputs of Document 1, in blocks separated by `%%%%%%`."""
    import docx

    path = folder / name
    if not path.is_file():
        problems.add(name, "missing")
        return [], []
    try:
        text = "\n".join(paragraph.text for paragraph in docx.Document(str(path)).paragraphs)
    except Exception as error:  # python-docx raises many types for a damaged file
        problems.add(name, f"not a readable document ({type(error).__name__})")
        return [], []
    writers: list[Writer] = []
    outputs: list[Output] = []
    differing: set[int] = set()
    sections = re.split(r"^\*{5}(.+?)\*{5}$", text, flags=re.MULTILINE)
    if len(sections) == 1:
        sections = ["", "standard", text]
    for title, body in zip(sections[1::2], sections[2::2], strict=True):
        writer = _document_writer(title.strip(), name, problems)
        if writer is None:
            continue
        writers.append(writer)
        for block in body.split("%%%%%%"):
            match = re.search(r"^(\d+):(.*?)\n(.*)", block, flags=re.DOTALL | re.MULTILINE)
            if match is None:
                continue
            index, prompt = int(match.group(1)), match.group(2).strip()
            if inputs and (index >= len(inputs) or _unquoted(inputs[index]) != _unquoted(prompt)):
                differing.add(index)
            source = "document2a" if name == DOCUMENT2A else "document2b"
            text = _after_prompt(match.group(3), prompt)
            outputs.append(Output(writer.label, source, index, prompt, text, None))
    if differing:
        blocks = ", ".join(str(index) for index in sorted(differing))
        problems.note(
            name,
            f"the input of block {blocks} differs from that line of {DOCUMENT1}: each block kept "
            "with its own input",
        )
    return writers, outputs


def _unquoted(text: str) -> str:
    """An input without the quotes a CSV export put around it (and doubled inside it)."""
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('""', '"')
    return text


_DOCUMENT_WRITER = re.compile(r"(\d+)\.(\w+) \((\d+),(\d+)\) (maximum|minimum|zero)")


def _document_writer(title: str, name: str, problems: Problems) -> Writer | None:
    if title == "standard":
        return Writer("standard", None, None, None, None, None, None, None, None, None)
    match = _DOCUMENT_WRITER.fullmatch(title)
    if match is None or match.group(2) not in MATRIX_ORDER:
        problems.add(name, f"{title!r} does not name a mutation (1.down (0,38) minimum)")
        return None
    layer, matrix, row, col, kind = match.groups()
    return Writer(
        title, KINDS[kind], int(layer), matrix, int(row), int(col), None, None, None, None
    )


def check_folder(folder: Path) -> None:
    """Refuse, in one line, a path that is not a folder holding any of the files."""
    if not folder.is_dir():
        raise MutatuiError(f"{folder} is not a folder (give the supplementary material's folder)")
    if not any((folder / name).exists() for name in FILES):
        raise MutatuiError(f"{folder} holds none of the supplementary files ({', '.join(FILES)})")
