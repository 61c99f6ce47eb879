"""`mutatui screen`: run a mutagenesis screen from a TOML spec and/or flags into a database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mutatui.commands.common import (
    add_decoding_arguments,
    add_model_arguments,
    load_from_args,
    model_options,
    whole,
)
from mutatui.errors import MutatuiError
from mutatui.scale.options import add_ray_arguments, ray_requested, ray_run

if TYPE_CHECKING:
    from mutatui.scale.ray_runner import RayEvent
    from mutatui.screening.estimate import Estimate

SITES_HELP = (
    "site sampler: tiles:64 (default) | tiles:64x32 | random:1000[,seed=S] | stride:16[xC]"
    "[,offset=R0xC0] | lines:rows|cols|both[,every=K] | region:R0:R1,C0:C1 | full"
)

TEXT_FLAGS = ("db", "spec", "name", "model", "choice", "layers", "matrices", "kinds", "sites")
"""Flags whose empty value would otherwise fall back silently to the default."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "screen",
        help="run (or resume) a mutagenesis screen into a DuckDB database",
        description="Flags override the values of --spec FILE. With --resume, the spec is read "
        "back from the database.",
    )
    parser.add_argument("--db", default="screens.db", help="the database (default screens.db)")
    parser.add_argument("--spec", help="a TOML spec file (docs/guide/screens.md)")
    parser.add_argument("--name", help="the screen's name (default: from the spec's hash)")
    add_model_arguments(parser, required=False)
    probes = parser.add_argument_group("probes")
    probes.add_argument(
        "--probe",
        action="append",
        metavar="STYLE=PROMPT",
        help="a text probe with its style label, e.g. 'describe=The life cycle of Drosophila:' "
        "(repeatable; default: three shipped probes)",
    )
    probes.add_argument(
        "--choice", help="choice probe: default (the shipped questions), none, or a JSONL file"
    )
    probes.add_argument(
        "--choice-only-changed",
        action="store_true",
        default=None,
        help="ask the questions only of mutations that changed some text probe",
    )
    sites = parser.add_argument_group("mutations")
    sites.add_argument("--layers", help="all (default), or e.g. 0-5,9")
    sites.add_argument("--matrices", help="all (default), or e.g. q,v,down")
    sites.add_argument("--kinds", help="comma-separated: max,min (default), zero, a number")
    sites.add_argument("--sites", help=SITES_HELP)
    sites.add_argument(
        "--site", action="append", help="an explicit site to screen (repeatable; a list sampler)"
    )
    add_decoding_arguments(parser)
    parser.set_defaults(decoding=None, temperature=None, seed=None, max_new_tokens=None)
    parser.set_defaults(no_chat=None)
    parser.add_argument(
        "--effects",
        choices=("on", "off"),
        help="record effect sizes (NLL change, KL) for every mutation (default: on)",
    )
    running = parser.add_argument_group("running")
    running.add_argument("--resume", action="store_true", help="continue an interrupted screen")
    running.add_argument("--shard", help="run part K of N of the spec, e.g. 2/8")
    running.add_argument(
        "--batch-size",
        type=whole("--batch-size"),
        default=None,
        help="mutations per batch (default: 128 for models under 1B parameters, else 32)",
    )
    running.add_argument("--quiet", action="store_true", help="no progress output")
    running.add_argument(
        "--detach",
        action="store_true",
        help="run in the background, outliving this terminal, with progress in DB.log "
        "(without it, a lost terminal stops the screen; --resume continues it)",
    )
    running.add_argument(
        "--estimate",
        action="store_true",
        help="print the planned mutations, the estimated time and the peak memory on this "
        "machine (from a graded sample), and run nothing",
    )
    add_ray_arguments(parser)
    parser.set_defaults(run=run)


def subtable(table: dict, key: str, where: str | None) -> dict:
    """A table of the spec that flags are written over, refused in one line when the spec
    file gives it as something else."""
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise MutatuiError(f"{where or 'spec'}: {key} is a table, not {value!r}")
    return dict(value)


