"""`mutatui export DB --format parquet|csv OUT`: a table of a screen database as a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a screen database's tables to Parquet or CSV",
        description="With --table, OUT is the file; without, OUT is a folder that receives one "
        "file per table (screens, probes, matrices, mutations, results, tags).",
    )
    parser.add_argument("db", help="the database")
    parser.add_argument(
        "--format", choices=("parquet", "csv"), default="parquet", help="default %(default)s"
    )
    parser.add_argument("--table", help="export only this table (e.g. results)")
    parser.add_argument("out", help="the output file (with --table) or folder")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mutatui.errors import MutatuiError
    from mutatui.store.database import cannot_write, check_readable
    from mutatui.store.export import EXPORT_TABLES, export_table

    check_readable(args.db)  # before the output folder is made
    out = Path(args.out)
    check_output(out, folder=args.table is None)
    if args.table is not None:  # an empty --table is refused by name, not read as none
        targets = [(args.table, out)]
    else:
        if out.exists() and not out.is_dir():
            raise MutatuiError(f"{out} is a file; give a folder, or --table for one file")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise cannot_write(out, error) from None
        targets = [(table, out / f"{table}.{args.format}") for table in EXPORT_TABLES]
    for table, path in targets:
        count = export_table(args.db, table, args.format, path)
        if not args.quiet:
            print(f"mutatui: {table}: {count} rows -> {path}", file=sys.stderr)
    return 0


def check_output(out: Path, *, folder: bool) -> None:
    """Refuse, before anything is made, an output in a place that cannot be written: the
    nearest existing folder of an output folder, the folder of an output file."""
    from mutatui.errors import MutatuiError
    from mutatui.store.places import unwritable_folder

    base = next((p for p in (out, *out.parents) if p.exists()), None) if folder else out.parent
    if base is not None and base.is_dir() and (why := unwritable_folder(base)) is not None:
        raise MutatuiError(f"cannot write {out}: {why}; nothing was changed")
