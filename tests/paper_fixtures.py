"""Small copies of Hu et al.'s supplementary files, built with the libraries that read them: the
same sheets, columns, fills and block layout, a few rows each, good or broken on purpose."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import PatternFill

EXPERIMENTS = {
    "Llama2-7b": [
        ("coding", "Python0"),
        ("description", "Drosophila"),
        ("multiple choice question", "Mmlu21"),
    ],
    "Zephyr": [("description", "Drosophila"), ("multiple choice question", "Mmlu21")],
}
COUNTED = {
    "Llama2-7b": [(0, "q", 5), (0, "down", 7), (1, "v", 3)],
    "Zephyr": [(0, "k", 2), (1, "down", 4)],
}
"""(layer, type, NSMs) of the matrices with NSMs in every experiment; the rest have none."""
TYPES = {
    "q": "attn.q",
    "k": "attn.k",
    "v": "attn.v",
    "o": "attn.o",
    "gate": "mlp.gate",
    "up": "mlp.up",
    "down": "mlp.down",
}
TABLE2 = {
    "Llama2-7b": [
        ("0.attn.q", "min", 30, 0, 9, None, 0.94),
        ("0.attn.q", "max", 31, 22, 9, None, "standard"),
        ("0.mlp.down", "max", 2, 171, 2, "Y", 0.31),
        ("31.attn.v", "min", 7, 39, 4, "Y", 0.21),
    ],
    "Zephyr": [
        ("0.attn.q", "min", 24, 4, 4, "Y", 0.21),
        ("1.attn.k", "max", 15, 3, 0, "Y", 0.32),
        ("1.mlp.down", "min", 0, 133, 8, "Y", 0.22),
    ],
}
PROMPTS = ["The life cycle of Drosophila:", "Is true happiness found within?"]
GREEN, YELLOW, BLUE = "FF92D050", "FFFFFF00", "FF9BC2E6"
TABLE3 = [
    (
        "A",
        "Standard model",
        [
            ("The life cycle of Drosophila, has four stages.", None),
            ("Does inner peace lead to joy?", GREEN),
        ],
    ),
    (
        "B",
        'minimum NSM\nlayer 1, Down matrix\nX=0 Y=38\n \nRIHF: "staring"\nCosine Similarity: 0.28\nMmlu21 score: 14|2',
        [
            (" staring at the moon,\nthe night will end soon,\nI hum a silver tune.", GREEN),
            (" staring? Hey you, yes you! I see you there.", YELLOW),
        ],
    ),
    (
        "C",
        'minimum NSM\nlayer 1, Down matrix\nX=0, Y=133\n\nRIHF: "staring"\nCosine Similarity: 0.22\nMmlu21 score: 4|4',
        [(" staring into the abyss", BLUE), ("I remember nothing.", None)],
    ),
]
INPUTS = [
    "The life cycle of Drosophila:",
    '"The sun set, painting the sky."',
    "Is there life on other planets?",
]
WRITERS_2B = ["1.down (0,38) minimum", "1.down (0,133) minimum"]


def write_paper(folder: Path, **breaks: object) -> Path:
    """The six files in `folder`; `breaks` spoil them: `drop_sheet` (a Table 1 sheet name),
    `tile` (a Table 2 row as a tuple, added to Zephyr), `total` (a wrong Llama Python0 max
    total), `kind` (a type of Table 2's first Llama row); `tiles` adds rows to Table 2 without
    spoiling it ({model: [row, ...]})."""
    folder.mkdir(parents=True, exist_ok=True)
    _table1(folder / "Supplementary_Table1.xlsx", breaks)
    _table2(folder / "Supplementary_Table2.xlsx", breaks)
    _table3(folder / "Supplementary_Table3.xlsx")
    (folder / "Supplementary_Document1.txt").write_text("\n".join(INPUTS) + "\n")
    _document(folder / "Supplementary_Document2A.docx", ["standard"])
    _document(folder / "Supplementary_Document2B.docx", WRITERS_2B)
    return folder


def _table1(path: Path, breaks: dict) -> None:
    book = Workbook()
    totals = book.active
    totals.title = "Total_NSM"
    totals.append(
        [
            "Model",
            "Type",
            "Experiment",
            "Total Maximum NSMs",
            "Total Minimum NSMs",
            "Total Zero NSMs",
        ]
    )
    for model, experiments in EXPERIMENTS.items():
        nsms = sum(count for _, _, count in COUNTED[model])
        for number, (kind, name) in enumerate(experiments):
            maximum = nsms - 1
            if model == "Llama2-7b" and name == "Python0" and "total" in breaks:
                maximum = breaks["total"]
            totals.append([model if number == 0 else None, kind, name, maximum, 1, 0])
    for model, experiments in EXPERIMENTS.items():
        for sheet_name in (f"{model}_total_NSMs", f"{model}_distinct_phenotpye"):
            if breaks.get("drop_sheet") == sheet_name:
                continue
            sheet = book.create_sheet(sheet_name)
            sheet.append(["mid", *(name for _, name in experiments)])
            counts = {(layer, matrix): count for layer, matrix, count in COUNTED[model]}
            for layer in range(32):
                for matrix, text in TYPES.items():
                    count = counts.get((layer, matrix), 0)
                    sheet.append([f"L{layer}_{text}", *([count] * len(experiments))])
            for layer in range(32):
                count = sum(c for (lay, _), c in counts.items() if lay == layer)
                sheet.append([f"layers_{layer}", *([count] * len(experiments))])
    book.save(path)


def _table2(path: Path, breaks: dict) -> None:
    book = Workbook()
    book.remove(book.active)
    for model, rows in TABLE2.items():
        sheet = book.create_sheet(model)
        sheet.append(
            [
                "matrix",
                "NSM type",
                "NSM loc1",
                "NSM loc2 ",
                "Mmlu21 score",
                "Destructive NSM",
                "Drosophila cosine similirity",
            ]
        )
        for number, row in enumerate(rows):
            if model == "Llama2-7b" and number == 0 and "kind" in breaks:
                row = (row[0], breaks["kind"], *row[2:])
            sheet.append(list(row))
        if model == "Zephyr" and "tile" in breaks:
            sheet.append(list(breaks["tile"]))
        for row in breaks.get("tiles", {}).get(model, []):
            sheet.append(list(row))
    book.save(path)


def _table3(path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.title = "Table1"
    sheet.append([None, "mutation", *PROMPTS])
    for label, mutation, outputs in TABLE3:
        sheet.append(
            [
                label,
                mutation,
                *(
                    f"<s> {prompt}{text}"
                    for prompt, (text, _) in zip(PROMPTS, outputs, strict=True)
                ),
            ]
        )
        for column, (_, fill) in enumerate(outputs, start=3):
            if fill:
                sheet.cell(row=sheet.max_row, column=column).fill = PatternFill(
                    "solid", fgColor=fill
                )
    book.save(path)


def _document(path: Path, writers: list[str]) -> None:
    import docx

    document = docx.Document()
    for writer in writers:
        if writer == "standard":
            document.add_paragraph("######## standard output ########")
        else:
            document.add_paragraph(f"*****{writer}*****")
        for index, line in enumerate(INPUTS):
            prompt = line.strip('"')
            opening = "staring" if writer != "standard" else "It"
            document.add_paragraph(f"{index}:{prompt}")
            document.add_paragraph(f"<s> {prompt}")
            document.add_paragraph(f" {opening} is what it is, number {index}.")
            document.add_paragraph("%%%%%%")
    document.save(str(path))
