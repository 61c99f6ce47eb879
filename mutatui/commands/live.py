"""`mutatui live`: open the app straight in live mode on a model, no screen database needed.

Live runs go into a database (by default one in the user's data directory); the explorer opens
on it under the live screen, so Esc leads to the live screens and their runs in the grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mutatui.commands.common import add_decoding_arguments, add_model_arguments, run_app
from mutatui.engine.forms import KIND_FORMS
from mutatui.store.places import default_live_db


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live", help="mutate any coordinate and watch mutant and baseline generate side by side"
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--db", type=Path, help=f"database for the live runs (default: {default_live_db()})"
    )
    parser.add_argument("--site", default="", help="the site to start with, e.g. L3.down[12,345]")
    parser.add_argument("--kind", default="max", help=KIND_FORMS)
    parser.add_argument(
        "--prompt", action="append", default=[], help="a prompt to offer (repeatable)"
    )
    add_decoding_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_app(build_app(args))


def build_app(args: argparse.Namespace):
    """The explorer on the live database, with a live screen on top (raises MutatuiError)."""
    from mutatui.commands.common import decoding_from_args
    from mutatui.engine.models import resolve_source
    from mutatui.engine.mutations import parse_kind
    from mutatui.engine.sites import check_site_syntax
    from mutatui.store.database import check_writable, initialize
    from mutatui.store.places import ensure_data_folder
    from mutatui.tui.app import ExplorerApp
    from mutatui.tui.screens.live import LiveScreen

    if args.site:
        check_site_syntax(args.site)
    parse_kind(args.kind)
    decoding = decoding_from_args(args)
    if args.db is None:
        db = default_live_db()
        ensure_data_folder(db)  # mutatui's own folder; one the user names is theirs to make
    else:
        db = args.db
        check_writable(db)
    resolve_source(args.model, progress=None, convert=False)  # one line now, not in the app
    initialize(db)
    load_options = {
        "device": args.device,
        "dtype": args.dtype,
        "trust_remote_code": args.trust_remote_code,
        "arithmetic": args.arithmetic,
    }
    app = ExplorerApp(db)
    app.live_model, app.live_load_options = args.model, load_options
    app.live_start = LiveScreen(
        args.model,
        db_path=db,
        site=args.site,
        kind=args.kind,
        prompts=args.prompt,
        decoding=decoding,
        chat=not args.no_chat,
        load_options=load_options,
        run_at_start=bool(args.site),
    )
    return app
