"""One analysis of one screen: every quantity of the paper, per site shape, as plain data."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mutatui.analysis.grades import EffectGrade
from mutatui.analysis.stats import (
    AXES,
    SEVERE,
    ClusteringResult,
    ComplementarityResult,
    KindBalance,
    LineEnrichmentResult,
    RateRow,
    RearrangedResult,
    SharedLinesResult,
    axis_clustering,
    complementarity,
    kind_balance,
    line_enrichment,
    rates,
    rearranged_asymmetry,
    shape_groups,
    shared_lines,
)
from mutatui.analysis.stripes import (
    StripeReport,
    frame_stripes,
    known_super_weights,
    stripe_report,
)
from mutatui.analysis.writers import WriterGroups, writer_groups, writer_mask
from mutatui.errors import MutatuiError
from mutatui.store.catalog import ScreenSummary
from mutatui.store.effects import ROBUST_MARGIN, ProbeTies, probe_ties
from mutatui.store.frames import (
    SiteFrame,
    StyledOutcomes,
    load_sites,
    load_styled,
    pick_screen,
)

DEFAULT_PERMUTATIONS = 1000
"""p-values resolve down to about 1/1000; the smallest possible is 1/(N+1)."""

ELEMENT = (1, 1)
"""The site shape of a single element."""

ANY_CHANGE = 1
"""The lowest grade of a changed output: as a minimum severity, every changed output counts
(the paper's phenotype, a non-silent mutation)."""


@dataclass
class ShapeAnalysis:
    """The quantities for the sites of one shape (e.g. 64x64 tiles, or single elements)."""

    shape: tuple[int, int]
    tested: int
    phenotypes: int
    severe: int
    by_type: list[RateRow]
    by_layer: list[RateRow]
    by_depth: list[RateRow]
    """Per fifth of the model's stack (relative depth: models of any depth compare)."""
    balance: KindBalance
    clustering: list[ClusteringResult]
    complementarity: list[ComplementarityResult]
    rearranged: list[RearrangedResult]
    v_columns: SharedLinesResult
    writer_rows: SharedLinesResult
    writers_by_type: list[RateRow]
    """Writer mutations per matrix type and kind (`changed` counts the writers)."""


@dataclass
class ScreenAnalysis:
    screen: ScreenSummary
    probes: list[str]
    min_severity: int
    text_severity: bool
    """Severity graded on the text probes only (else the worst probe, choice included)."""
    permutations: int
    seed: int
    shapes: list[ShapeAnalysis]
    writers: WriterGroups
    lines: LineEnrichmentResult | None = None
    """With `against`: the screen's whole lines of elements against another screen's elements."""
    effect_grade: str | None = None
    """How effect sizes graded the phenotypes (`grades.EffectGrade.describe`), if they did."""
    ties: list[ProbeTies] | None = None
    """With effect sizes: per chosen text probe, how many of its changes tipped a near tie of
    its own baseline (at `tie_margin`), and its effects changed and not."""
    tie_margin: float = ROBUST_MARGIN
    stripes: StripeReport | None = None
    """Rows and columns of sites where most are phenotypes, with the model's super weights."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def analyze_shape(
    frame: SiteFrame,
    shape: tuple[int, int],
    styled: StyledOutcomes,
    *,
    min_severity: int,
    permutations: int,
    seed: int,
    graded_writers: bool = False,
) -> ShapeAnalysis:
    """The paper's quantities over one shape of site. Writers are every mutation with a writer
    outcome, or with `graded_writers` (an effect grade) only those the grade counts: a writer
    that tipped a near tie, or barely moved the model, is then left out."""
    extents = frame.extents()
    options = {"permutations": permutations, "seed": seed}
    types = sorted(set(frame.matrix.tolist()))
    is_v = frame.matrix == "v"
    v_frame = frame.subset(is_v)
    writers = writer_mask(frame, styled)
    if graded_writers:
        writers &= frame.changed
    return ShapeAnalysis(
        shape=shape,
        tested=len(frame),
        phenotypes=int(frame.changed.sum()),
        severe=int((frame.changed & (frame.severity >= SEVERE)).sum()),
        by_type=rates(frame, "matrix"),
        by_layer=rates(frame, "layer"),
        by_depth=rates(frame, "depth"),
        balance=kind_balance(frame),
        clustering=[
            axis_clustering(frame, axis, min_severity=level, **options)
            for level in ((0,) if min_severity >= SEVERE else (0, SEVERE))
            for axis in AXES
        ],
        complementarity=[complementarity(frame, axis, **options) for axis in AXES],
        rearranged=[rearranged_asymmetry(frame, name, **options) for name in types],
        v_columns=shared_lines(v_frame, v_frame.changed, "col", extents, **options),
        writer_rows=shared_lines(frame, writers, "row", extents, **options),
        writers_by_type=rates(dataclasses.replace(frame, changed=writers), "matrix"),
    )


def analyze(
    path: str | Path,
    screen_name: str | None = None,
    probe_names: Sequence[str] | None = None,
    *,
    min_severity: int = ANY_CHANGE,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    against: str | None = None,
    text_severity: bool = False,
    effect_grade: EffectGrade | None = None,
) -> ScreenAnalysis:
    """The paper's quantities; a phenotype is a changed output graded at least `min_severity`
    on some chosen text probe. With `against` (the name of an element screen of the same
    model, such as a random sample), also every whole line of elements this screen tested
    against that screen's elements of the same matrix (`line_enrichment`). A mutation's
    severity is its worst probe's, the choice assay included unless `text_severity`. With
    `effect_grade`, phenotypes are read from effect sizes (`grades`) instead."""
    screen = pick_screen(path, screen_name)

    def sites(chosen: ScreenSummary) -> SiteFrame:
        loaded = load_sites(path, chosen, probe_names, choice_severity=not text_severity)
        graded = loaded.with_min_severity(min_severity)
        return effect_grade.apply(graded) if effect_grade else graded

    frame = sites(screen)
    margin = effect_grade.robust_margin if effect_grade else None
    margin = ROBUST_MARGIN if margin is None else margin
    probes = frame.text_probes(probe_names)
    ties = (
        [t for t in probe_ties(path, screen.screen_id, margin) if t.probe in probes]
        if frame.effects_recorded
        else None
    )
    styled = load_styled(path, screen, probe_names)
    shapes = [
        analyze_shape(
            group,
            shape,
            styled,
            min_severity=min_severity,
            permutations=permutations,
            seed=seed,
            graded_writers=effect_grade is not None,
        )
        for shape, group in shape_groups(frame).items()
    ]
    return ScreenAnalysis(
        screen=screen,
        probes=probes,
        min_severity=min_severity,
        text_severity=text_severity or not frame.has_choice_probe(),
        permutations=permutations,
        seed=seed,
        shapes=shapes,
        writers=writer_groups(styled, frame.probes),
        lines=None
        if against is None
        else _lines_against(
            frame, sites(pick_screen(path, against)), permutations=permutations, seed=seed
        ),
        effect_grade=effect_grade.describe() if effect_grade else None,
        ties=ties,
        tie_margin=margin,
        stripes=stripe_report(
            "the screen's phenotype",
            frame_stripes(frame),
            known_super_weights(path, screen.model),
        ),
    )


def _lines_against(frame: SiteFrame, other: SiteFrame, **options: int) -> LineEnrichmentResult:
    if other.screen.screen_id == frame.screen.screen_id:
        raise MutatuiError(
            f"cannot compare screen {other.screen.name!r} with itself; give another element screen"
        )
    lines, elements = (shape_groups(sites).get(ELEMENT) for sites in (frame, other))
    for name, sites in ((frame.screen.name, lines), (other.screen.name, elements)):
        if sites is None:
            raise MutatuiError(f"screen {name!r} has no element sites; lines compare elements")
    return line_enrichment(lines, elements, **options)
