"""`mutatui analyze`: the paper's quantities for one screen, as tables or JSON."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mutatui.analysis.published import PublishedAnalysis, analyze_published
from mutatui.analysis.report import DEFAULT_PERMUTATIONS, ScreenAnalysis, ShapeAnalysis, analyze
from mutatui.analysis.stats import LineEnrichmentResult, NullSummary, RateRow, one_sided
from mutatui.analysis.stripes import MIN_LINE_SITES, STRIPE_SHARE, StripeReport
from mutatui.commands.common import (
    PHENOTYPES,
    add_phenotype_arguments,
    describe_phenotype,
    effect_grade_from_args,
    min_severity_from_args,
    report_console,
    whole,
)
from mutatui.errors import MutatuiError
from mutatui.store.catalog import ScreenSummary
from mutatui.store.effects import ProbeTies
from mutatui.store.frames import pick_screen
from mutatui.store.published import PUBLISHED

MARKDOWN_WIDTH = 10_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze", help="phenotype rates, clustering, complementarity, asymmetry, writers"
    )
    parser.add_argument("db", help="a mutatui database")
    add_phenotype_arguments(parser)
    parser.add_argument(
        "--permutations",
        type=whole("--permutations"),
        default=DEFAULT_PERMUTATIONS,
        help=f"permutations per test (default {DEFAULT_PERMUTATIONS})",
    )
    parser.add_argument("--seed", type=whole("--seed"), default=0, help="seed of the permutations")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print everything as one JSON object")
    output.add_argument(
        "--markdown",
        action="store_true",
        help="print the tables as Markdown (for a README or a notebook), never wrapped",
    )
    parser.add_argument(
        "--against",
        metavar="SCREEN",
        help="also compare every whole row and column of elements the screen tested (dense "
        "lines) with SCREEN's elements of the same matrix (a random sample)",
    )
    parser.add_argument(
        "--stripes",
        type=whole("--stripes"),
        default=12,
        metavar="N",
        help="list the N stripes (rows or columns of a matrix where most sites are phenotypes) "
        "with the most phenotypes (default 12; all are counted)",
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
        "--tiles",
        type=whole("--tiles"),
        default=6,
        help="how many tiles, at most one per matrix (default 6)",
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
    grade = effect_grade_from_args(args)
    frame = grade.apply(frame) if grade else frame
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


PHENOTYPE_OPTIONS = ("probe", "min_severity", "text_severity", "robust", "min_effect", "top_effect")
"""Options that choose a computed screen's phenotypes; a published screen's table chose its."""


def run_published(args: argparse.Namespace, screen: ScreenSummary) -> int:
    given = [
        f"--{name.replace('_', '-')}"
        for name in (*PHENOTYPE_OPTIONS, "against", "emit_lines")
        if getattr(args, name) not in (None, False, min(PHENOTYPES))
    ]
    if given:
        raise MutatuiError(
            f"{screen.name!r} is a published screen: its tables chose its phenotypes, so "
            f"{', '.join(given)} cannot apply (valid here: --permutations, --seed, --stripes, "
            "--json, --markdown)"
        )
    result = analyze_published(args.db, screen, permutations=args.permutations, seed=args.seed)
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
        return 0
    report = Report.markdown_output() if args.markdown else Report.terminal()
    print_published(report, result, args.stripes)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.permutations < 10:
        raise MutatuiError(f"--permutations must be at least 10, got {args.permutations}")
    if args.stripes < 0:
        raise MutatuiError(f"--stripes must be 0 or more, got {args.stripes}")
    screen = pick_screen(args.db, args.screen)
    if screen.kind == PUBLISHED:
        return run_published(args, screen)
    if args.emit_lines:
        return emit_lines(args)
    result = analyze(
        args.db,
        args.screen,
        args.probe,
        min_severity=min_severity_from_args(args),
        permutations=args.permutations,
        seed=args.seed,
        against=args.against,
        text_severity=args.text_severity,
        effect_grade=effect_grade_from_args(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
        return 0
    report = Report.markdown_output() if args.markdown else Report.terminal()
    print_analysis(report, result)
    if result.stripes is not None:
        phenotype = describe_phenotype(
            result.min_severity, result.text_severity, result.effect_grade
        )
        print_stripes(
            report, dataclasses.replace(result.stripes, phenotype=phenotype), args.stripes
        )
    return 0


@dataclass(frozen=True)
class Report:
    """Where the analysis is printed: rich tables on a terminal, or Markdown."""

    console: Console
    markdown: bool = False

    @classmethod
    def terminal(cls) -> Report:
        """Standard output, 120 columns wide when it is a file or pipe (rich's default of 80
        wraps the test names of the tables); a terminal's width, or COLUMNS, wins."""
        return cls(report_console())

    @classmethod
    def markdown_output(cls) -> Report:
        """Plain text wide enough that no table row or paragraph is ever wrapped."""
        console = Console(width=MARKDOWN_WIDTH, color_system=None, highlight=False)
        return cls(console, markdown=True)

    def table(self, title: str | None = None) -> Table:
        return Table(
            title=title, title_justify="left", box=box.MARKDOWN if self.markdown else box.HEAVY_HEAD
        )

    def verbatim(self, text: str) -> str:
        """Text from the model (a first word) as it is: in Markdown a code span, so that `*`
        or `_` do not turn into emphasis, with its pipes escaped, as a table cell needs."""
        if not self.markdown:
            return text
        fence = "``" if "`" in text else "`"
        return f"{fence}{text}{fence}".replace("|", "\\|")

    def heading(self, text: str) -> None:
        if self.markdown:
            self.console.print(f"### {text}\n", markup=False)
        else:
            self.console.rule(text)

    def show(self, table: Table) -> None:
        if not self.markdown:
            self.console.print(table)
            return
        if table.title:
            # a Markdown table has no caption: its title is a line of its own above it
            self.paragraph(f"**{table.title}**")
        untitled = copy.copy(table)
        untitled.title = None
        with self.console.capture() as captured:
            self.console.print(untitled)
        # rich draws the Markdown box's top and bottom edges as lines of spaces
        lines = [line.rstrip() for line in captured.get().splitlines() if line.strip()]
        self.paragraph("\n".join(lines))

    def paragraph(self, text: str, bold: str = "", dim: bool = False) -> None:
        """A line of text; `bold` goes in front of it, in bold."""
        if self.markdown:
            self.console.print(f"**{bold}**{text}" if bold else text, markup=False)
            self.console.print()
        else:
            styled = Text.assemble((bold, "bold"), text, style="dim" if dim else "")
            self.console.print(styled)


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


