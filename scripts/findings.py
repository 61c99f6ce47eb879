"""The material of the findings page (docs/findings.md): each bundled screen's analysis and figures.

    .venv/bin/python scripts/findings.py screens.db findings/

For every analysis below whose screens are in the database, runs `mutatui analyze --markdown`
into `<name>.md` and, where it has figures, `mutatui plot` into `figures/<name>/`, then writes
`index.md`: the state of each screen analysed (a build still running says which parts it
holds) and the command behind every file, so each number the docs quote can be made again.
An analysis whose screen is not in the database yet is listed as skipped, not an error: the
bundled screens are built one after another over many sessions.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mutatui.errors import MutatuiError
from mutatui.store.catalog import ScreenSummary, list_screens
from mutatui.store.effects import legacy_effects, missing_effects
from mutatui.store.screens import summarize

TILE_EFFECT = "0.245"
ELEMENT_EFFECT = "3.2e-05"
"""Effect-size thresholds (mean KL, nats) at which the graded share equals the share the paper's
grade gives: severe for tiles, any change for random elements (docs/findings.md)."""


@dataclass(frozen=True)
class Analysis:
    """One report of `mutatui analyze` (and its figures) on one bundled screen."""

    name: str
    screen: str
    about: str
    flags: tuple[str, ...] = ()
    against: str | None = None
    figures: bool = True
    effects: bool = False
    """Graded by effect sizes: skipped while the screen has none (`mutatui effects`)."""

    def reads_effect_sizes(self) -> bool:
        """Graded by the size of an effect, which only a noise floor makes comparable (a robust
        grade reads the baseline's margins alone)."""
        return any(flag in self.flags for flag in ("--min-effect", "--top-effect"))

    def needs(self) -> tuple[str, ...]:
        return (self.screen,) if self.against is None else (self.screen, self.against)

    def analyze_args(self, db: Path) -> list[str]:
        against = () if self.against is None else ("--against", self.against)
        return ["analyze", str(db), "--screen", self.screen, *self.flags, *against, "--markdown"]

    def plot_args(self, db: Path, folder: Path) -> list[str]:
        return ["plot", str(db), str(folder), "--screen", self.screen, *self.flags]


ANALYSES = (
    Analysis(
        "tiles-64",
        "tiles-64",
        "every tile mutation that changed any probe's output (the paper's phenotype)",
        figures=False,
    ),
    Analysis(
        "tiles-64-severe",
        "tiles-64",
        "tile mutations graded severe: nearly every tile changes the text, so the structure "
        "shows here",
        ("--min-severity", "3"),
    ),
    Analysis(
        "tiles-64-severe-text",
        "tiles-64",
        "tile mutations whose text alone is graded severe (the choice assay left out)",
        ("--min-severity", "3", "--text-severity"),
        figures=False,
    ),
    Analysis(
        "elements-random",
        "elements-random",
        "random single elements of every matrix that changed any probe's text",
    ),
    Analysis(
        "elements-lines",
        "elements-lines",
        "whole rows and columns through the most sensitive tiles, each line against random "
        "elements of its own matrix",
        against="elements-random",
    ),
    Analysis(
        "tiles-64-effect",
        "tiles-64",
        f"tile mutations graded by effect size instead: the mean KL over the continuation at "
        f"least {TILE_EFFECT} nats, which the top 23.6% reach (the share graded severe)",
        ("--min-effect", TILE_EFFECT),
        effects=True,
    ),
    Analysis(
        "tiles-64-robust",
        "tiles-64",
        "tile mutations that changed the text away from the baseline's near ties (a margin of "
        "1 logit or more where they diverged)",
        ("--robust",),
        figures=False,
        effects=True,
    ),
    Analysis(
        "elements-random-effect",
        "elements-random",
        "random single elements graded by effect size: the mean KL over the continuation at "
        "least 3.2e-05 nats, which the top 27.9% reach (the share that changed the text)",
        ("--min-effect", ELEMENT_EFFECT),
        figures=False,
        effects=True,
    ),
    Analysis(
        "elements-lines-effect",
        "elements-lines",
        "the lines graded by the same effect size as the random elements, each line against "
        "random elements of its own matrix",
        ("--min-effect", ELEMENT_EFFECT),
        against="elements-random",
        figures=False,
        effects=True,
    ),
)


PUBLISHED_ANALYSES = tuple(
    Analysis(
        name,
        name,
        f"Hu et al.'s published {model} screen (mutatui import-paper): Table 1's NSM rate of "
        "every experiment by matrix type and relative depth, Table 2's tiles, the paper's claims "
        "the tables can test and those they cannot, stripes and the super weight",
        figures=False,
    )
    for name, model in (("hu2024-llama2-7b", "Llama-2-7b"), ("hu2024-zephyr", "Zephyr-7b-beta"))
)
ANALYSES += PUBLISHED_ANALYSES


def run_cli(args: list[str], stdout: Path | None = None) -> None:
    """Run the project's own CLI, as a reader would, failing loudly with its message."""
    command = [sys.executable, "-m", "mutatui", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MutatuiError(f"`mutatui {' '.join(args)}` failed: {done.stderr.strip()}")
    if stdout is not None:
        stdout.write_text(done.stdout)


def describe(summary: ScreenSummary) -> str:
    return (
        f"`{summary.name}`: {summary.state}, {summary.mutations:,} mutations tested, "
        f"{summary.phenotypes:,} changed some probe"
    )


def write_gallery(folder: Path, name: str) -> Path:
    """A page showing every figure of a folder (its README, which GitHub and the docs both
    render), so a report links to one page rather than to a folder."""
    figures = sorted(path.name for path in folder.glob("*.png"))
    page = folder / "README.md"
    lines = [f"# Figures: {name}", "", *(f"![{figure}]({figure})\n" for figure in figures)]
    page.write_text("\n".join(lines))
    return page


def effect_gap(db: Path, screen: ScreenSummary, recorded: int, sizes: bool) -> str | None:
    """Why an effect-graded analysis of the screen must wait, or None: a grade by effect reads a
    missing row as no effect, and one by size needs effect sizes taken against controls."""
    if not recorded:
        return "has no effect sizes yet"
    missing = missing_effects(db, screen.screen_id)
    if missing:
        return f"lacks {missing:,} of its effect sizes"
    if sizes and legacy_effects(db, screen.screen_id):
        return (
            "has effect sizes computed before controls "
            f"(`mutatui effects {db} --screen {screen.name} --recompute` replaces them)"
        )
    return None


def write_findings(db: Path, out: Path) -> None:
    """Write every report and figure that `db` has the screens for, and their index."""
    if not db.exists():
        raise MutatuiError(f"{db}: no such database (make screens.db builds the bundled one)")
    screens = {summary.name: summary for summary in list_screens(db)}
    effects = {summary.screen.name: summary.effects for summary in summarize(db)}
    out.mkdir(parents=True, exist_ok=True)
    index = [
        "# Findings material",
        "",
        f"Written by `scripts/findings.py {db} {out}` (`make findings`) from:",
        "",
        *(f"- {describe(screens[name])}" for name in sorted(screens)),
        "",
    ]
    for analysis in ANALYSES:
        missing = [name for name in analysis.needs() if name not in screens]
        if missing:
            index.append(f"- {analysis.name}: skipped, {', '.join(missing)} not in {db} yet")
            continue
        gaps = [
            f"{name} {gap}"
            for name in analysis.needs()
            if analysis.effects
            and (gap := effect_gap(db, screens[name], effects[name], analysis.reads_effect_sizes()))
        ]
        if gaps:
            index.append(f"- {analysis.name}: skipped, {', '.join(gaps)}")
            continue
        print(f"findings: {analysis.name}", file=sys.stderr)
        report = out / f"{analysis.name}.md"
        args = analysis.analyze_args(db)
        run_cli(args, stdout=report)
        made = [f"[{report.name}]({report.name}) (`mutatui {' '.join(args)}`)"]
        if analysis.figures:
            folder = out / "figures" / analysis.name
            run_cli(analysis.plot_args(db, folder))
            gallery = write_gallery(folder, analysis.name)
            made.append(f"[figures]({gallery.relative_to(out).as_posix()})")
        index.append(f"- {analysis.name}: {analysis.about}: {'; '.join(made)}")
    (out / "index.md").write_text("\n".join(index) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="the database (screens.db)")
    parser.add_argument("out", type=Path, help="the folder to write into (created if missing)")
    args = parser.parse_args(argv)
    try:
        write_findings(args.db, args.out)
    except MutatuiError as error:
        print(f"findings: {error}", file=sys.stderr)
        return 1
    print(f"findings: wrote {args.out / 'index.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
