"""A recorded screen checked against the naive path: edit the weight, generate, restore.

The test suite checks the engine against the naive path on samples; this checks a database that
was already built (the bundled screens.db, merged shards, a screen from another machine): a
seeded sample of its mutations is run again the slow, obvious way, and every recorded outcome
must come out the same: where each text probe's output left the baseline's, the mutant's text,
the multiple-choice score and, where the screen recorded them, the effect sizes (computed
here from scratch: the weight edited, one forward pass over the prompt and the baseline's
continuation, restored).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Generation, decode_tokens, encode_prompt, naive_generate
from mutatui.engine.machine import Machine
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Kind, Mutation, mutated
from mutatui.engine.questions import naive_choices
from mutatui.screening.choice import score
from mutatui.screening.probes import load_choice_probe
from mutatui.screening.spec import ScreenSpec
from mutatui.store.effects import PendingResult
from mutatui.store.queries import MutationDetail, ResultDetail

EFFECT_TOLERANCE = {torch.float32: (1e-6, 1e-2)}
"""(absolute, relative) agreement of recorded and naive effect sizes by the dtype computed in:
a batched pass and a lone one round differently, by a few units of the dtype's last place (in
float32 the effect sizes' own goal: 1e-6 nats or 1%)."""
HALF_TOLERANCE = (0.05, 0.05)
"""The same for half precision (bfloat16, float16)."""


class NaiveEffects(NamedTuple):
    """A mutation's effect sizes on one probe, from scratch (NaN where not a number; the margin
    None for an unchanged output), and the unmutated model's margin at every step."""

    delta_nll: float
    kl_prefix: float
    kl_all: float
    diverge_margin: float | None
    margins: list[float]


