"""`mutatui restyle DB`: relabel stored outcomes' styles with this version's rules.

A style label is computed from the output text and its degenerate flags, both stored, so a
database screened under older style rules can be brought up to date without screening again.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from contextlib import nullcontext

from mutatui.commands.common import report_console


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restyle",
        help="recompute the style labels of stored outcomes with this version's rules",
        description="Style labels (descriptive, conversational, poetic, other) come from the "
        "stored text and flags; nothing is screened again. A published screen keeps its "
        "authors' labels: restyle --screen on one grades its outputs and sets the grader "
        "against the labels, writing nothing.",
    )
    parser.add_argument("db", help="a mutatui database")
    parser.add_argument("--screen", help="only this screen (default: every screen)")
    parser.add_argument(
        "--dry-run", action="store_true", help="count the labels that would change; write none"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mutatui.screening.style import style_of
    from mutatui.store.catalog import list_screens
    from mutatui.store.database import check_readable, check_writable, writer_lock
    from mutatui.store.frames import pick_screen
    from mutatui.store.published import PUBLISHED
    from mutatui.store.screens import set_styles, styled_outcomes

    check_readable(args.db)
    screens = list_screens(args.db)
    if args.screen is not None:
        chosen = pick_screen(args.db, args.screen)
        if chosen.kind == PUBLISHED:
            return grade_published(args.db, chosen.screen_id, chosen.name)
        screens = [screen for screen in screens if screen.name == chosen.name]
    if not args.dry_run:
        check_writable(args.db)
    for screen in screens:
        if screen.kind == PUBLISHED:
            print(f"{screen.name}: published, keeps its authors' labels", file=sys.stderr)
    screens = [screen for screen in screens if screen.kind != PUBLISHED]
    with nullcontext() if args.dry_run else writer_lock(args.db):
        for screen in screens:
            outcomes = styled_outcomes(args.db, screen.screen_id)
            changes = []
            moves: Counter[tuple[str, str]] = Counter()
            for outcome in outcomes:
                style = style_of(
                    outcome.text,
                    empty=outcome.empty,
                    repetitive=outcome.repetitive,
                    garbage=outcome.garbage,
                )
                if style != outcome.style:
                    changes.append((outcome.mutation_id, outcome.probe_id, style))
                    moves[(outcome.style, style)] += 1
            if not args.dry_run:
                set_styles(args.db, screen.screen_id, changes)
            verb = "would relabel" if args.dry_run else "relabelled"
            detail = ", ".join(f"{old} -> {new} {count}" for (old, new), count in moves.items())
            print(
                f"{screen.name}: {verb} {len(changes)} of {len(outcomes)} changed outcomes"
                + (f" ({detail})" if detail else ""),
                file=sys.stderr,
            )
    return 0


def grade_published(db: str, screen_id: int, name: str) -> int:
    """The grader against the authors' labels of a published screen's outputs (no writes)."""
    from rich.table import Table

    from mutatui.analysis.published_styles import (
        AUTHORS_LABELS,
        OUR_STYLES,
        grade_published_styles,
    )

    graded = grade_published_styles(db, screen_id, name)
    console = report_console()
    agreement = graded.agreement
    confusion = Table(
        title=f"{name}: Table 3's {agreement.outputs} outputs, the authors' labels (rows) "
        "against mutatui's styles",
        title_justify="left",
    )
    confusion.add_column("authors")
    for style in OUR_STYLES:
        confusion.add_column(style, justify="right")
    for label in AUTHORS_LABELS:
        row = agreement.confusion.get(label, {})
        confusion.add_row(label, *(str(row.get(style, 0)) for style in OUR_STYLES))
    console.print(confusion)
    console.print(
        f"poem as poetic and dialogue as conversational: {agreement.matched} of "
        f"{agreement.comparable}; writer or not (a coloured cell; poetic or conversational): "
        f"{agreement.writer_agreed} of {agreement.outputs}"
    )
    words = Table(
        title="first words and styles over Document 2A (standard) and 2B (writers)",
        title_justify="left",
    )
    words.add_column("writer", no_wrap=True)
    for column in ("outputs", "first word", "share", "Table 3's RIHF", *OUR_STYLES):
        words.add_column(column, justify="left" if column == "first word" else "right")
    for writer in graded.writers:
        words.add_row(
            writer.writer,
            str(writer.outputs),
            writer.word or "-",
            f"{writer.share:.0%}",
            writer.published or "-",
            *(str(writer.styles[style]) for style in OUR_STYLES),
        )
    console.print(words)
    for title, groups in (("ours", graded.groups), ("the paper's", graded.published_groups)):
        listed = "; ".join(f"{word!r}: {len(names)}" for word, names in groups.items())
        console.print(f"first-word groups, {title}: {listed or 'none'}")
    return 0
