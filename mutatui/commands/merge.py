"""`mutatui merge OUT IN...`: combine screen databases (shards of one spec) without duplicates."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="combine screen databases (e.g. the shards of one spec) into one",
        description="Screens match by name and spec; mutations already in OUT are kept once.",
    )
    parser.add_argument("out", help="the database to merge into (created if missing)")
    parser.add_argument("inputs", nargs="+", help="databases to merge from")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    parser.set_defaults(run=run)


def check_sources(inputs: list[str]) -> None:
    """Every input readable, and every screen in it stored with a spec table: a screen merged
    without one could never be resumed or verified."""
    from mutatui.errors import MutatuiError
    from mutatui.screening.spec import stored_table
    from mutatui.store.database import check_readable
    from mutatui.store.screens import screen_records

    for source in inputs:
        check_readable(source)
        for record in screen_records(source):
            if record.kind != "screen":
                continue
            try:
                stored_table(record.spec)
            except MutatuiError as error:
                raise MutatuiError(f"{source}: screen {record.name!r}: {error}") from None


def run(args: argparse.Namespace) -> int:
    from mutatui.store.database import writer_lock
    from mutatui.store.merge import merge

    check_sources(args.inputs)
    with writer_lock(args.out):
        added = merge(args.out, args.inputs)
    if not args.quiet:
        for name, count in added:
            print(f"mutatui: merged {count} new mutations into screen {name!r}", file=sys.stderr)
    return 0
