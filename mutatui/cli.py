"""The `mutatui` command: one subcommand per module in `mutatui.commands`.

Each command module has `register(subparsers)`, which adds its parser and sets `run`. Errors a
user can cause arrive as `MutatuiError` and leave as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from contextlib import suppress

from mutatui import __version__, process
from mutatui.engine.forms import brief, shown
from mutatui.errors import MutatuiError

COMMANDS = (
    "mutate",
    "matrices",
    "screen",
    "merge",
    "export",
    "info",
    "browse",
    "live",
    "analyze",
    "plot",
    "predict",
    "superweights",
    "verify",
    "effects",
    "doctor",
    "restyle",
    "import-paper",
    "cache",
)
"""Subcommands, in the order `--help` lists them: the modules of `mutatui.commands` (a hyphen
in a command's name is an underscore in its module's)."""

DEFAULT_COMMAND = "browse"
"""With no arguments, `mutatui` opens the explorer on ./screens.db."""


def build_parser(names: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mutatui",
        description="Mutagenesis screens of language-model weights, and a terminal explorer.",
    )
    parser.add_argument("--version", action="version", version=f"mutatui {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in names:
        importlib.import_module(f"mutatui.commands.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv) or [DEFAULT_COMMAND]
    # A named command is parsed alone, so it does not pay for the other commands' imports
    # (torch, transformers: seconds); the explorer's first paint depends on it.
    parser = build_parser([arguments[0]] if arguments[0] in COMMANDS else COMMANDS)
    try:
        args = parser.parse_args(arguments)
    except MutatuiError as error:  # a flag's value refused by its type (commands.common.whole)
        _say(f"mutatui: {brief(str(error))}")
        return 2
    args.command_line = arguments  # as given, for a command that starts itself again
    if argv is None:  # the program itself, not a caller in this process (a test)
        process.install()
    try:
        return int(args.run(args) or 0)
    except MutatuiError as error:
        _say(f"mutatui: {brief(str(error))}")
        return 2
    except OSError as error:  # a path the user gave that the system refused
        where = f": {shown(error.filename)}" if error.filename else ""
        _say(f"mutatui: {error.strerror or error}{where}")
        return 2
    except KeyboardInterrupt as stop:
        _say(f"mutatui: stopped ({process.signal_name(stop)})")
        return 128 + process.signal_number(stop)


def _say(line: str) -> None:
    """One line on stderr, which may be a terminal that is gone."""
    with suppress(OSError):
        print(line, file=sys.stderr)
