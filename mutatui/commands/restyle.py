"""`mutatui restyle DB`: relabel stored outcomes' styles with this version's rules.

A style label is computed from the output text and its degenerate flags, both stored, so a
database screened under older style rules can be brought up to date without screening again.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from contextlib import nullcontext


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restyle",
        help="recompute the style labels of stored outcomes with this version's rules",
        description="Style labels (descriptive, conversational, poetic, other) come from the "
        "stored text and flags; nothing is screened again.",
    )
    parser.add_argument("db", help="a mutatui database")
    parser.add_argument("--screen", help="only this screen (default: every screen)")
    parser.add_argument(
        "--dry-run", action="store_true", help="count the labels that would change; write none"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mutatui.screening.style import style_of
    from mutatui.store.database import check_readable, writer_lock
    from mutatui.store.frames import pick_screen
    from mutatui.store.screens import list_screens, set_styles, styled_outcomes

    check_readable(args.db)
    screens = list_screens(args.db)
    if args.screen is not None:
        chosen = pick_screen(args.db, args.screen).name
        screens = [screen for screen in screens if screen.name == chosen]
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