def _rate_table(report: Report, title: str, rows: list[RateRow], label: str) -> Table:
    table = report.table(title)
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


def _destructive_table(report: Report, rows: list[RateRow]) -> Table:
    """Per matrix type and kind, the mutations whose choice assay was destructive."""
    table = report.table("destructive choice outcomes per matrix type")
    table.add_column("matrix")
    kinds = list(dict.fromkeys(row.kind for row in rows))
    for kind in kinds:
        table.add_column(f"{kind} destructive", justify="right")
        table.add_column(f"{kind} share", justify="right")
    by_key = {(row.key, row.kind): row for row in rows}
    for key in dict.fromkeys(row.key for row in rows):
        cells = [key]
        for kind in kinds:
            row = by_key.get((key, kind))
            cells += (
                ["-", "-"]
                if row is None
                else [
                    str(row.destructive),
                    f"{row.destructive / row.tested:.2%}" if row.tested else "-",
                ]
            )
        table.add_row(*cells)
    return table


def _print_shape(report: Report, shape: ShapeAnalysis, *, graded_writers: bool) -> None:
    rows, cols = shape.shape
    report.heading(
        f"sites {rows}x{cols}: {shape.tested} tested, {shape.phenotypes} phenotypes "
        f"({shape.phenotypes / max(shape.tested, 1):.1%}), {shape.severe} severe"
    )
    report.show(_rate_table(report, "phenotype rate per matrix type", shape.by_type, "matrix"))
    report.show(_rate_table(report, "phenotype rate per layer", shape.by_layer, "layer"))
    report.show(
        _rate_table(
            report,
            "phenotype rate per relative depth (fifths of the stack)",
            shape.by_depth,
            "depth",
        )
    )
    if any(row.destructive for row in shape.by_type):
        report.show(_destructive_table(report, shape.by_type))
    writers = "writer rate per matrix type"
    if graded_writers:
        writers += " (writers the phenotype grade counts)"
    report.show(_rate_table(report, writers, shape.writers_by_type, "matrix"))
    balance = shape.balance
    report.paragraph(
        f"kind balance (matrices with >= {balance.min_phenotypes} phenotypes; "
        f"one-sided = >= {balance.only:.0%} of the rate from one kind): "
        f"{balance.mixed} mixed, {balance.max_only} max-only, {balance.min_only} min-only, "
        f"{balance.unclassified} too few to say"
    )
    for kind, matrices in one_sided(balance).items():
        if matrices:
            report.paragraph(f"  {kind}-only: {', '.join(matrices)}")
    tests = report.table("permutation tests (screen-wide: summed z over strata)")
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
    report.show(tests)
    report.paragraph(TESTS_LEGEND, dim=True)
    for label, shared in (("V columns", shape.v_columns), ("writer rows", shape.writer_rows)):
        if shared.top_lines:
            size = rows if shared.axis == "row" else cols
            lines = ", ".join(
                f"{_line_span(shared.axis, line, size)} of {extent} in {count} matrices"
                for extent, line, count in shared.top_lines
            )
            report.paragraph(f"most shared {label}: {lines}")


