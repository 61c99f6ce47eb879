"""A recorded screen checked against the naive path: edit the weight, generate, restore.

The test suite checks the engine against the naive path on samples; this checks a database that
was already built (the bundled screens.db, merged shards, a screen from another machine): a
seeded sample of its mutations is run again the slow, obvious way, and every recorded outcome
must come out the same: where each text probe's output left the baseline's, the mutant's text,
and the multiple-choice score.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import decode_tokens, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Kind, Mutation
from mutatui.engine.questions import naive_choices
from mutatui.screening.choice import score
from mutatui.screening.probes import load_choice_probe
from mutatui.screening.spec import ScreenSpec
from mutatui.store.effects import PendingResult
from mutatui.store.queries import MutationDetail, ResultDetail


def sample_ids(ids: Sequence[int], count: int, seed: int) -> list[int]:
    """`count` of the ids (all when fewer), drawn with `seed`, in id order."""
    return sorted(random.Random(seed).sample(list(ids), min(count, len(ids))))


def recorded_mutation(recorded: MutationDetail | PendingResult) -> Mutation:
    """The mutation a stored row describes (its value kept only for a number kind)."""
    kind = Kind(recorded.kind)
    return Mutation(recorded.site, kind, recorded.value if kind is Kind.VALUE else None)


@dataclass(frozen=True)
class Verdict:
    """One mutation rerun: its label and every disagreement with the record (none: it holds)."""

    label: str
    problems: tuple[str, ...]


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
        return Verdict(f"{mutation.site} {mutation.kind}", tuple(problems))

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
        return []
