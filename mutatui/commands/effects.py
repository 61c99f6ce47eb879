"""`mutatui effects DB`: add effect sizes to a screen recorded without them (teacher forcing
over each probe's baseline; nothing is decoded again)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mutatui.commands.common import add_model_arguments, load_from_args, whole
from mutatui.errors import MutatuiError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "effects",
        help="add effect sizes (NLL change, KL) to a screen's stored results, without decoding",
    )
    parser.add_argument("db", help="a mutatui database (written: the effects are added to it)")
    parser.add_argument("--screen", help="the screen's name (default: the largest screen)")
    parser.add_argument(
        "--batch-size",
        type=whole("--batch-size"),
        help="mutations per engine batch (default: the engine's)",
    )
    parser.add_argument(
        "--add-rows",
        type=Path,
        metavar="FILE",
        help="first add the rows of a --save-rows file of the same screen (another copy of it, "
        "or an earlier session), then compute the rest",
    )
    parser.add_argument(
        "--save-rows",
        type=Path,
        metavar="FILE",
        help="write the screen's effect-size rows to a Parquet file and stop (no model loaded)",
    )
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="compute every effect size of the screen again (those made before controls, "
        "which `mutatui info` names, are refused otherwise)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_model_arguments(parser, required=False)
    # unset: the dtype and arithmetic the screen was computed in (its engine record)
    parser.set_defaults(run=run, dtype=None)


def run(args: argparse.Namespace) -> int:
    from mutatui.screening.effects import add_effects
    from mutatui.screening.spec import spec_from_json
    from mutatui.store.database import check_writable
    from mutatui.store.engines import engine_of
    from mutatui.store.frames import pick_screen
    from mutatui.store.screens import find_screen

    if args.batch_size is not None and args.batch_size < 1:
        raise MutatuiError(f"--batch-size must be at least 1, got {args.batch_size}")
    db = Path(args.db)
    record = find_screen(db, pick_screen(db, args.screen).name)
    if record is None or record.kind != "screen":
        raise MutatuiError("effect sizes are added to screens made by `mutatui screen` only")
    if args.save_rows is not None:
        from mutatui.store.effects import save_rows

        if args.add_rows is not None:
            raise MutatuiError("give one of --add-rows and --save-rows")
        count = save_rows(db, record.screen_id, args.save_rows)
        print(f"{record.name}: {count} effect-size rows saved to {args.save_rows}")
        return 0
    check_writable(db)
    if args.add_rows is not None and not args.add_rows.is_file():
        raise MutatuiError(f"--add-rows {args.add_rows}: no such file")
    args.model = args.model or spec_from_json(record.spec).model
    engine = engine_of(db, record.screen_id)
    args.dtype = args.dtype or (engine.dtype if engine else "auto")
    args.arithmetic = args.arithmetic or (engine.arithmetic if engine else None)
    lm = load_from_args(args, quiet=args.quiet)

    def say(line: str) -> None:
        if not args.quiet:
            print(f"mutatui effects: {line}", file=sys.stderr)

    try:
        report = add_effects(
            db,
            record,
            lm,
            batch_size=args.batch_size,
            rows=args.add_rows,
            recompute=args.recompute,
            progress=say,
        )
    except KeyboardInterrupt as stop:
        from mutatui import process

        print(
            f"mutatui: effects stopped ({process.signal_name(stop)}); the effect sizes "
            f"computed so far are kept in {db}: the same command without --recompute goes on",
            file=sys.stderr,
        )
        return 128 + process.signal_number(stop)
    imported = f" ({report.imported} from {args.add_rows})" if args.add_rows else ""
    print(f"{report.screen}: effect sizes added to {report.added} results{imported}")
    return 0