def _line_span(axis: str, line: int, size: int) -> str:
    """A line in units of the sites' size, with the rows or columns it covers: "col 7
    (448:512)" for 64-wide tiles, "col 7" for single elements."""
    if size == 1:
        return f"{axis} {line}"
    return f"{axis} {line} ({line * size}:{(line + 1) * size})"


def _print_lines(report: Report, result: LineEnrichmentResult) -> None:
    report.heading(f"whole lines against {result.against}'s elements of the same matrix")
    if not result.lines:
        report.paragraph(
            "no whole line of elements tested yet, or none in a matrix both screens hold"
        )
        return
    table = report.table()
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
    report.show(table)
    overall = _null(result.overall)[2] if result.overall else "-"
    report.paragraph(
        f"screen-wide (summed z over {len(result.lines)} line tests): {overall}; null: the "
        "phenotypes shuffled among the line's and the other screen's sites of that matrix and "
        f"kind, {result.permutations} times; upper tail",
        dim=True,
    )


def print_analysis(report: Report, result: ScreenAnalysis) -> None:
    screen = result.screen
    report.paragraph(
        f" ({screen.model}, {screen.decoding}, {screen.status}); "
        f"probes: {', '.join(result.probes) or 'none'}; "
        "phenotype: "
        f"{describe_phenotype(result.min_severity, result.text_severity, result.effect_grade)}; "
        f"{result.permutations} permutations, seed {result.seed}",
        bold=screen.name,
    )
    if not result.shapes:
        report.paragraph("no results yet")
    for shape in result.shapes:
        _print_shape(report, shape, graded_writers=result.effect_grade is not None)
    if result.lines is not None:
        _print_lines(report, result.lines)
    if result.ties is not None:
        _print_ties(report, result.ties, result.tie_margin)
    writers = result.writers
    report.heading(
        f"writers: {writers.writer_mutations} mutations, {writers.writer_outcomes} of "
        f"{writers.changed_outcomes} changed outcomes turned conversational or poetic "
        "(or tagged writer)"
    )
    baselines = ", ".join(
        f"{probe}: {word!r}" for probe, word in writers.baseline_first_words.items()
    )
    report.paragraph(f"baseline first words: {baselines}")
    table = report.table("writer groups by first word")
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
            Text(report.verbatim(group.word)),
            str(group.outcomes),
            str(group.mutations),
            str(group.matrices),
            str(group.layers),
            str(group.conversational),
            str(group.poetic),
            f"{group.changed_share:.1%}",
        )
    report.show(table)


