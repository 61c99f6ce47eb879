"""The screen engine: many mutations against one probe, each outcome exactly what editing that
site and generating alone gives.

(First version: backed by the naive path; the fast teacher-forced engine replaces it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, Generation, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation


@dataclass
class TextOutcome:
    """One mutation on one text probe."""

    tokens: list[int]
    stopped: bool
    nonfinite: bool
    settled_naively: bool
    diverge_at: int | None


class Screener:
    """Screens mutations of one model under one decoding."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        decoding: Decoding,
        *,
        batch_size: int = 32,
    ) -> None:
        self.lm = lm
        self.catalog = catalog
        self.decoding = decoding
        self.batch_size = batch_size

    def baseline(self, prompt: list[int]) -> Generation:
        """The unmutated model's continuation of `prompt`, on the naive (reference) path."""
        return naive_generate(self.lm, self.catalog, prompt, None, self.decoding)

    def screen_text(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> list[TextOutcome]:
        outcomes = []
        for mutation in mutations:
            result = naive_generate(self.lm, self.catalog, prompt, mutation, self.decoding)
            outcomes.append(
                TextOutcome(
                    tokens=result.tokens,
                    stopped=result.stopped,
                    nonfinite=result.nonfinite,
                    settled_naively=True,
                    diverge_at=first_divergence(baseline.tokens, result.tokens),
                )
            )
        return outcomes

    def screen_choice(self, questions, mutations: Sequence[Mutation]) -> list[list[int]]:
        """Chosen choice index per question, for each mutation."""
        from mutatui.screening.choice import naive_choices

        return [naive_choices(self.lm, self.catalog, questions, m) for m in mutations]
