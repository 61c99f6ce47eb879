"""The `mutatui` command: one subcommand per module in `mutatui.commands`.

Each command module has `register(subparsers)`, which adds its parser and sets `run`. Errors a
user can cause arrive as `MutatuiError` and leave as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mutatui import __version__
from mutatui.errors import MutatuiError

COMMANDS = (
    "mutate",
    "matrices",
    "screen",
    "merge",
    "export",
    "info",
    "predict",
    "superweights",
    "browse",
    "live",
    "analyze",
    "plot",
)
"""Subcommand modules in `mutatui.commands`, in the order `--help` lists them."""

DEFAULT_COMMAND = "browse"
"""With no arguments, `mutatui` opens the explorer on ./screens.db."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mutatui",
        description="Mutagenesis screens of language-model weights, and a terminal explorer.",
    )
    parser.add_argument("--version", action="version", version=f"mutatui {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mutatui.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(arguments or [DEFAULT_COMMAND])
    try:
        return int(args.run(args) or 0)
    except MutatuiError as error:
        print(f"mutatui: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mutatui: interrupted", file=sys.stderr)
        return 130
