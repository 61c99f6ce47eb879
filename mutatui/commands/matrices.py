"""`mutatui matrices`: list a model's layers and matrices with shapes and extremes."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from mutatui.commands.common import add_model_arguments, load_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("matrices", help="list the mutable matrices of a model")
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per matrix")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mutatui.engine.matrices import MatrixCatalog

    lm = load_from_args(args, quiet=args.json)
    catalog = MatrixCatalog(lm.model)
    if args.json:
        for info in catalog:
            print(
                json.dumps(
                    {
                        "layer": info.layer,
                        "matrix": info.name,
                        "path": info.path,
                        "rows": info.rows,
                        "cols": info.cols,
                        "min": info.min,
                        "max": info.max,
                    }
                )
            )
        return 0
    table = Table(title=f"{lm.name}: {catalog.num_layers} layers, {len(catalog)} matrices")
    for column in ("layer", "matrix", "shape", "min", "max", "module"):
        table.add_column(column, justify="right" if column in ("layer", "min", "max") else "left")
    for info in catalog:
        table.add_row(
            str(info.layer),
            info.name,
            f"{info.rows}x{info.cols}",
            f"{info.min:.5g}",
            f"{info.max:.5g}",
            info.path,
        )
    Console().print(table)
    return 0
