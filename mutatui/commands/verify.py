"""`mutatui verify DB`: rerun a sample of a screen's mutations on the naive path and compare."""

from __future__ import annotations

import argparse
import sys

from mutatui.commands.common import add_model_arguments, load_from_args, whole
from mutatui.errors import MutatuiError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="rerun a sample of a screen's mutations naively (edit, generate, restore); compare",
        description="Reruns a sample of a screen's mutations on the naive path and compares "
        "every recorded outcome and effect size. The model, --dtype and --arithmetic default "
        "to what the screen was computed with.",
    )
    parser.add_argument("db", help="a mutatui database")
    parser.add_argument("--screen", help="the screen's name (default: the largest screen)")
    parser.add_argument(
        "--sample",
        type=whole("--sample"),
        default=20,
        help="how many mutations to rerun (default 20)",
    )
    parser.add_argument("--seed", type=whole("--seed"), default=0, help="seed of the sample")
    parser.add_argument(
        "--from-id",
        type=whole("--from-id"),
        default=0,
        metavar="ID",
        help="sample only mutations with this id or later (what a resumed build recorded after "
        "an engine change, say)",
    )
    add_model_arguments(parser, required=False)
    # unset: the dtype and arithmetic the screen was computed in (its engine record)
    parser.set_defaults(run=run, dtype=None, arithmetic=None)


def run(args: argparse.Namespace) -> int:
    from mutatui.engine.machine import this_machine
    from mutatui.engine.matrices import MatrixCatalog
    from mutatui.screening.spec import spec_from_json
    from mutatui.screening.verify import ScreenVerifier, compare_machines, sample_ids
    from mutatui.store.engines import engine_of
    from mutatui.store.frames import pick_screen
    from mutatui.store.machines import machines_of
    from mutatui.store.queries import mutation_detail
    from mutatui.store.screens import find_screen, load_probes, mutation_ids

    if args.sample < 1:
        raise MutatuiError(f"--sample must be at least 1, got {args.sample}")
    record = find_screen(args.db, pick_screen(args.db, args.screen).name)
    if record is None or record.kind != "screen":
        raise MutatuiError("only screens made by `mutatui screen` can be verified")
    if args.from_id < 0:
        raise MutatuiError(f"--from-id must be 0 or more, got {args.from_id}")
    spec = spec_from_json(record.spec)
    stored = mutation_ids(args.db, record.screen_id)
    if not stored:
        raise MutatuiError(f"screen {record.name!r} has no results yet; nothing to verify")
    later = [mutation_id for mutation_id in stored if mutation_id >= args.from_id]
    if not later:
        raise MutatuiError(
            f"screen {record.name!r} has no mutation from id {args.from_id} on; its stored ids "
            f"run from {stored[0]} to {stored[-1]}"
        )
    ids = sample_ids(later, args.sample, args.seed)
    args.model = args.model or spec.model
    engine = engine_of(args.db, record.screen_id)
    args.dtype = args.dtype or (engine.dtype if engine else "auto")
    args.arithmetic = args.arithmetic or (engine.arithmetic if engine else "native")
    lm = load_from_args(args)
    print(f"verifying in {lm.describe()}", file=sys.stderr)
    machines = compare_machines(machines_of(args.db, record.screen_id), this_machine(lm.device))
    print(machines.line, file=sys.stderr)
    baselines = [
        row["baseline_tokens"]
        for row in load_probes(args.db, record.screen_id)
        if row["kind"] == "text"
    ]
    verifier = ScreenVerifier(lm, MatrixCatalog(lm.model), spec, baselines)
    problems = verifier.baseline_problems()
    for problem in problems:
        print(f"baseline: {problem}")
    if problems:
        print(f"{record.name}: the model does not give the recorded baselines; not comparable")
        return 1
    failed = tied = failed_at_ties = 0
    for number, mutation_id in enumerate(ids, 1):
        verdict = verifier.verify(mutation_detail(args.db, record.screen_id, mutation_id))
        failed += bool(verdict.problems)
        tied += verdict.at_near_tie
        failed_at_ties += bool(verdict.problems) and verdict.at_near_tie
        status = "differs" if verdict.problems else "same"
        tie = " (at a near tie)" if verdict.at_near_tie else ""
        print(f"{number}/{len(ids)} {verdict.label}: {status}{tie}", file=sys.stderr)
        for problem in verdict.problems:
            print(f"{verdict.label}: {problem}")
    print(
        f"{record.name}: {len(ids) - failed} of {len(ids)} sampled mutations (seed {args.seed}) "
        "give the recorded outcome (and effect sizes, where recorded) on every probe on the naive "
        f"path (edit, generate, restore); {tied} of the {len(ids)} sat at a near tie when "
        "screened (settled naively), where another machine's rounding may decide otherwise"
        + (f"; {failed_at_ties} of the {failed} that differ are such" if failed else "")
    )
    legitimate = failed_at_ties if machines.same is not True else 0
    return 1 if failed > legitimate else 0
