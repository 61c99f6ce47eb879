"""The effect sizes of a screen's mutants on a text probe (`exact.effects` defines them): from
the layered engine's teacher-forced passes, each mutant against its pass's control, or, for a
model without that engine, one lone forward pass per mutant against the unmutated one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace

import torch

from mutatui.engine.decoding import Decoding, Generation
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation, mutated
from mutatui.exact.effects import (
    Effect,
    EffectMeter,
    Measured,
    effect,
    margins_of,
    measure_logits,
)
from mutatui.exact.layers import LayerRunner, Pass, layer_batches
from mutatui.exact.noise import NoiseFloor
from mutatui.exact.outcome import TextOutcome
from mutatui.exact.probes import ProbeTraces, TracedText
from mutatui.exact.teacher import eos_target, teacher_input


class EffectSizes:
    """Measures effect sizes for one screener: `pass_rows(positions)` says how many mutants a
    teacher-forced pass over that many positions holds."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        decoding: Decoding,
        runner: LayerRunner | None,
        traces: ProbeTraces,
        pass_rows: Callable[[int], int],
    ) -> None:
        self.lm = lm
        self.catalog = catalog
        self.decoding = decoding
        self.runner = runner
        self.traces = traces
        self.pass_rows = pass_rows
        self.meter = EffectMeter(runner.architecture) if runner is not None else None
        """Measures effect sizes against each pass's control (the layered engine)."""
        self._lone_noise = NoiseFloor()
        """The controls of the lone path: the unmutated pass each mutant is compared with."""

    @property
    def noise(self) -> NoiseFloor:
        """The noise floor of every effect size measured: how far the controls strayed from
        the traced baseline (`exact.effects`)."""
        return self.meter.noise if self.meter is not None else self._lone_noise

    def margins(self, prompt: list[int], baseline: Generation) -> torch.Tensor:
        """The unmutated model's top-1 minus top-2 logit at each step of its continuation."""
        if self.runner is not None:
            return self.traces.text(prompt, baseline).traced.margins
        return margins_of(self.forward_logits(prompt, baseline, None))

    def of_pass(
        self, probe: TracedText, batch: Sequence[tuple[int, Mutation]], run: Pass
    ) -> dict[int, Measured]:
        """The measurements of one pass's mutants (`batch`, by index), against its control."""
        rows = self.meter.measure_pass(probe.traced, run)
        return {index: row for (index, _), row in zip(batch, rows, strict=True)}

    def measure(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> dict[int, Measured]:
        """The measurements alone, without decoding: by teacher-forced passes, or on the naive
        path for a model without the layered engine."""
        if self.runner is None:
            return self._measure_lone(prompt, baseline, mutations)
        probe = self.traces.text(prompt, baseline)
        decisions = slice(probe.reference.prompt_length - 1, None)
        measured: dict[int, Measured] = {}
        for batch in layer_batches(mutations, self.pass_rows(probe.trace.final.shape[0])):
            run = self.runner.run_from(probe.trace, [m for _, m in batch], decisions, control=True)
            measured.update(self.of_pass(probe, batch, run))
        return measured

    def effects_of(
        self,
        prompt: list[int],
        baseline: Generation,
        mutations: Sequence[Mutation],
        diverge_at: Sequence[int | None],
    ) -> list[Effect]:
        """The effect sizes of mutations whose outcomes are known already (their first
        differing tokens): teacher forcing alone, no decoding (effect sizes for a screen
        recorded without them)."""
        with torch.inference_mode():
            measured = self.measure(prompt, baseline, mutations)
            margins = self.margins(prompt, baseline)
        return [
            effect(measured[index], margins, divergence)
            for index, divergence in enumerate(diverge_at)
        ]

    def forward_logits(
        self, prompt: list[int], baseline: Generation, mutation: Mutation | None
    ) -> torch.Tensor:
        """The logits at the decision steps of one forward pass over the prompt and the
        baseline's continuation, with the weight edited: the naive path of effect sizes."""
        sequence = teacher_input(prompt, baseline, self.decoding)
        device = self.catalog.parameter(0, self.catalog.names[0]).device
        ids = torch.tensor([sequence], device=device)
        with mutated(self.catalog, mutation) if mutation else nullcontext():
            return self.lm.model(input_ids=ids).logits[0, len(prompt) - 1 :]

    def _targets(self, baseline: Generation, clean: torch.Tensor) -> list[int]:
        """The baseline's choice at each decision step (its EOS at a final stop)."""
        targets = list(baseline.tokens)
        if baseline.stopped:
            targets.append(eos_target(clean[-1], self.lm.eos_token_ids))
        return targets

    def _measure_lone(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> dict[int, Measured]:
        """The measurements on the naive path (for models without the layered engine): each
        mutant's forward pass with the weight edited, alone, against the unmutated pass of the
        same shape (its control, which is the traced baseline itself: no noise)."""
        clean = self.forward_logits(prompt, baseline, None)
        targets = torch.tensor(self._targets(baseline, clean))
        measured: dict[int, Measured] = {}
        for index, mutation in enumerate(mutations):
            logits = self.forward_logits(prompt, baseline, mutation)
            measured[index] = measure_logits(clean, targets, [logits])[0]
            self._lone_noise = self._lone_noise.add(0.0, 0.0)
        return measured


def with_effects(
    margins: torch.Tensor, outcomes: list[TextOutcome], measured: dict[int, Measured]
) -> list[TextOutcome]:
    """The outcomes, each with the effect sizes of its measurement (by index) where it has one."""
    return [
        replace(outcome, effect=effect(measured[index], margins, outcome.diverge_at))
        if index in measured
        else outcome
        for index, outcome in enumerate(outcomes)
    ]
