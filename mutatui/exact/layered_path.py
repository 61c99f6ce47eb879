"""The layered path of a text probe: mutants batched by layer, each joining its batch at its
own layer with the baseline's residual stream there, teacher-forced over the baseline's
continuation to find where it first chooses otherwise (`teacher.judge`), and decoded on from
there together (`onward`). A mutant with a near tie anywhere on that path is checked on the
naive path (`Screener` describes the whole engine)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, Generation, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation
from mutatui.exact.effects import Measured
from mutatui.exact.layers import LayerRunner, layer_batches
from mutatui.exact.measure import EffectSizes
from mutatui.exact.onward import Diverged, decode_onward
from mutatui.exact.outcome import TextOutcome
from mutatui.exact.probes import ProbeTraces, TracedText
from mutatui.exact.replay import GenerateTrace
from mutatui.exact.teacher import Verdict, judge


def _decisions(tokens: Sequence[int], stopped: bool, steps: int) -> list[int | None]:
    """The first `steps` decisions of a continuation: its tokens, then None for its EOS."""
    return [*tokens, *([None] if stopped else [])][:steps]


def _row_states(
    states: dict[int, torch.Tensor], row: int, first_layer: int
) -> dict[int, torch.Tensor]:
    """One batch row's keys (or values) for the layers it ran, copied out of the batch."""
    return {
        layer: tensor[row : row + 1].clone()
        for layer, tensor in states.items()
        if layer >= first_layer
    }