def spec_table(args: argparse.Namespace) -> dict | None:
    """The spec's table: the --spec file's, with every given flag written over it.

    None when neither a file nor any spec flag was given (a resume then reads the stored spec).
    """
    from mutatui.screening.samplers import parse_sampler
    from mutatui.screening.spec import load_spec_file

    table: dict = load_spec_file(args.spec) if args.spec else {}
    given = False

    def put(key: str, value: object) -> None:
        nonlocal given
        if value is not None:
            table[key] = value
            given = True

    put("name", args.name)
    put("model", args.model)
    if args.probe:
        from mutatui.screening.probes import probe_from_flag

        put("probes", [probe_from_flag(text, i + 1).table() for i, text in enumerate(args.probe)])
    if args.choice is not None or args.choice_only_changed is not None:
        choice = subtable(table, "choice", args.spec)
        if args.choice is not None:
            choice["questions"] = args.choice
        if args.choice_only_changed is not None:
            choice["only_changed"] = args.choice_only_changed
        put("choice", choice)
    put("layers", args.layers)
    put("matrices", args.matrices)
    put("kinds", args.kinds)
    if args.sites and args.site:
        raise MutatuiError("give --sites or --site, not both")
    if args.sites:
        put("sites", parse_sampler(args.sites).table())
    if args.site:
        put("sites", {"sampler": "list", "sites": args.site})
    decoding = subtable(table, "decoding", args.spec)
    for key in ("decoding", "temperature", "seed"):
        value = getattr(args, key)
        if value is not None:
            decoding["mode" if key == "decoding" else key] = value
    if decoding:
        table["decoding"] = decoding
    if any(getattr(args, k) is not None for k in ("decoding", "temperature", "seed")):
        given = True
    put("max_new_tokens", args.max_new_tokens)
    if args.no_chat:
        put("chat", False)
    if args.effects is not None:
        put("effects", args.effects == "on")
    if args.spec:
        given = True
    only_name = given and set(table) == {"name"}
    return None if not given or (args.resume and only_name) else table


def run(args: argparse.Namespace) -> int:
    from mutatui.screening.plan import WHOLE, parse_shard
    from mutatui.screening.progress import make_progress
    from mutatui.screening.runner import ScreenRun, run_screen
    from mutatui.screening.spec import spec_from_table

    for flag in TEXT_FLAGS:
        value = getattr(args, flag.replace("-", "_"))
        if isinstance(value, str) and not value.strip():
            raise MutatuiError(f"--{flag} is empty; see `mutatui screen --help` for its forms")
    if args.batch_size is not None and args.batch_size < 1:
        raise MutatuiError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.resume and args.shard is not None:
        raise MutatuiError("a resumed screen keeps its shard; drop --shard")
    table = spec_table(args)
    spec = spec_from_table(table, where=args.spec or "flags") if table is not None else None
    if args.detach and not args.estimate:
        check_before_detaching(args, spec)
        return detach(Path(args.db), args.command_line)
    screen_run = ScreenRun(
        db=Path(args.db),
        shard=parse_shard(args.shard) if args.shard is not None else WHOLE,
        resume=args.resume,
        batch_size=args.batch_size,
        arithmetic=args.arithmetic,
    )

    def load(model: str):
        return load_from_args(args, quiet=args.quiet, model=model)

    if args.estimate:
        if spec is None:
            raise MutatuiError("--estimate needs a spec (--spec FILE or --model and flags)")
        from mutatui.screening.estimate import estimate_screen
        from mutatui.screening.progress import Steps

        lm = load(spec.model)
        with Steps(quiet=args.quiet) as steps:
            estimate = estimate_screen(
                lm, spec, screen_run.shard, args.batch_size, args.arithmetic, steps=steps
            )
        print_estimate(spec.display_name, estimate)
        return 0

    try:
        if ray_requested(args):
            from mutatui.scale.ray_runner import run_screen_on_ray

            report = run_screen_on_ray(
                spec,
                screen_run,
                ray_run(args, model_options(args)),
                make_progress(quiet=args.quiet),
                name=args.name,
                on_event=None if args.quiet else log_ray_event,
            )
        else:
            report = run_screen(
                spec, screen_run, load, make_progress(quiet=args.quiet), name=args.name
            )
    except KeyboardInterrupt as stop:
        return stopped(stop, screen_run.db, args.name or (spec.display_name if spec else None))
    if not args.quiet:
        print(
            f"mutatui: screen {report.name!r} {report.status}: {report.done}/{report.planned} "
            f"mutations, {report.phenotypes} with a phenotype, in {args.db}",
            file=sys.stderr,
        )
    return 0


SHARDS_SHOWN = (2, 4, 8)
"""The parts (shards or Ray workers, each a machine like this one) an estimate divides by."""


