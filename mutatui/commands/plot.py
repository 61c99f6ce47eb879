"""`mutatui plot`: PNG figures of a screen (maps, rearranged maps, marginals, rates)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mutatui.commands.common import (
    add_phenotype_arguments,
    describe_phenotype,
    effect_grade_from_args,
    min_severity_from_args,
)
from mutatui.errors import MutatuiError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot", help="write PNG figures of a screen into a folder")
    parser.add_argument("db", help="a mutatui database")
    parser.add_argument("outdir", help="the folder for the figures (created if missing)")
    add_phenotype_arguments(parser)
    parser.add_argument(
        "--each-matrix", action="store_true", help="also one map per matrix of every layer"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    min_severity = min_severity_from_args(args)
    grade = effect_grade_from_args(args)
    try:
        from mutatui.analysis.plots import write_figures
    except ImportError as error:
        raise MutatuiError(
            f"plotting needs matplotlib ({error}); install it with: pip install 'mutatui[plots]'"
        ) from error
    from mutatui.analysis.stats import shape_groups
    from mutatui.store.frames import load_sites, pick_screen

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise MutatuiError(f"{outdir} exists and is not a folder; give a folder for the figures")
    screen = pick_screen(args.db, args.screen)
    frame = load_sites(args.db, screen, args.probe, choice_severity=not args.text_severity)
    frame = frame.with_min_severity(min_severity)
    frame = grade.apply(frame) if grade else frame
    groups = shape_groups(frame)
    if not groups:
        raise MutatuiError(f"screen {screen.name!r} has no results yet; nothing to plot")
    probes = ", ".join(frame.text_probes(args.probe))
    text_only = args.text_severity or not frame.has_choice_probe()
    phenotype = describe_phenotype(min_severity, text_only, grade.describe() if grade else None)
    caption = f"{screen.name}, probes {probes}: a phenotype is {phenotype}"
    written = []
    for (rows, cols), group in groups.items():
        target = outdir if len(groups) == 1 else outdir / f"sites_{rows}x{cols}"
        written += write_figures(group, target, each_matrix=args.each_matrix, caption=caption)
    print(f"wrote {len(written)} figures to {outdir}")
    return 0
