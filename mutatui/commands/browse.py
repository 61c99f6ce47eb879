"""`mutatui browse [DB]`: open the explorer on a screen database (the default command)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mutatui.commands.common import add_model_arguments, run_app
from mutatui.errors import MutatuiError
from mutatui.store.database import check_readable

DEFAULT_DATABASE = Path("screens.db")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "browse", help="explore screens in a terminal app (the default command)"
    )
    parser.add_argument(
        "path",
        nargs="?",
        default=str(DEFAULT_DATABASE),
        help=f"a mutatui database (default: ./{DEFAULT_DATABASE})",
    )
    add_model_arguments(parser, required=False)  # for live mode (x); default: the screen's model
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        hint = (
            " (run a screen first, or give a database: mutatui browse PATH)"
            if path == DEFAULT_DATABASE
            else ""
        )
        raise MutatuiError(f"no such database: {path}{hint}")
    if path.is_dir():
        raise MutatuiError(f"{path} is a directory; give a mutatui database file")
    check_readable(path)
    from mutatui.tui.app import ExplorerApp

    app = ExplorerApp(path)
    app.live_model = args.model
    app.live_load_options = {
        "device": args.device,
        "dtype": args.dtype,
        "trust_remote_code": args.trust_remote_code,
        "arithmetic": args.arithmetic,
    }
    return run_app(app)
