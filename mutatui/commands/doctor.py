"""`mutatui doctor`: is the engine exact and fast here? A sample of mutations through the engine
and through the naive path, on this machine, model, dtype and device, in one table."""

from __future__ import annotations

import argparse
import sys

from mutatui.commands.common import add_model_arguments, load_from_args, whole
from mutatui.engine.forms import DROSOPHILA_PROMPT

DEFAULT_PROMPT = DROSOPHILA_PROMPT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the engine against the naive path on this machine (exit 1 on a mismatch)",
        description="Loads the model, screens a sample of mutations (an element and a tile of "
        "every matrix type, then random elements and tiles) through the engine and the naive "
        "path (edit the weight, generate alone, restore), and prints one table. A mismatch is "
        "a failure (exit status 1). With --spec, adds that screen's estimated time and memory.",
    )
    add_model_arguments(parser)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="the probe prompt")
    parser.add_argument(
        "--elements", type=whole("--elements"), default=12, help="random elements (default 12)"
    )
    parser.add_argument(
        "--tiles", type=whole("--tiles"), default=4, help="random 64x64 tiles (default 4)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=whole("--max-new-tokens"),
        default=32,
        help="tokens per sample (default %(default)s)",
    )
    parser.add_argument("--seed", type=whole("--seed"), default=0, help="seed of the sample")
    parser.add_argument("--spec", help="also estimate this screen spec's time and memory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mutatui.engine.decoding import Decoding, encode_prompt
    from mutatui.engine.machine import this_machine
    from mutatui.engine.matrices import MatrixCatalog
    from mutatui.errors import MutatuiError
    from mutatui.exact.selfcheck import (
        element_mutations,
        every_type,
        self_check,
        tile_mutations,
    )

    if args.elements < 0 or args.tiles < 0 or args.max_new_tokens < 1:
        raise MutatuiError("--elements and --tiles must be >= 0, --max-new-tokens >= 1")
    spec = _spec(args.spec) if args.spec else None
    lm = load_from_args(args)
    catalog = MatrixCatalog(lm.model)
    mutations = every_type(catalog, args.seed)
    mutations += element_mutations(catalog, args.elements, args.seed)
    mutations += tile_mutations(catalog, args.tiles, args.seed)
    from mutatui.screening.progress import Steps

    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    with Steps() as steps:
        check = self_check(
            lm, catalog, decoding, encode_prompt(lm, args.prompt), mutations, steps=steps
        )
    table = Table(title=f"mutatui doctor: {lm.name}", show_header=False, title_justify="left")
    table.add_column("check", style="bold")
    table.add_column("result")
    verdict = "[green]" if not check.mismatches else "[bold red]"
    table.add_row("setup", f"{check.setup}; {check.path}")
    table.add_row("machine", escape(this_machine(lm.device).describe()))
    table.add_row(
        "equal",
        f"{verdict}{check.equal} of {check.mutations}[/] outputs equal to the naive path "
        f"({check.changed} changed the output)",
    )
    table.add_row(
        "speed",
        f"{check.ratio:.1f}x the naive loop on this sample ({check.mutations / check.engine_seconds:.3g} "
        f"against {check.mutations / check.naive_seconds:.3g} mutations/s; a screen's full "
        "batches go faster)",
    )
    share = check.settled / max(check.mutations, 1)
    table.add_row("settled naively", f"{check.settled} of {check.mutations} ({share:.0%})")
    table.add_row("tolerance", check.tolerance.describe(lm.compute_dtype))
    table.add_row("noise floor", f"effect sizes: {check.noise.describe()}")
    if check.lockstep is not None:
        state = (
            "ran: the naive path batched, held against it logit for logit"
            if check.lockstep == "exact"
            else f"not used: {check.lockstep}"
            + (
                "; a screen computes these weights in float32 arithmetic here (exact against "
                "generate in float32 arithmetic) unless --arithmetic native"
                if args.arithmetic is None
                else ""
            )
        )
        table.add_row("lockstep decoder", state)
    table.add_row("peak memory", f"{check.peak_memory / 1024**3:.2f} GiB")
    Console().print(table)
    if spec is not None:
        from mutatui.commands.screen import print_estimate
        from mutatui.screening.estimate import estimate_screen

        with Steps() as steps:
            estimate = estimate_screen(lm, spec, arithmetic=args.arithmetic, steps=steps)
        print_estimate(spec.display_name, estimate)
    for mutation in check.mismatches:
        print(
            f"mutatui: MISMATCH {mutation}: the engine and the naive path differ", file=sys.stderr
        )
    return 1 if check.mismatches else 0


def _spec(path: str):
    from mutatui.screening.spec import load_spec_file, spec_from_table

    return spec_from_table(load_spec_file(path), where=path)