def naive_effects(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    prompt: Sequence[int],
    baseline: Generation,
    mutation: Mutation | None,
    diverge_at: int | None,
) -> NaiveEffects:
    """The effect sizes of `exact.effects`, the obvious way: the unmutated model and the mutant
    (weight edited, restored after) each run once over the prompt and the baseline's
    continuation, the head applied to the final-norm output in float64 and the per-step
    distributions compared in float64; the margins are the model's own logits'."""
    steps = len(baseline.tokens) + (1 if baseline.stopped else 0)
    ids = torch.tensor([[*prompt, *baseline.tokens[: steps - 1]]], device=lm.device)
    decisions = slice(len(prompt) - 1, None)

    def logits_of(edit: Mutation | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own logits at the decisions, and the head's in float64."""
        with torch.inference_mode(), mutated(catalog, edit) if edit else nullcontext():
            final = lm.model.base_model(input_ids=ids).last_hidden_state[0, decisions]
            own = head_logits(lm, final, final.dtype)
            return own.double().cpu(), head_logits(lm, final, torch.float64).cpu()

    (own, clean), (_, mutant) = logits_of(None), logits_of(mutation)
    targets = list(baseline.tokens)
    if baseline.stopped:
        targets.append(int(own[-1].argmax()))
    p, q = clean.log_softmax(-1), mutant.log_softmax(-1)
    at = torch.tensor(targets).view(-1, 1)
    delta = float((-q.gather(1, at) + p.gather(1, at)).mean())
    kl = torch.where(p.exp() > 0, p.exp() * (p - q), torch.zeros(())).sum(-1)
    end = steps if diverge_at is None else min(diverge_at + 1, steps)
    top = own.topk(2, dim=-1).values
    margins = (top[:, 0] - top[:, 1]).tolist()
    margin = margins[diverge_at] if diverge_at is not None and diverge_at < steps else None
    return NaiveEffects(delta, float(kl[:end].mean()), float(kl.mean()), margin, margins)


def head_logits(lm: LoadedModel, final: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The model's output head on final-norm outputs, in `dtype` (the model's own: its logits,
    bit for bit; float64: the effect sizes' reference), soft-capped as the model's config
    says."""
    head = lm.model.get_output_embeddings()
    bias = None if getattr(head, "bias", None) is None else head.bias.to(dtype)
    weight = head.weight.to(dtype)
    if weight.shape[-1] != final.shape[-1]:  # a transposed (Conv1D) head
        weight = weight.T
    logits = torch.nn.functional.linear(final.to(dtype), weight, bias)
    cap = getattr(lm.model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def agrees(recorded: float | None, naive: float | None, tolerance: tuple[float, float]) -> bool:
    """A recorded effect size (None: not a number) against the naive one."""
    if naive is None or math.isnan(naive):
        return recorded is None
    if math.isinf(naive):
        return recorded == naive
    absolute, relative = tolerance
    return recorded is not None and abs(recorded - naive) <= absolute + relative * abs(naive)


def sample_ids(ids: Sequence[int], count: int, seed: int) -> list[int]:
    """`count` of the ids (all when fewer), drawn with `seed`, in id order."""
    return sorted(random.Random(seed).sample(list(ids), min(count, len(ids))))


def recorded_mutation(recorded: MutationDetail | PendingResult) -> Mutation:
    """The mutation a stored row describes (its value kept only for a number kind)."""
    kind = Kind(recorded.kind)
    return Mutation(recorded.site, kind, recorded.value if kind is Kind.VALUE else None)


@dataclass(frozen=True)
class Verdict:
    """One mutation rerun: its label, every disagreement with the record (none: it holds), and
    whether its recorded outcome sat at a near tie (settled on the naive path when screened),
    which another machine's rounding may decide the other way."""

    label: str
    problems: tuple[str, ...]
    at_near_tie: bool = False


@dataclass(frozen=True)
class MachineComparison:
    """This machine against the ones a screen ran on: `same` is None when none was recorded."""

    same: bool | None
    line: str


def compare_machines(recorded: Sequence[Machine], here: Machine) -> MachineComparison:
    """Whether this machine is one the screen ran on, in one line."""
    if not recorded:
        return MachineComparison(
            None,
            f"verifying on {here.describe()}; the screen's machine was not recorded (a screen "
            "made before machines were): outcomes at near ties may differ if it was another",
        )
    if any(machine.digest == here.digest for machine in recorded):
        return MachineComparison(
            True, f"verifying on the machine the screen ran on: {here.describe()}"
        )
    differences = "; ".join(here.differences(recorded[0]))
    return MachineComparison(
        False,
        f"verifying on another machine than the screen ran on ({differences}): outcomes at "
        "near ties may legitimately differ",
    )


class ScreenVerifier:
    """Reruns a screen's mutations on the naive path, with the screen's own probes."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        spec: ScreenSpec,
        baselines: Sequence[Sequence[int]],
    ) -> None:
        """`baselines`: the baseline tokens the screen recorded, one list per text probe."""
        self.lm = lm
        self.catalog = catalog
        self.spec = spec
        self.prompts = [encode_prompt(lm, probe.prompt, chat=spec.chat) for probe in spec.probes]
        self.baselines = [list(tokens) for tokens in baselines]
        self.questions = load_choice_probe(spec.choice).questions if spec.choice else ()

    def baseline_problems(self) -> list[str]:
        """Where the unmutated model no longer gives the recorded baselines (another model
        file, dtype or library version: then no mutation can be compared)."""
        problems = []
        for probe, prompt, recorded in zip(
            self.spec.probes, self.prompts, self.baselines, strict=True
        ):
            tokens = naive_generate(self.lm, self.catalog, prompt, None, self.spec.decoding).tokens
            if tokens != recorded:
                problems.append(
                    f"probe {probe.name}: the baseline differs from the recorded one from token "
                    f"{first_divergence(recorded, tokens)}"
                )
        return problems

    def verify(self, recorded: MutationDetail) -> Verdict:
        mutation = recorded_mutation(recorded)
        problems = []
        value = mutation.target(self.catalog.get(mutation.site.layer, mutation.site.matrix))
        if value != recorded.value:
            problems.append(f"value: recorded {recorded.value}, the model's matrix gives {value}")
        for outcome in recorded.results:
            if outcome.probe.kind == "text":
                problems += self._text_problems(mutation, outcome.probe.probe_id, outcome)
            elif outcome.choice_score is not None:
                answers = naive_choices(
                    self.lm, self.catalog, self.questions, mutation, chat=self.spec.chat
                )
                naive = score(self.questions, answers)
                if naive != outcome.choice_score:
                    problems.append(
                        f"choice: recorded score {outcome.choice_score}, naive path {naive}"
                    )
        tied = any("settled_naively" in outcome.flags for outcome in recorded.results)
        return Verdict(f"{mutation.site} {mutation.kind}", tuple(problems), tied)

    def _text_problems(self, mutation: Mutation, probe_id: int, outcome: ResultDetail) -> list[str]:
        generation = naive_generate(
            self.lm, self.catalog, self.prompts[probe_id], mutation, self.spec.decoding
        )
        diverge_at = first_divergence(self.baselines[probe_id], generation.tokens)
        name = self.spec.probes[probe_id].name
        if diverge_at != outcome.diverge_at:
            return [
                f"probe {name}: recorded divergence at {outcome.diverge_at}, naive path at "
                f"{diverge_at}"
            ]
        if diverge_at is not None and decode_tokens(self.lm, generation.tokens) != outcome.text:
            return [f"probe {name}: the recorded text differs from the naive path's"]
        if outcome.effect is None:
            return []
        baseline = self.baselines[probe_id]
        stopped = len(baseline) < self.spec.decoding.max_new_tokens
        naive = naive_effects(
            self.lm,
            self.catalog,
            self.prompts[probe_id],
            Generation(tokens=baseline, stopped=stopped),
            mutation,
            diverge_at,
        )
        tolerance = EFFECT_TOLERANCE.get(self.lm.compute_dtype, HALF_TOLERANCE)
        columns = ("delta_nll", "kl_prefix", "kl_all", "diverge_margin")
        return [
            f"probe {name}: recorded {column} {found}, naive path {expected}"
            for column, found, expected in zip(columns, outcome.effect, naive[:4], strict=True)
            if not agrees(found, expected, tolerance)
        ]
