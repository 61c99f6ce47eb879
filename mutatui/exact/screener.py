"""The screen engine: many mutations against one probe, each outcome exactly what editing that
site and generating alone gives, far faster than doing that. The `Screener` chooses the path
and holds what the paths share; each path is a room of its own.

For a text probe (Llama-family models), the layered path, here:
1. the baseline's prompt and continuation are traced once through the unmutated model, keeping
   every layer's input, keys and values (`probes`);
2. mutations are sorted by layer and batched (one per batch row, each a per-sample delta on
   its matrix's output); a row of layer L joins its batch at L, entering with the baseline's
   residual stream at L's input, so it runs only layers L and up, with teacher forcing;
3. each mutant's first step choosing differently from the baseline is found (`teacher.judge`),
   mostly without computing logits;
4. only diverged mutants are decoded on, from where they diverge, together (`onward`).
A mutant with a near tie anywhere on that path (or a NaN score) is settled on the naive path:
edit the weight, generate alone, restore. Where nearly every decision is a near tie (native
half precision), greedy probes are decoded instead by the lockstep decoder (`lockstep`), which
computes the naive path's own floats for a whole batch, once a sample held against it. Other
architectures decode every mutant in batches (`generate_exact`), which is exact too, only slower.

Effect sizes come from the same teacher-forced passes (`measure`); choice questions have their
own path (`choice`); how many mutants a batch holds is `sizing`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mutatui.engine.architecture import unsupported_reason
from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, Generation, generate_exact, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel, pin_precision
from mutatui.engine.mutations import Mutation
from mutatui.engine.questions import ChoiceQuestion
from mutatui.exact.choice import ChoicePath
from mutatui.exact.effects import Effect
from mutatui.exact.layered_path import LayeredPath
from mutatui.exact.layers import LayerRunner
from mutatui.exact.lockstep import CHECKED_MUTANTS, LockstepPath
from mutatui.exact.measure import EffectSizes, with_effects
from mutatui.exact.noise import NoiseFloor
from mutatui.exact.onward import Diverged
from mutatui.exact.outcome import TextOutcome
from mutatui.exact.probes import ProbeTraces
from mutatui.exact.replay import GenerateTrace
from mutatui.exact.sizing import default_batch_size, pass_rows
from mutatui.exact.teacher import Reference, teacher_input
from mutatui.exact.tolerance import (
    Tolerance,
    floor_tolerance,
    from_measurements,
    lone_logits,
    relative_difference,
)

NAIVE_SHARE = 0.5
"""When more than this share of a probe's baseline decisions are near ties, its mutants go
to the lockstep decoder, the naive path batched (see `Screener.ties_everywhere`)."""


def _up_to_divergence(reference: Reference, scores: torch.Tensor) -> int:
    """How many steps of a mutant's teacher-forced scores the engine reads: up to and including
    its first choice different from the baseline's."""
    for step, token in enumerate(scores.argmax(dim=-1).tolist()):
        if not reference.agrees(step, token):
            return step + 1
    return scores.shape[0]


