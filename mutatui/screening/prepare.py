"""A screen's start-up, before its first batch: the plan built and checked, the probes' baselines
and assays measured, the engine chosen and its near-tie tolerances calibrated (or a resumed
screen's adopted), with the notes a user sees about how it will compute."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import transformers

from mutatui.engine.decoding import Generation, decode_tokens, encode_prompt
from mutatui.engine.machine import half_tiles_here
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel, computed_as, device_name
from mutatui.engine.mutations import Mutation
from mutatui.engine.questions import naive_choices, render_question
from mutatui.engine.steps import StepHook, no_steps
from mutatui.errors import MutatuiError
from mutatui.exact.screener import Screener
from mutatui.exact.tolerance import CALIBRATION_MUTATIONS, Tolerance, spread
from mutatui.screening.choice import score
from mutatui.screening.plan import Plan, Shard
from mutatui.screening.probes import ChoiceProbe, load_choice_probe
from mutatui.screening.samplers import sampler_notes
from mutatui.screening.spec import ScreenSpec
from mutatui.store.engines import EngineRecord


@dataclass
class Assays:
    """The probes of a screen as the loop needs them: prompt ids, baselines and questions."""

    prompts: list[list[int]]
    baselines: list[Generation]
    baseline_texts: list[str]
    choice: ChoiceProbe | None
    baseline_answers: list[int] | None
    choice_digest: str | None = None
    """sha256 of the questions as the model sees them (token ids) and their answers: a resume
    or merge must ask exactly the same."""
    margins: list[list[float]] | None = None
    """Per text probe, the unmutated model's top-1 minus top-2 logit at each baseline step."""

    @property
    def choice_probe_id(self) -> int:
        return len(self.prompts)

    def probe_rows(self, spec: ScreenSpec) -> list[dict[str, object]]:
        """The `probes` rows: text probes 0..n-1 with their baselines, then the choice probe."""
        rows: list[dict[str, object]] = [
            {
                "probe_id": index,
                "name": probe.name,
                "kind": "text",
                "style": probe.style,
                "prompt": probe.prompt,
                "baseline_text": text,
                "baseline_tokens": baseline.tokens,
                "margins": self.margins[index] if self.margins else None,
            }
            for index, (probe, baseline, text) in enumerate(
                zip(spec.probes, self.baselines, self.baseline_texts, strict=True)
            )
        ]
        if self.choice is not None and self.baseline_answers is not None:
            rows.append(
                {
                    "probe_id": self.choice_probe_id,
                    "name": self.choice.name,
                    "kind": "choice",
                    "prompt": f"{self.choice.source} (sha256 {self.choice_digest})",
                    "baseline_score": score(self.choice.questions, self.baseline_answers),
                    "questions": len(self.choice.questions),
                }
            )
        return rows


def measure_assays(
    lm: LoadedModel, catalog: MatrixCatalog, screener: Screener, spec: ScreenSpec
) -> Assays:
    prompts = [encode_prompt(lm, probe.prompt, chat=spec.chat) for probe in spec.probes]
    baselines = [screener.baseline(ids) for ids in prompts]
    choice = load_choice_probe(spec.choice) if spec.choice else None
    answers = naive_choices(lm, catalog, choice.questions, None, chat=spec.chat) if choice else None
    digest = None
    if choice is not None:
        rendered = [(render_question(lm, q, chat=spec.chat), q.answer) for q in choice.questions]
        digest = hashlib.sha256(repr(rendered).encode()).hexdigest()[:16]
    return Assays(
        prompts=prompts,
        baselines=baselines,
        baseline_texts=[decode_tokens(lm, b.tokens) for b in baselines],
        choice=choice,
        baseline_answers=answers,
        choice_digest=digest,
        margins=[screener.baseline_margins(p, b) for p, b in zip(prompts, baselines, strict=True)],
    )


def records_effects(spec: ScreenSpec) -> bool:
    """Whether the screen records effect sizes: as its spec says, else yes (on SmolLM2 they
    add 13-25% to the engine's time on random elements: docs/design/effects.md)."""
    return True if spec.effects is None else spec.effects


def make_screener(
    lm: LoadedModel, catalog: MatrixCatalog, spec: ScreenSpec, batch_size: int | None
) -> Screener:
    """The engine for a spec: its decoding, the batch asked for, effect sizes as it records."""
    return Screener(
        lm, catalog, spec.decoding, batch_size=batch_size, effects=records_effects(spec)
    )


CALIBRATION_SHARE = 64
"""At most one mutation in this many of a short plan is calibrated (but at least 2): each costs
about one naive run, so a short screen is not dominated by its calibration (the dtype's floor
still holds)."""