SHOWN_FRAGILE_STEPS = 3
"""Per probe, the fragile steps that took the most changes."""


def _print_ties(report: Report, ties: list[ProbeTies], margin: float) -> None:
    report.heading(f"near ties: changes at a baseline step whose margin is below {margin:g} logits")
    table = report.table()
    table.add_column("probe", no_wrap=True)
    for column in (
        "results",
        "changed",
        "at a near tie",
        "largest margin there",
        "steps that took most (step: margin, changes)",
        "KL unchanged (median, p90)",
        "KL changed (median, p90)",
    ):
        table.add_column(column, justify="right")
    for probe in ties:
        busiest = sorted(probe.fragile_steps, key=lambda s: -s.changes)[:SHOWN_FRAGILE_STEPS]
        table.add_row(
            Text(probe.probe),
            str(probe.results),
            str(probe.changed),
            f"{probe.changed_at_fragile} ({_share(probe.changed_at_fragile, probe.changed)})",
            "-" if probe.largest_fragile_margin is None else f"{probe.largest_fragile_margin:.3f}",
            "; ".join(f"{s.step}: {s.margin:.3f}, {s.changes}" for s in busiest if s.changes)
            or "-",
            _quantiles(probe.kl_unchanged),
            _quantiles(probe.kl_changed),
        )
    report.show(table)
    report.paragraph(
        "margin: the unmutated model's top-1 minus top-2 logit at the step where a change "
        "diverged; KL: the mean KL divergence from the unmutated model to the mutant over the "
        "baseline's continuation, in nats (`effects`)",
        dim=True,
    )


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _quantiles(pair: tuple[float | None, float | None]) -> str:
    return "-" if pair[0] is None else f"{pair[0]:.2g}, {pair[1]:.2g}"


def print_stripes(report: Report, stripes: StripeReport, shown: int) -> None:
    """The stripes found, per matrix type, the `shown` with the most phenotypes, and the model's
    super weights with the stripes through them or over their channels."""
    found = len(stripes.stripes)
    report.heading(
        f"stripes: {found} of {stripes.lines} lines ({stripes.expected:.3g} expected by chance)"
    )
    report.paragraph(
        f"a stripe: a row or column of one matrix whose sites are phenotypes at more than "
        f"{STRIPE_SHARE:.0%}, for one kind, among at least {MIN_LINE_SITES} tested; expected: "
        f"as many sites placed at random at each matrix's own rate. phenotype: "
        f"{stripes.phenotype}",
        dim=True,
    )
    if found:
        report.paragraph(
            "per matrix type: "
            + ", ".join(f"{matrix} {count}" for matrix, count in stripes.by_matrix().items())
        )
    if shown and found:
        table = report.table("stripes with the most phenotypes")
        table.add_column("stripe", no_wrap=True)
        table.add_column("channels", no_wrap=True)
        for column in ("phenotypes", "of sites", "share", "matrix's share"):
            table.add_column(column, justify="right")
        by_count = sorted(stripes.stripes, key=lambda s: (-s.phenotypes, -s.share, s.label))
        for stripe in by_count[:shown]:
            table.add_row(
                stripe.label,
                stripe.channels,
                str(stripe.phenotypes),
                str(stripe.sites),
                f"{stripe.share:.0%}",
                f"{stripe.matrix_share:.1%}",
            )
        report.show(table)
    for weight in stripes.super_weights:
        own = ", ".join(s.label for s in weight.own) or "none"
        channel = ", ".join(s.label for s in weight.channel[:8]) or "none"
        if len(weight.channel) > 8:
            channel += f" and {len(weight.channel) - 8} more"
        report.paragraph(
            f" ({weight.weight.source}): stripes through it: {own}; over its channels "
            f"elsewhere: {channel}",
            bold=f"super weight {weight.weight.site}",
        )
    if not stripes.super_weights:
        report.paragraph("no super weight known for this model", dim=True)