def print_estimate(name: str, estimate: Estimate) -> None:
    """The estimate of a screen, one fact a line."""
    from datetime import timedelta

    from mutatui.engine.forms import byte_count

    def span(seconds: float) -> str:
        return str(timedelta(seconds=round(seconds)))

    gib = 1024**3
    for note in estimate.notes:
        print(f"mutatui: {note}", file=sys.stderr)
    print(f"screen {name!r}: {estimate.planned:,} mutations planned, on {estimate.path}")
    print(f"  {estimate.setup}, batches of {estimate.batch_size}")
    planned = estimate.planned
    print(
        f"  estimated time: {span(estimate.seconds)} (from {span(planned * estimate.fastest)} "
        f"at the sample's fastest batch to {span(planned * estimate.slowest)} at its slowest; "
        f"{estimate.seconds_per_mutation:.3g} s per mutation, graded on a sample of "
        f"{estimate.sampled})"
    )
    divided = ", ".join(f"{parts}: {span(estimate.seconds / parts)}" for parts in SHARDS_SHOWN)
    print(f"  with N shards (--shard K/N) or Ray workers, each a machine like this: {divided}")
    print(
        f"  peak memory: {estimate.peak_memory / gib:.2f} GiB on the sample; at most about "
        f"{estimate.batch_memory / gib:.2f} GiB with full batches (weights + rows)"
    )
    print(
        f"  disk: at most about {byte_count(estimate.disk_bytes)} (the sample's rows as written, "
        f"{estimate.bytes_per_mutation:,.0f} bytes per mutation, before DuckDB compresses them)"
    )
    if estimate.busy:
        print(
            f"mutatui: this machine was busy while the sample was timed (load average "
            f"{estimate.load:.1f} per core): the estimate is likely long",
            file=sys.stderr,
        )


def stopped(stop: KeyboardInterrupt, db: Path, name: str | None) -> int:
    """Say what a stopped screen left (its committed batches, kept) and how to continue it;
    return the exit status of a process ended by the signal."""
    from contextlib import suppress

    from mutatui import process
    from mutatui.store import screens as store

    record, done = None, 0
    with suppress(MutatuiError):  # a cheap read: this runs as the process is asked to end
        records = store.screen_records(db) if db.is_file() else []
        record = next((r for r in records if r.name == name), None)
        if record is None and name is None and len(records) == 1:
            record = records[0]
        done = store.committed_count(db, record.screen_id) if record else 0
    if record is None:
        line = "stopped before the screen began; nothing was written"
    else:
        line = (
            f"screen {record.name!r} stopped: {done} of {record.planned_mutations} mutations "
            f"are committed in {db} and kept; `mutatui screen --db {db} --resume` continues it"
        )
    with suppress(OSError):
        print(f"mutatui: {line} ({process.signal_name(stop)})", file=sys.stderr)
    return 128 + process.signal_number(stop)


def check_before_detaching(args: argparse.Namespace, spec) -> None:
    """What a detached screen would fail on in its log, said here instead: its database, its
    shard, its model and device (a model is found, not loaded)."""
    from mutatui.engine.models import parse_device, resolve_source
    from mutatui.screening.plan import parse_shard
    from mutatui.store.database import check_readable, check_writable

    db = Path(args.db)
    if args.resume:
        check_readable(db)
    else:
        check_writable(db)
    if args.shard is not None:
        parse_shard(args.shard)
    if spec is not None:
        resolve_source(spec.model, None, convert=False)
    parse_device(args.device)


def detach(db: Path, command_line: list[str]) -> int:
    """Start this same command again as a process of its own session, without --detach: no
    terminal, so none to lose; its progress and last line go to `<db>.log`."""
    import os
    import subprocess

    log = db.with_name(db.name + ".log")
    arguments = [a for a in command_line if a != "--detach"]
    try:
        with log.open("a", encoding="utf-8") as output:
            child = subprocess.Popen(
                [sys.executable, "-m", "mutatui", *arguments],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
    except OSError as error:
        raise MutatuiError(f"cannot write the log {log}: {error.strerror}") from None
    print(
        f"mutatui: screen running in the background as pid {child.pid}; log: {log}; "
        f"`kill {child.pid}` stops it, `--resume` continues it",
        file=sys.stderr,
    )
    return 0


def log_ray_event(event: RayEvent) -> None:
    """Ray worker starts, deaths and losses on stderr (finished parts show in the progress
    bar)."""
    if event.kind == "part":
        return
    where = event.info.label if event.info else f"worker {event.worker}"
    if event.kind == "started":
        line = f"Ray worker {event.worker} started on {where}"
    elif event.kind == "died":
        parts = ", ".join(str(part) for part in event.requeued)
        again = f"; part {parts} requeued" if parts else ""
        line = f"Ray worker {event.worker} ({where}) died{again}: {event.message}"
    else:
        line = f"Ray worker {event.worker} ({where}) lost for good: {event.message}"
    print(f"mutatui: {line}", file=sys.stderr, flush=True)
