"""`mutatui analyze`: the paper's quantities for one screen, as tables or JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mutatui.analysis.report import DEFAULT_PERMUTATIONS, ScreenAnalysis, ShapeAnalysis, analyze
from mutatui.analysis.stats import LineEnrichmentResult, NullSummary, RateRow, one_sided
from mutatui.commands.common import (
    add_phenotype_arguments,
    describe_phenotype,
    min_severity_from_args,
)
from mutatui.errors import MutatuiError

REPORT_WIDTH = 120


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze", help="phenotype rates, clustering, complementarity, asymmetry, writers"
    )
    parser.add_argument("db", help="a mutatui database")
    add_phenotype_arguments(parser)
    parser.add_argument(
        "--permutations",
        type=int,
        default=DEFAULT_PERMUTATIONS,
        help=f"permutations per test (default {DEFAULT_PERMUTATIONS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    parser.add_argument("--json", action="store_true", help="print everything as one JSON object")
    parser.add_argument(
        "--against",
        metavar="SCREEN",
        help="also compare every whole row and column of elements the screen tested (dense "
        "lines) with SCREEN's elements of the same matrix (a random sample)",
    )
    lines = parser.add_argument_group("dense lines through the most sensitive tiles")
    lines.add_argument(
        "--emit-lines",
        metavar="OUT.toml",
        help="instead of analysing, write a spec of every element on the row and column "
        "through the centre of the most sensitive tiles",
    )
    lines.add_argument(
        "--lines-template",
        metavar="FILE.toml",
        help="the spec to add the sites to (model, probes, ...; no [sites])",
    )
    lines.add_argument(
        "--tiles", type=int, default=6, help="how many tiles, at most one per matrix (default 6)"
    )
    parser.set_defaults(run=run)


def emit_lines(args: argparse.Namespace) -> int:
    from mutatui.analysis.lines import dense_lines, lines_spec, sensitive_tiles
    from mutatui.store.frames import load_sites, pick_screen

    if not args.lines_template:
        raise MutatuiError("--emit-lines needs --lines-template FILE.toml (model, probes, kinds)")
    if args.tiles < 1:
        raise MutatuiError(f"--tiles must be at least 1, got {args.tiles}")
    screen = pick_screen(args.db, args.screen)
    frame = load_sites(args.db, screen, args.probe, choice_severity=not args.text_severity)
    frame = frame.with_min_severity(min_severity_from_args(args))
    tiles = sensitive_tiles(frame, args.tiles)
    if not tiles:
        raise MutatuiError(f"screen {screen.name!r} has no tile phenotypes yet; no lines to emit")
    extents = frame.extents()
    sites = dense_lines(tiles, extents)
    text = lines_spec(Path(args.lines_template), sites, tiles)
    try:
        Path(args.emit_lines).write_text(text, encoding="utf-8")
    except OSError as error:
        raise MutatuiError(f"cannot write {args.emit_lines}: {error.strerror}") from error
    chosen = ", ".join(str(tile.site) for tile in tiles)
    print(f"wrote {len(sites)} element sites on lines through {chosen} to {args.emit_lines}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.emit_lines:
        return emit_lines(args)
    if args.permutations < 10:
        raise MutatuiError(f"--permutations must be at least 10, got {args.permutations}")
    result = analyze(
        args.db,
        args.screen,
        args.probe,
        min_severity=min_severity_from_args(args),
        permutations=args.permutations,
        seed=args.seed,
        against=args.against,
        text_severity=args.text_severity,
    )
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
        return 0
    print_analysis(report_console(), result)
    return 0


def report_console() -> Console:
    """Standard output, 120 columns wide when it is a file or pipe (rich's default of 80 wraps
    the test names of the tables); a terminal's width, or COLUMNS, wins."""
    redirected = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=REPORT_WIDTH if redirected else None)