class Screener:
    """Screens mutations of one model under one decoding; results equal the naive path's."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        decoding: Decoding,
        *,
        batch_size: int | None = None,
        effects: bool = False,
    ) -> None:
        self.lm = lm
        self.effects = effects
        """Whether text outcomes carry their effect sizes (`exact.effects`)."""
        self.catalog = catalog
        self.decoding = decoding
        self.batch_size = max(1, batch_size or default_batch_size(lm.model))
        """Mutations per batch (`default_batch_size` when none is given; `shrink_batch`)."""
        reason = unsupported_reason(lm.model)
        self.runner = LayerRunner(lm.model, catalog) if reason is None else None
        self.fallback: str | None = (
            None
            if reason is None
            else f"{reason}: this screen runs on the slower batched path (exact, without "
            "layer reuse or teacher forcing)"
        )
        """Why the model is not on the fast path, in one line (None when it is)."""
        pin_precision()  # whatever the process set since loading: the naive path pins it too
        self.traces = ProbeTraces(lm, catalog, decoding, self.runner)
        self._tie_verdicts: dict[tuple, bool] = {}
        self.tolerances: Tolerance = floor_tolerance(lm.compute_dtype)
        """Near-tie tolerances: the dtype's floor until `calibrate` measures them, or a
        resumed screen's are adopted (`adopt_tolerances`)."""
        self.lockstep_path = (
            LockstepPath(lm, catalog, decoding, self.runner.architecture, self.traces)
            if self.runner is not None
            else None
        )
        """The lockstep decoder where most decisions are near ties (the layered engine)."""
        self.measure = EffectSizes(lm, catalog, decoding, self.runner, self.traces, self.pass_rows)
        """Effect sizes, each against its pass's control."""
        self.choice = ChoicePath(
            lm, catalog, self.runner, self.traces, self.pass_rows, self.tolerance
        )
        self.layered_path = (
            LayeredPath(
                lm,
                catalog,
                decoding,
                self.runner,
                self.traces,
                self.measure,
                self.pass_rows,
                self.tolerance,
            )
            if self.runner is not None
            else None
        )
        """Text outcomes by teacher forcing and onward decoding (the layered engine)."""

    def pass_rows(self, positions: int) -> int:
        """Mutations per teacher-forced pass over `positions` tokens (`sizing.pass_rows`)."""
        if self.runner is None:
            return self.batch_size
        return pass_rows(self.batch_size, self.runner.head_weight.device, positions)

    def shrink_batch(self) -> bool:
        """Halve the batch (the device ran out of memory); False when it is one row already."""
        if self.batch_size == 1:
            return False
        self.batch_size //= 2
        return True

    def adopt_tolerances(self, tolerances: Tolerance) -> None:
        """Use near-tie tolerances measured before (a resumed screen's, on the same device)."""
        self.tolerances = tolerances

    def tolerance(self, mutation: Mutation) -> float:
        """The near-tie margin below which this mutant is settled on the naive path."""
        return self.tolerances.of(mutation)

    def calibrate(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> Tolerance:
        """Measure how far this engine's teacher-forced logits are from the naive path's, for
        `mutations` and the unmutated model on one probe, and take the tolerance from that
        (`exact.tolerance`). Returns it; the screener uses it from now on. The batched path
        keeps the dtype's floor."""
        if self.runner is None or not mutations:
            return self.tolerances
        chooser = self.traces.chooser()
        sequence = teacher_input(prompt, baseline, self.decoding)
        with torch.inference_mode():
            probe = self.traces.text(prompt, baseline)
            ordered = sorted(mutations, key=lambda mutation: mutation.site.layer)
            decisions = slice(len(prompt) - 1, None)
            final = self.runner.run_from(probe.trace, ordered, decisions).final
            rows = [(None, probe.reference.final), *zip(ordered, final, strict=True)]
            elements, blocks = [], []
            for mutation, row_final in rows:
                lone = lone_logits(self.lm, self.catalog, mutation, sequence, len(prompt))
                steps = list(range(lone.shape[0]))
                lone_scores = chooser.scores(lone, steps)
                batched = chooser.scores(self.runner.logits(row_final), steps)
                used = _up_to_divergence(probe.reference, lone_scores)
                difference = relative_difference(batched[:used], lone_scores[:used])
                is_element = mutation is None or mutation.site.is_element
                (elements if is_element else blocks).append(difference)
        self.tolerances = from_measurements(self.lm.compute_dtype, elements, blocks)
        return self.tolerances

    def baseline_near_ties(self, prompt: list[int], baseline: Generation) -> int:
        """How many of the baseline's decisions on `prompt` are near ties at the element
        tolerance: a mutant that reaches one unchanged is checked on the naive path."""
        if self.runner is None:
            return 0
        with torch.inference_mode():
            reference = self.traces.text(prompt, baseline).reference
        margins = reference.gaps / (1 + reference.tops.abs())
        return int((margins < self.tolerances.element).sum())

    @property
    def head_norm(self) -> float:
        """The largest norm of an output head row (the layered engine)."""
        return self.layered_path.head_norm

    @property
    def observe_onward(self) -> Callable[[Diverged, torch.Tensor], None] | None:
        """Sees every onward-decoding step's logits per row (for measurements only)."""
        return self.layered_path.observe_onward if self.layered_path is not None else None

    @observe_onward.setter
    def observe_onward(self, observe: Callable[[Diverged, torch.Tensor], None] | None) -> None:
        self.layered_path.observe_onward = observe

    @property
    def layered(self) -> bool:
        """True when this model gets the layer-reusing teacher-forced engine."""
        return self.runner is not None

    @property
    def path(self) -> str:
        """Which engine path runs, in words."""
        if self.runner is None:
            return "the batched path"
        return f"the fast path ({self.runner.architecture.family.name})"

    def baseline(self, prompt: list[int]) -> Generation:
        """The unmutated model's continuation of `prompt`, on the naive (reference) path; for
        greedy decoding its `generate` is recorded as it runs, for the naive checks' replays."""
        if not GenerateTrace.supports(self.lm, self.decoding):
            return naive_generate(self.lm, self.catalog, prompt, None, self.decoding)
        return self.traces.generated(prompt).generation

    def screen_text(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> list[TextOutcome]:
        """Each mutation's continuation of `prompt`, in the order given."""
        if not mutations:
            return []
        with torch.inference_mode():
            if self.layered_path is not None and not self.ties_everywhere(prompt, baseline):
                # the effect sizes come from the teacher-forced passes decoding runs anyway
                outcomes, measured = self.layered_path.screen(
                    prompt, baseline, mutations, self.batch_size, self.effects
                )
            else:
                if self.lockstep_path is None:
                    outcomes = self._screen_text_batched(prompt, baseline, mutations)
                else:
                    outcomes = self.lockstep_path.decode(
                        prompt, baseline, mutations, self.batch_size
                    )
                measured = self.measure.measure(prompt, baseline, mutations) if self.effects else {}
            if not measured:
                return outcomes
            return with_effects(self.measure.margins(prompt, baseline), outcomes, measured)

    def screen_choice(
        self,
        questions: Sequence[ChoiceQuestion],
        mutations: Sequence[Mutation],
        *,
        chat: bool = True,
    ) -> list[list[int]]:
        """The chosen choice index per question (`NO_ANSWER` when non-finite), per mutation."""
        return self.choice.answers(questions, mutations, chat=chat)

    def effects_of(
        self,
        prompt: list[int],
        baseline: Generation,
        mutations: Sequence[Mutation],
        diverge_at: Sequence[int | None],
    ) -> list[Effect]:
        """The effect sizes of mutations whose outcomes are known already: teacher forcing
        alone, no decoding (effect sizes for a screen recorded without them)."""
        return self.measure.effects_of(prompt, baseline, mutations, diverge_at)

    @property
    def noise(self) -> NoiseFloor:
        """The noise floor of every effect size this screener measured (`exact.effects`)."""
        return self.measure.noise

    def baseline_margins(self, prompt: list[int], baseline: Generation) -> list[float]:
        """The unmutated model's top-1 minus top-2 logit at each step of its continuation."""
        with torch.inference_mode():
            return self.measure.margins(prompt, baseline).tolist()

    def lockstep_check(
        self, prompt: list[int], baseline: Generation, sample: Sequence[Mutation]
    ) -> str | None:
        """Before a screen relies on it: why the lockstep decoder cannot decode `prompt` here,
        or did not hold against the naive path on `sample`'s first mutants (None when it ran
        and held)."""
        obstacle = self.lockstep_obstacle(prompt)
        if obstacle is not None:
            return obstacle
        with torch.inference_mode():
            self.lockstep_path.decode(
                prompt, baseline, list(sample)[:CHECKED_MUTANTS], self.batch_size
            )
        return None if self.lockstep == "exact" else self.lockstep

    def lockstep_obstacle(self, prompt: list[int]) -> str | None:
        """Why the lockstep decoder cannot run on `prompt` here (None when it can; whether its
        floats are the naive path's is checked when it first runs)."""
        if self.lockstep_path is None:
            return self.fallback
        if self.lockstep_path.decoder(prompt) is None:
            return self.lockstep
        return None

    @property
    def lockstep(self) -> str | None:
        """How the lockstep decoder (the naive path batched) fared last: None until asked,
        "exact" when it ran, else why it did not."""
        return self.lockstep_path.state if self.lockstep_path is not None else None

    @property
    def lockstep_check_seconds(self) -> float:
        """Time spent holding the lockstep decoder against the naive path: once per screen, not
        per mutation (`screening.estimate` leaves it out of the rate)."""
        return self.lockstep_path.check_seconds if self.lockstep_path is not None else 0.0

    def ties_everywhere(self, prompt: list[int], baseline: Generation) -> bool:
        """Whether most of the baseline's decisions are near ties (native half precision): then
        nearly every mutant would be checked naively after the engine's own work, and the
        lockstep decoder (or, where it cannot run, the naive path alone) is the cheaper exact
        way."""
        key = (tuple(prompt), self.tolerances.element)
        if key not in self._tie_verdicts:
            steps = len(baseline.tokens) + (1 if baseline.stopped else 0)
            ties = self.baseline_near_ties(prompt, baseline)
            self._tie_verdicts[key] = ties > NAIVE_SHARE * max(steps, 1)
        return self._tie_verdicts[key]

    def _screen_text_batched(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> list[TextOutcome]:
        """The fallback for architectures without layer reuse: batched exact decoding."""
        outcomes: list[TextOutcome] = []
        for start in range(0, len(mutations), self.batch_size):
            chunk = list(mutations[start : start + self.batch_size])
            for result in generate_exact(self.lm, self.catalog, prompt, chunk, self.decoding):
                outcomes.append(
                    TextOutcome(
                        result.tokens,
                        result.stopped,
                        result.nonfinite,
                        result.settled_naively,
                        first_divergence(baseline.tokens, result.tokens),
                    )
                )
        return outcomes
