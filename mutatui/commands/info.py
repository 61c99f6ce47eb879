"""`mutatui info DB`: what a screen database holds, screen by screen."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="summarise the screens in a database")
    parser.add_argument("db", help="the database")
    parser.add_argument("--json", action="store_true", help="one JSON object per screen")
    parser.set_defaults(run=run)


if TYPE_CHECKING:
    from mutatui.exact.noise import NoiseFloor
    from mutatui.store.engines import EngineRecord
    from mutatui.store.screens import ScreenDetails


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mutatui.store.merge import describe_parts, shard_parts
    from mutatui.store.screens import summarize

    summaries = summarize(args.db)
    if args.json:
        for s in summaries:
            print(
                json.dumps(
                    {
                        "name": s.screen.name,
                        "kind": s.screen.kind,
                        "model": s.screen.model,
                        "status": s.status,
                        "shard": s.screen.shard,
                        "done": s.done,
                        "planned": s.screen.planned_mutations,
                        "phenotypes": s.phenotypes,
                        "malignant": s.malignant,
                        "severity": list(s.severity),
                        "matrices": s.matrices,
                        "probes": s.probes,
                        "elapsed_seconds": s.screen.elapsed_seconds,
                        "engine": None if s.engine is None else asdict(s.engine),
                        "effect_results": s.effects,
                        "noise_floor": None if s.noise is None else asdict(s.noise),
                        "machines": [
                            {**asdict(machine), "digest": machine.digest} for machine in s.machines
                        ],
                        "spec": json.loads(s.screen.spec),
                    }
                )
            )
        return 0
    console = Console()
    if not summaries:
        console.print(f"{args.db}: no screens")
        return 0
    for s in summaries:
        planned = s.screen.planned_mutations
        share = f" ({100 * s.done / planned:.1f}%)" if planned else ""
        parts = shard_parts(s.screen.shard)
        # a shard's plan is its parts', not the spec's
        of_parts = "" if parts is None else " planned in these parts"
        rate = s.done / s.screen.elapsed_seconds if s.screen.elapsed_seconds > 0 else 0.0
        table = Table(
            title=escape(f"{s.screen.name} [{s.status}]"),
            show_header=False,
            title_justify="left",
        )
        table.add_column("field", style="bold")
        table.add_column("value")
        table.add_row("model", escape(s.screen.model))
        if s.screen.kind == "published":
            _published_rows(table, s)
            console.print(table)
            continue
        table.add_row("engine", escape(describe_engine(s.engine)))
        table.add_row("shard", "whole spec" if parts is None else describe_parts(*parts))
        table.add_row(
            "mutations",
            f"{s.done} of {planned if planned is not None else '?'}{of_parts}{share}",
        )
        table.add_row("phenotypes", phenotype_line(s))
        table.add_row("severity", "none {} · mild {} · moderate {} · severe {}".format(*s.severity))
        table.add_row("malignant", str(s.malignant))
        table.add_row("matrices", str(s.matrices))
        table.add_row("probes", escape("; ".join(s.probes)))
        table.add_row("effect sizes", escape(describe_effects(s.effects, s.noise)))
        for number, machine in enumerate(s.machines):
            table.add_row("ran on" if number == 0 else "", escape(machine.describe()))
        if not s.machines:
            table.add_row("ran on", "not recorded (a screen made before machines were)")
        table.add_row("time", f"{s.screen.elapsed_seconds:.0f} s screening, {rate:.2f} mutations/s")
        console.print(table)
    return 0


def _published_rows(table, summary) -> None:
    """A published screen: what it is and what it holds (no engine, time or effect sizes)."""
    from rich.markup import escape

    from mutatui.store.published import description_of

    described = (description_of(summary.screen.spec) or {}).get("published", {})
    shape = described.get("shape", {})
    table.add_row("published", escape(str(described.get("citation", "?"))))
    table.add_row(
        "shape",
        f"{shape.get('layers')} layers, hidden {shape.get('hidden')}, intermediate "
        f"{shape.get('intermediate')}, {shape.get('heads')} heads, {shape.get('kv_heads')} "
        "key-value heads; tiles of 64x64, max, min and zero",
    )
    table.add_row("mutations", f"{summary.done} ({escape(str(described.get('mutations', '')))})")
    table.add_row("experiments", escape(", ".join(described.get("experiments", []))))
    table.add_row(
        "severity", "none {} · mild {} · moderate {} · severe {}".format(*summary.severity)
    )
    table.add_row("malignant", str(summary.malignant))
    table.add_row("probes", escape("; ".join(summary.probes)))
    table.add_row(
        "texts", "kept" if described.get("texts") else "numbers, labels and first words only"
    )


def describe_effects(count: int, noise: NoiseFloor | None) -> str:
    """How many text results have effect sizes, and their noise floor."""
    if not count:
        return "none (`mutatui effects` adds them)"
    if noise is None:
        return (
            f"{count} text results, computed before controls (their KL can read below zero); "
            "`mutatui effects --recompute` replaces them"
        )
    return f"{count} text results; noise floor {noise.describe()}"


def describe_engine(engine: EngineRecord | None) -> str:
    """The engine row in words: path, arithmetic, device, tolerances."""
    if engine is None:
        return "not recorded (a screen made before mutatui recorded its engine)"
    tolerance = f"near ties under {engine.element_tolerance:.2g} (elements), "
    tolerance += f"{engine.block_tolerance:.2g} (blocks)"
    if engine.calibration_mutations:
        measured = [v for v in (engine.measured_element, engine.measured_block) if v is not None]
        tolerance += f", measured on {engine.calibration_mutations} mutants"
        tolerance += f" (largest difference {max(measured):.2g})" if measured else ""
    return f"{engine.describe()}; {engine.precision}; {tolerance}"


def phenotype_line(summary: ScreenDetails) -> str:
    """Mutations that changed any probe, and of them, those that changed a text output (what
    `mutatui analyze` counts as phenotypes) and a choice probe's answers."""
    line = f"{summary.phenotypes} mutations changed some probe"
    if summary.choice_probes:
        line += (
            f": {summary.text_changed} a text output (what analyze counts), "
            f"{summary.choice_changed} a choice answer"
        )
    return line