TESTS_LEGEND = (
    "clustering: per matrix and kind, the sum of squared phenotype counts per line against "
    "the same number of phenotypes shuffled among the tested sites; screen-wide = summed z. "
    "overlap: Jaccard index of max-sensitive and min-sensitive lines (low = complementary), "
    "mean over matrices. corner: share of phenotypes in the upper-left triangle minus the "
    "lower-right, rows and columns sorted by phenotype count; axis skew: share above minus "
    "below the diagonal (mean over layers); fixed margins: against maps with the same "
    "phenotype count on every row and column. shared: pairs of flagged mutations in different "
    "matrices on the same line."
)


def _null(summary: NullSummary | None, digits: int = 3) -> tuple[str, str, str]:
    if summary is None:
        return "-", "-", "-"
    return (
        f"{summary.observed:.{digits}g}",
        f"{summary.null_mean:.{digits}g}",
        f"z={summary.z:+.1f} p={summary.p:.3g}",
    )


def _rate_table(title: str, rows: list[RateRow], label: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    kinds = sorted({row.kind for row in rows}, key=lambda k: (k not in ("max", "min"), k))
    for kind in kinds:
        table.add_column(f"{kind} tested", justify="right")
        table.add_column(f"{kind} rate", justify="right")
        table.add_column(f"{kind} severe", justify="right")
    keys = list(dict.fromkeys(row.key for row in rows))
    by_key = {(row.key, row.kind): row for row in rows}
    for key in keys:
        cells = [key]
        for kind in kinds:
            row = by_key.get((key, kind))
            if row is None:
                cells += ["-", "-", "-"]
            else:
                cells += [str(row.tested), f"{row.rate:.1%}", f"{row.severe_rate:.1%}"]
        table.add_row(*cells)
    return table


def _print_shape(console: Console, shape: ShapeAnalysis) -> None:
    rows, cols = shape.shape
    console.rule(
        f"sites {rows}x{cols}: {shape.tested} tested, {shape.phenotypes} phenotypes "
        f"({shape.phenotypes / max(shape.tested, 1):.1%}), {shape.severe} severe"
    )
    console.print(_rate_table("phenotype rate per matrix type", shape.by_type, "matrix"))
    console.print(_rate_table("phenotype rate per layer", shape.by_layer, "layer"))
    balance = shape.balance
    console.print(
        f"kind balance (matrices with >= {balance.min_phenotypes} phenotypes; "
        f"one-sided = >= {balance.only:.0%} of the rate from one kind): "
        f"{balance.mixed} mixed, {balance.max_only} max-only, {balance.min_only} min-only, "
        f"{balance.unclassified} too few to say"
    )
    for kind, matrices in one_sided(balance).items():
        if matrices:
            console.print(f"  {kind}-only: {', '.join(matrices)}")
    tests = Table(
        title="permutation tests (screen-wide: summed z over strata)", title_justify="left"
    )
    for column in ("test", "observed", "null mean", "screen-wide", "strata p<0.01"):
        tests.add_column(column, justify="left" if column == "test" else "right")
    for result in shape.clustering:
        level = "severe, " if result.min_severity else ""
        name = f"{level}{'rows' if result.axis == 'row' else 'columns'}: clustering"
        observed, _, combined = _null(result.combined)
        tests.add_row(
            name,
            f"Σz {observed}",
            "Σz 0",
            combined,
            f"{result.significant}/{len(result.strata)}",
        )
    for result in shape.complementarity:
        _, _, combined = _null(result.combined)
        tests.add_row(
            f"{'rows' if result.axis == 'row' else 'columns'}: max/min overlap",
            f"{result.mean_jaccard:.3f}",
            f"{result.mean_null_jaccard:.3f}",
            combined,
            f"{result.significant}/{len(result.matrices)}",
        )
    for result in shape.rearranged:
        for label, summary, per_layer in (
            ("corner", result.corner, [t.corner for t in result.layers]),
            ("axis skew", result.diagonal, [t.diagonal for t in result.layers]),
            (
                "corner, fixed margins",
                result.corner_fixed,
                [t.corner_fixed for t in result.layers if t.corner_fixed],
            ),
            (
                "axis skew, fixed margins",
                result.diagonal_fixed,
                [t.diagonal_fixed for t in result.layers if t.diagonal_fixed],
            ),
        ):
            _, _, combined = _null(summary)
            observed = sum(s.observed for s in per_layer) / max(len(per_layer), 1)
            null_mean = sum(s.null_mean for s in per_layer) / max(len(per_layer), 1)
            tests.add_row(
                f"rearranged {result.matrix}: {label}",
                f"{observed:+.3f}" if per_layer else "-",
                f"{null_mean:+.3f}" if per_layer else "-",
                combined,
                f"{sum(1 for s in per_layer if s.p < 0.01)}/{len(per_layer)}",
            )
    for label, shared in (
        ("v: columns shared across layers", shape.v_columns),
        ("writers: rows shared across matrices", shape.writer_rows),
    ):
        observed, null, combined = _null(shared.pairs)
        tests.add_row(f"{label} ({shared.flagged})", observed, null, combined, "")
    console.print(tests)
    console.print(TESTS_LEGEND, style="dim")
    for label, shared in (("V columns", shape.v_columns), ("writer rows", shape.writer_rows)):
        if shared.top_lines:
            lines = ", ".join(
                f"{shared.axis} {line} of {extent} in {count} matrices"
                for extent, line, count in shared.top_lines
            )
            console.print(f"most shared {label}: {lines}")


def _print_lines(console: Console, result: LineEnrichmentResult) -> None:
    console.rule(f"whole lines against {result.against}'s elements of the same matrix")
    if not result.lines:
        console.print("no whole line of elements tested yet, or none in a matrix both screens hold")
        return
    table = Table(title_justify="left")
    table.add_column("line", no_wrap=True)
    for column in ("kind", "tested", "rate", "other tested", "other rate", "line vs other"):
        table.add_column(column, justify="right")
    for test in result.lines:
        table.add_row(
            f"L{test.layer}.{test.matrix} {test.axis} {test.line}",
            test.kind,
            str(test.tested),
            f"{test.phenotypes / test.tested:.1%}",
            str(test.against_tested),
            f"{test.against_phenotypes / test.against_tested:.1%}",
            f"z={test.test.z:+.1f} p={test.test.p:.3g}",
        )
    console.print(table)
    overall = _null(result.overall)[2] if result.overall else "-"
    console.print(
        f"screen-wide (summed z over {len(result.lines)} line tests): {overall}; null: the "
        "phenotypes shuffled among the line's and the other screen's sites of that matrix and "
        f"kind, {result.permutations} times; upper tail",
        style="dim",
    )


def print_analysis(console: Console, result: ScreenAnalysis) -> None:
    screen = result.screen
    console.print(
        f"[bold]{screen.name}[/bold] ({screen.model}, {screen.decoding}, {screen.status}); "
        f"probes: {', '.join(result.probes) or 'none'}; "
        f"phenotype: {describe_phenotype(result.min_severity, result.text_severity)}; "
        f"{result.permutations} permutations, seed {result.seed}"
    )
    if not result.shapes:
        console.print("no results yet")
    for shape in result.shapes:
        _print_shape(console, shape)
    if result.lines is not None:
        _print_lines(console, result.lines)
    writers = result.writers
    console.rule(
        f"writers: {writers.writer_mutations} mutations, {writers.writer_outcomes} of "
        f"{writers.changed_outcomes} changed outcomes conversational or poetic"
    )
    baselines = ", ".join(
        f"{probe}: {word!r}" for probe, word in writers.baseline_first_words.items()
    )
    console.print(f"baseline first words: {baselines}")
    table = Table(title="writer groups by first word", title_justify="left")
    for column in (
        "first word",
        "outcomes",
        "mutations",
        "matrices",
        "layers",
        "conv.",
        "poetic",
        "share of changed",
    ):
        table.add_column(column, justify="left" if column == "first word" else "right")
    for group in writers.groups:
        table.add_row(
            group.word,
            str(group.outcomes),
            str(group.mutations),
            str(group.matrices),
            str(group.layers),
            str(group.conversational),
            str(group.poetic),
            f"{group.changed_share:.1%}",
        )
    console.print(table)
