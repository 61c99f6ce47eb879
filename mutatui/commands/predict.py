"""`mutatui predict`: first-order sensitivity of every element, stored as maps and top sites."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mutatui.commands.common import (
    add_decoding_arguments,
    add_model_arguments,
    check_at_least,
    check_output_file,
    decoding_from_args,
    load_from_args,
    whole,
)
from mutatui.engine.matrices import MatrixCatalog
from mutatui.errors import MutatuiError
from mutatui.guided.predict import (
    DEFAULT_TILE_SIZE,
    DEFAULT_TOP_K,
    PREDICTED_KINDS,
    baseline_probe,
    check_kinds,
    predict,
)
from mutatui.guided.sampler import guided_sites, write_site_list
from mutatui.store.database import check_writable
from mutatui.store.guided import (
    prediction_shapes,
    predictions,
    save_prediction,
    top_predicted_sites,
)

SHOWN_SITES = 15


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict every element's sensitivity from gradients (one backward pass per prompt)",
    )
    add_model_arguments(parser)
    parser.add_argument("--prompt", action="append", required=True, help="a probe (repeatable)")
    parser.add_argument("--db", required=True, help="database to store the prediction in")
    parser.add_argument("--name", help="name of the prediction (default prediction-N)")
    parser.add_argument(
        "--kinds",
        default=",".join(PREDICTED_KINDS),
        help=f"comma-separated kinds to predict; valid: {', '.join(PREDICTED_KINDS)}",
    )
    parser.add_argument(
        "--tile-size",
        type=whole("--tile-size"),
        default=DEFAULT_TILE_SIZE,
        help="edge of the square tiles of the stored maps (default %(default)s)",
    )
    parser.add_argument(
        "--top-k",
        type=whole("--top-k"),
        default=DEFAULT_TOP_K,
        help="sites stored per matrix and kind",
    )
    parser.add_argument(
        "--emit-sites",
        metavar="FILE",
        help="also write the best sites to FILE: a screen spec if it ends in .toml, else one per line",
    )
    parser.add_argument(
        "--emit-count",
        type=whole("--emit-count"),
        default=1000,
        help="how many element sites --emit-sites writes",
    )
    parser.add_argument(
        "--emit-lines",
        action="store_true",
        help="with --emit-sites, also write the whole row and column through each site",
    )
    add_decoding_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="print only the prediction's name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    kinds = check_kinds([kind.strip() for kind in args.kinds.split(",") if kind.strip()])
    check_outputs(args)
    lm = load_from_args(args, quiet=args.quiet)
    catalog = MatrixCatalog(lm.model)
    decoding = decoding_from_args(args)
    console = Console(stderr=True, quiet=args.quiet)
    started = time.perf_counter()
    probes = []
    for prompt in args.prompt:
        console.print(f"baseline: {prompt[:60]!r}")
        probes.append(baseline_probe(lm, catalog, prompt, decoding, chat=not args.no_chat))
    maps = predict(
        lm,
        catalog,
        probes,
        kinds=kinds,
        tile_size=args.tile_size,
        top_k=args.top_k,
        progress=console.print,
    )
    info = save_prediction(
        args.db,
        name=args.name,
        model=args.model,
        probes=probes,
        decoding=decoding.describe(),
        max_new_tokens=decoding.max_new_tokens,
        tile_size=args.tile_size,
        top_k=args.top_k,
        elapsed_seconds=time.perf_counter() - started,
        maps=maps,
    )
    if args.emit_sites:
        ranked = top_predicted_sites(args.db, prediction=info.name)
        sites = guided_sites(
            ranked,
            args.emit_count,
            lines=args.emit_lines,
            shapes=prediction_shapes(args.db, info.name),
        )
        written = write_site_list(sites, args.emit_sites, model=args.model, kinds=kinds)
        console.print(f"wrote {written} sites to {args.emit_sites}")
    if args.quiet:
        print(info.name)
        return 0
    print_top_sites(
        args.db,
        info.name,
        f"{info.name} in {args.db}: {len(maps)} maps, "
        f"{len(probes)} probes, {time.perf_counter() - started:.1f} s",
    )
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Everything the run will write, checked before the model loads and the passes run."""
    check_at_least(args.tile_size, "--tile-size")
    check_at_least(args.top_k, "--top-k")
    check_at_least(args.emit_count, "--emit-count")
    if args.name is not None and not args.name.strip():
        raise MutatuiError("--name is empty; give a name, or leave it out for prediction-N")
    check_writable(args.db)
    if (
        args.name
        and Path(args.db).exists()
        and any(info.name == args.name for info in predictions(args.db))
    ):
        raise MutatuiError(
            f"a prediction named {args.name!r} already exists in {args.db}; pick another --name"
        )
    if args.emit_sites:
        check_output_file(args.emit_sites, "--emit-sites")


def print_top_sites(db: str, name: str, title: str) -> None:
    table = Table(
        title=title,
        caption="score: |first-order change of the baseline's log-likelihood| (mean over probes)",
    )
    for column in ("site", "kind", "score"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for site in top_predicted_sites(db, prediction=name, limit=SHOWN_SITES):
        table.add_row(site.site, site.kind, f"{site.score:.4g}")
    Console().print(table)