class LayeredPath:
    """Text outcomes on the layered engine: `pass_rows` says how many mutants a pass over that
    many positions holds, `tolerance` a mutant's near-tie margin; with `effects`, the effect
    sizes come from the same passes (`measure`) when asked for."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        decoding: Decoding,
        runner: LayerRunner,
        traces: ProbeTraces,
        measure: EffectSizes,
        pass_rows: Callable[[int], int],
        tolerance: Callable[[Mutation], float],
    ) -> None:
        self.lm = lm
        self.catalog = catalog
        self.decoding = decoding
        self.runner = runner
        self.traces = traces
        self.measure = measure
        self.pass_rows = pass_rows
        self.tolerance = tolerance
        self.observe_onward: Callable[[Diverged, torch.Tensor], None] | None = None
        """Sees every onward-decoding step's logits per row (for measurements only)."""
        self.head_norm = float(runner.head_weight.detach().float().norm(dim=1).max())
        """The largest norm of an output head row: bounds how far a logit can move."""

    def screen(
        self,
        prompt: list[int],
        baseline: Generation,
        mutations: Sequence[Mutation],
        batch_size: int,
        effects: bool,
    ) -> tuple[list[TextOutcome], dict[int, Measured]]:
        """The outcomes, and the effect measurements when the screener records them (taken from
        the same teacher-forced passes)."""
        probe = self.traces.text(prompt, baseline)
        reference = probe.reference
        outcomes: list[TextOutcome | None] = [None] * len(mutations)
        measured: dict[int, Measured] = {}
        pending: list[Diverged] = []
        decisions = slice(reference.prompt_length - 1, None)
        rows = self.pass_rows(probe.trace.final.shape[0])
        for batch in layer_batches(mutations, rows):
            run = self.runner.run_from(
                probe.trace, [m for _, m in batch], decisions, control=effects
            )
            final, kv = run.final, run.kv
            if effects:
                measured.update(self.measure.of_pass(probe, batch, run))
            tolerances = torch.tensor([self.tolerance(m) for _, m in batch])
            verdicts = judge(
                reference,
                final,
                self.runner.architecture,
                self.head_norm,
                self.traces.chooser(),
                tolerances,
            )
            for row, ((index, mutation), verdict) in enumerate(zip(batch, verdicts, strict=True)):
                outcome = self._teacher_outcome(baseline, verdict)
                if outcome is not None:
                    outcomes[index] = self._settle(probe, mutation, outcome, verdict.ties)
                    continue
                pending.append(
                    Diverged(
                        index=index,
                        mutation=mutation,
                        layer=mutation.site.layer,
                        diverge_at=verdict.diverge_at,
                        tokens=[*baseline.tokens[: verdict.diverge_at], verdict.token],
                        keys=_row_states(kv.keys, run.kv_rows[row], mutation.site.layer),
                        values=_row_states(kv.values, run.kv_rows[row], mutation.site.layer),
                        tolerance=self.tolerance(mutation),
                        ties=list(verdict.ties),
                        nonfinite=verdict.nonfinite,
                    )
                )
            if len(pending) >= batch_size:
                self._finish_diverged(probe, pending, outcomes)
                pending = []
        self._finish_diverged(probe, pending, outcomes)
        return outcomes, measured  # type: ignore[return-value]

    def _teacher_outcome(self, baseline: Generation, verdict: Verdict) -> TextOutcome | None:
        """The outcome when teacher forcing alone decides it; None when it must decode on."""
        if verdict.diverge_at is None:
            tokens, stopped = list(baseline.tokens), baseline.stopped
        elif verdict.token in self.lm.eos_token_ids:
            tokens, stopped = list(baseline.tokens[: verdict.diverge_at]), True
        else:
            return None
        return TextOutcome(tokens, stopped, verdict.nonfinite, False, verdict.diverge_at)

    def _finish_diverged(
        self, probe: TracedText, rows: list[Diverged], outcomes: list[TextOutcome | None]
    ) -> None:
        decode_onward(
            self.runner,
            probe.trace,
            probe.reference.prompt_length,
            rows,
            self.traces.chooser(),
            self.decoding,
            self.lm.eos_token_ids,
            self.observe_onward,
        )
        for row in rows:
            outcome = TextOutcome(row.tokens, row.stopped, row.nonfinite, False, row.diverge_at)
            outcomes[row.index] = self._settle(probe, row.mutation, outcome, row.ties)

    def _settle(
        self, probe: TracedText, mutation: Mutation, outcome: TextOutcome, ties: list[int]
    ) -> TextOutcome:
        """Keep a batched outcome unless a near tie makes it uncertain; then check it naively.

        Only the near-tie steps are uncertain: every other step was decided by a margin the
        batched pass cannot flip, so given the same context the naive path makes the same
        choice there. When the naive path chose the batched tokens at every near tie, it saw
        the same context at every step and its outcome is the batched one. Otherwise the naive
        path runs to the end."""
        if not ties:
            return outcome
        if self._naive_agrees(probe, mutation, outcome, ties):
            return replace(outcome, settled_naively=True)
        prompt = list(probe.prompt)
        result = naive_generate(self.lm, self.catalog, prompt, mutation, self.decoding)
        divergence = first_divergence(probe.baseline.tokens, result.tokens)
        return TextOutcome(result.tokens, result.stopped, outcome.nonfinite, True, divergence)

    def _naive_agrees(
        self, probe: TracedText, mutation: Mutation, outcome: TextOutcome, ties: list[int]
    ) -> bool:
        """Whether the naive path makes the batched outcome's choices at its near-tie steps.

        For greedy decoding `model.generate` is replayed, fed the batched outcome's tokens
        (`replay`): bit for bit the same, without the layers below the mutated one while those
        tokens are the baseline's, and scored only at the ties. Otherwise the naive path runs as
        far as the last tie and is compared at every step up to it."""
        last = ties[-1]
        wanted = _decisions(outcome.tokens, outcome.stopped, last + 1)
        if GenerateTrace.supports(self.lm, self.decoding):
            trace = self.traces.generated(probe.prompt)
            decisions = trace.decisions(mutation, ties, outcome.tokens[:last])
            if decisions is not None:
                return all(decisions[step] == wanted[step] for step in ties)
        checked = replace(self.decoding, max_new_tokens=last + 1)
        prefix = naive_generate(self.lm, self.catalog, list(probe.prompt), mutation, checked)
        return _decisions(prefix.tokens, prefix.stopped, last + 1) == wanted