NEAR_TIE_SHARE = 0.1
"""Above this share of the baseline's decisions being near ties, a screen says how it settles
them (the lockstep decoder, the naive path) and names the float32 arithmetic."""


def calibration_sample(plan: Plan, shard: Shard) -> list[Mutation]:
    """Up to `CALIBRATION_MUTATIONS` mutations evenly spread over the shard's plan, fewer for
    a short plan (`CALIBRATION_SHARE`)."""
    ids = list(shard.ids(len(plan)))
    count = min(CALIBRATION_MUTATIONS, max(2, len(ids) // CALIBRATION_SHARE))
    return [plan.mutation_at(i) for i in spread(ids, count)]


def prepare_engine(
    lm: LoadedModel,
    screener: Screener,
    assays: Assays,
    sample: Sequence[Mutation],
    stored: EngineRecord | None = None,
) -> EngineRecord:
    """Measure the screener's near-tie tolerances on `sample` against the first text probe (or
    keep `stored` ones, measured by this screen before on the same device, dtype and
    arithmetic), and describe how the screen computes."""
    device = device_name(lm.device)
    dtype = str(lm.dtype).removeprefix("torch.")
    arithmetic = str(lm.compute_dtype).removeprefix("torch.")
    arithmetic = "native" if lm.compute_dtype == lm.dtype else arithmetic
    if stored is not None and (stored.dtype, stored.arithmetic) != (dtype, arithmetic):
        raise MutatuiError(
            f"this screen was computed with {stored.describe()}; resume it with the same "
            f"--dtype {stored.dtype} and --arithmetic {stored.arithmetic}"
        )
    prompt, baseline = (assays.prompts[0], assays.baselines[0]) if assays.prompts else ([], None)
    if stored is not None and stored.device == device:
        screener.adopt_tolerances(
            Tolerance(
                stored.element_tolerance,
                stored.block_tolerance,
                stored.measured_element,
                stored.measured_block,
                stored.calibration_mutations,
            )
        )
    elif baseline is not None:
        screener.calibrate(prompt, baseline, sample)
    tolerance = screener.tolerances
    return EngineRecord(
        path=screener.path,
        dtype=dtype,
        arithmetic=arithmetic,
        device=device,
        precision=computed_as(lm.model),
        element_tolerance=tolerance.element,
        block_tolerance=tolerance.block,
        measured_element=tolerance.measured_element,
        measured_block=tolerance.measured_block,
        calibration_mutations=tolerance.mutations,
        baseline_near_ties=(
            screener.baseline_near_ties(prompt, baseline) if baseline is not None else None
        ),
        versions=f"torch {torch.__version__}, transformers {transformers.__version__}",
    )


@dataclass
class Prepared:
    """A screen ready to grade: its matrices and plan, its engine, its probes measured (the
    baselines), and how it computes."""

    catalog: MatrixCatalog
    plan: Plan
    screener: Screener
    assays: Assays
    engine: EngineRecord


def prepare_screen(
    lm: LoadedModel,
    spec: ScreenSpec,
    shard: Shard,
    batch_size: int | None,
    *,
    arithmetic: str | None = None,
    stored: EngineRecord | None = None,
    note: Callable[[str], None] = lambda _line: None,
    steps: StepHook = no_steps,
) -> Prepared:
    """Everything a screen (or its estimate) does before its first batch: the plan, the engine,
    the baselines, the tolerances (or `stored` ones of a resumed screen), each note said.

    Where native half precision would run near the naive loop's speed (nearly every decision
    a near tie, and the lockstep decoder cannot run here or did not hold against the naive
    path), and `arithmetic` was not pinned, the screen says so in one line and computes the
    same weights in float32 arithmetic (exact against generate in float32 arithmetic). A
    resumed screen keeps the arithmetic it was computed in."""
    resumed_in_float32 = stored is not None and stored.arithmetic == "float32"
    if arithmetic is None and resumed_in_float32 and lm.compute_dtype != torch.float32:
        lm.compute_in_float32()
    catalog, plan, screener, assays = _measured(lm, spec, batch_size, shard, steps)
    sample = calibration_sample(plan, shard)
    steps(PREPARING, 1, 3)
    if arithmetic is None and stored is None:
        reason = slow_native_reason(screener, assays, sample)
        if reason is not None:
            dtype = str(lm.dtype).removeprefix("torch.")
            note(
                f"native {dtype} would run near the naive loop's speed here ({reason}): the "
                f"same {dtype} weights are computed in float32 arithmetic instead, exact "
                "against generate in float32 arithmetic (--arithmetic native keeps native)"
            )
            lm.compute_in_float32()
            catalog, plan, screener, assays = _measured(lm, spec, batch_size, shard, steps)
            sample = calibration_sample(plan, shard)
    for line in sampler_notes(spec.sites, plan.matrices):
        note(line)
    if screener.fallback is not None:
        note(screener.fallback)
    steps(PREPARING, 2, 3)
    engine = prepare_engine(lm, screener, assays, sample, stored)
    steps(PREPARING, 3, 3)
    for line in engine_notes(engine, assays, screener):
        note(line)
    return Prepared(catalog, plan, screener, assays, engine)


LARGEST_RUN = 10**9
"""The most mutations one process is given: a larger plan is split with --shard (or Ray)."""


PREPARING = "preparing: baselines, assays, tolerances"
"""The start-up's step: its plan built and checked (0/3), the probes measured, the engine
chosen, the tolerances calibrated (3/3)."""


def _measured(
    lm: LoadedModel, spec: ScreenSpec, batch_size: int | None, shard: Shard, steps: StepHook
) -> tuple[MatrixCatalog, Plan, Screener, Assays]:
    catalog = MatrixCatalog(lm.model)
    plan = spec.plan(catalog)  # sized per matrix arithmetically: nothing is listed
    if shard.size(len(plan)) > LARGEST_RUN:
        parts = -(-len(plan) // LARGEST_RUN)
        raise MutatuiError(
            f"the spec plans {len(plan):,} mutations, more than one process is given "
            f"({LARGEST_RUN:,}); split it with --shard K/{parts} (or more parts), or --ray"
        )
    screener = make_screener(lm, catalog, spec, batch_size)
    steps(PREPARING, 0, 3)  # only now: a plan refused says one line, and nothing before it
    return catalog, plan, screener, measure_assays(lm, catalog, screener, spec)


def slow_native_reason(
    screener: Screener, assays: Assays, sample: Sequence[Mutation]
) -> str | None:
    """Why native half precision would run near the naive loop's speed: many of the first
    text probe's baseline decisions are near ties (more than `NEAR_TIE_SHARE`), and they would
    not go to a lockstep decoder that runs fast here and holds against the naive path on
    `sample` (the layered engine checks each mutant that reaches one on the naive path; on a
    CPU without half-precision matrix tiles the decoder's batches are no faster than lone
    products: 1.5x the naive loop on SmolLM2 under an AVX2 cap, where it runs and holds). None
    when native is fast here, or the model computes in float32."""
    if screener.lm.compute_dtype == torch.float32 or not assays.prompts:
        return None
    if screener.runner is None:
        return None
    prompt, baseline = assays.prompts[0], assays.baselines[0]
    steps = len(baseline.tokens) + 1
    ties = screener.baseline_near_ties(prompt, baseline)
    if ties <= NEAR_TIE_SHARE * steps:
        return None
    if not screener.ties_everywhere(prompt, baseline):
        return (
            f"{ties} of the first probe's {steps} baseline decisions are near ties, and each "
            "mutant that reaches one is checked on the naive path"
        )
    dtype = str(screener.lm.compute_dtype).removeprefix("torch.")
    if screener.lm.device.type == "cpu" and not half_tiles_here(dtype):
        return (
            f"nearly every decision is a near tie, and this processor has no {dtype} matrix "
            "tiles (AMX), so the lockstep decoder's batches are no faster than lone products"
        )
    reason = screener.lockstep_check(prompt, baseline, sample)
    return None if reason is None else f"the lockstep decoder: {reason}"


def engine_notes(engine: EngineRecord, assays: Assays, screener: Screener) -> list[str]:
    """What a user should know before the run: near ties everywhere, and how they are settled
    (the lockstep decoder on the first text probe, or why it cannot run there)."""
    notes = []
    steps = len(assays.baselines[0].tokens) + 1 if assays.baselines else 0
    ties = engine.baseline_near_ties or 0
    if steps and ties > NEAR_TIE_SHARE * steps:
        obstacle = screener.lockstep_obstacle(assays.prompts[0])
        greedy = (
            "Greedy text probes decode in lockstep batches that compute what the naive path "
            "computes (held against it logit for logit on the first mutants)"
            if obstacle is None
            else f"The lockstep decoder cannot run here ({obstacle}): text probes run one "
            "mutant at a time on the naive path, near its speed"
        )
        notes.append(
            f"{engine.dtype} in {engine.arithmetic} arithmetic: {ties} of the first probe's "
            f"{steps} baseline decisions are near ties (margin under "
            f"{engine.element_tolerance:.2g}). {greedy}; multiple-choice questions and sampled "
            "decoding reaching a near tie are checked on the naive path, near its speed. "
            f"--arithmetic float32 computes the same {engine.dtype} weights in float32 (twice "
            "their memory), exact against generate in float32 arithmetic, on the fast path"
        )
    return notes
