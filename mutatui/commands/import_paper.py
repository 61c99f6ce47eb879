"""`mutatui import-paper DIR`: Hu et al.'s published screens (their supplementary tables and
documents) into a database, as screens of the kind `published`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-paper",
        help="import Hu et al.'s published Llama-2-7B and Zephyr screens from their tables",
        description="Reads the supplementary material of Hu et al. (2024) as published (Tables "
        "1-3, Documents 1, 2A, 2B) from DIR, checks it, and writes one screen of the kind "
        "`published` per model: nothing is written while any problem stands.",
    )
    parser.add_argument("dir", type=Path, help="the folder of the supplementary material")
    parser.add_argument("--db", type=Path, default=Path("screens.db"), help="default screens.db")
    parser.add_argument(
        "--no-texts",
        action="store_true",
        help="keep numbers, labels and first words only, not the generated texts",
    )
    parser.add_argument(
        "--replace", action="store_true", help="import again over published screens of the name"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mutatui.paper.importer import PaperFilesError, import_paper
    from mutatui.store.database import check_writable

    check_writable(args.db)
    try:
        report = import_paper(args.dir, args.db, texts=not args.no_texts, replace=args.replace)
    except PaperFilesError as problems:
        for line in problems.lines:  # one line per problem, then the error's own
            print(f"mutatui: {line}", file=sys.stderr)
        raise
    for note in report.notes:
        print(f"mutatui: note: {note}", file=sys.stderr)
    for name in report.screens:
        print(f"{name}: {report.mutations[name]} published mutations imported into {args.db}")
    return 0