def _percent(value: float) -> str:
    return f"{value:.1%}"


def print_published(report: Report, result: PublishedAnalysis, shown: int) -> None:
    screen = result.screen
    report.paragraph(
        f" ({screen.model}, published); {result.citation}; {result.permutations} "
        f"permutations, seed {result.seed}",
        bold=screen.name,
    )
    for experiment in result.experiments:
        totals = ", ".join(
            f"{kind} {experiment.totals[kind]} ({_percent(rate)} of tiles)"
            for kind, rate in experiment.rate_by_kind.items()
        )
        report.heading(f"{experiment.name} ({experiment.type}), Table 1")
        report.paragraph(f"NSMs: {totals}")
        table = report.table("NSM rate per matrix type")
        for column in ("matrix", "tiles", "NSMs", "rate, all kinds", "max and min", "distinct"):
            table.add_column(column, justify="left" if column == "matrix" else "right")
        for row in experiment.by_type:
            low, high = row.max_min
            table.add_row(
                row.matrix,
                str(row.tiles),
                str(row.nsms),
                _percent(row.rate),
                _percent(low) if f"{low:.1%}" == f"{high:.1%}" else f"{low:.1%}-{high:.1%}",
                "-" if row.distinct is None else f"{row.distinct:.0f}",
            )
        report.show(table)
        depth = report.table("NSM rate per relative depth (fifths of the stack)")
        for column in ("depth", "layers", "tiles", "NSMs", "rate, all kinds"):
            depth.add_column(column, justify="left" if column == "depth" else "right")
        for band in experiment.by_depth:
            depth.add_row(
                band.band, band.layers, str(band.tiles), str(band.nsms), _percent(band.rate)
            )
        report.show(depth)
    report.paragraph(
        "rate: NSMs per tile and kind screened (max, min, zero). max and min: the rate over "
        "those two kinds alone, a range where Table 1 leaves open how many of the experiment's "
        "zero NSMs a matrix type holds. distinct: distinct phenotypes per matrix (mean).",
        dim=True,
    )
    report.heading(f"Table 2: {result.listed} tiles selected by {result.selection}")
    table = report.table("selected tiles per matrix type and kind")
    for column in ("matrix", "kind", "tiles", "selected", "share", "destructive"):
        table.add_column(column, justify="left" if column in ("matrix", "kind") else "right")
    for row in result.selection_rows:
        table.add_row(
            row.matrix,
            row.kind,
            str(row.tiles),
            str(row.listed),
            f"{row.share:.2%}",
            str(row.destructive),
        )
    report.show(table)
    claims = report.table("the paper's claims on its own tables")
    for column in ("claim", "on", "observed", "test", "strata p<0.01"):
        claims.add_column(
            column, justify="right" if column in ("test", "strata p<0.01") else "left"
        )
    for claim in result.claims:
        if not claim.testable:
            claims.add_row(claim.claim, f"cannot be tested: {claim.data}", "", "", "")
            continue
        claims.add_row(
            claim.claim,
            claim.data,
            claim.observed,
            _null(claim.result)[2],
            f"{claim.significant}/{claim.strata}",
        )
    report.show(claims)
    report.paragraph(
        "Table 2 is a selection by Mmlu21 score of an exhaustive screen: its tests ask where "
        "the tiles that cost most answers sit, against as many tiles placed at random in the "
        "whole matrix. clustering and shape: upper tail; complementarity: lower tail (a high "
        "z means max and min lines overlap more than chance); axis skew: two-sided. "
        + TESTS_LEGEND,
        dim=True,
    )
    print_stripes(report, result.stripes, shown)
