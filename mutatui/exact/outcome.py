"""What the screen engine returns for one mutation on one text probe, whichever path made it."""

from __future__ import annotations

from dataclasses import dataclass

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, Generation, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation
from mutatui.exact.effects import Effect


@dataclass
class TextOutcome:
    """One mutation on one text probe."""

    tokens: list[int]  # the mutant's continuation, without the final EOS
    stopped: bool  # ended on EOS
    nonfinite: bool  # NaN/inf logits were seen
    settled_naively: bool  # a near tie sent it to the naive path
    diverge_at: int | None  # first token index differing from the baseline, None if identical
    effect: Effect | None = None  # how far it moves the model (when the screener records it)


def naive_outcome(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    decoding: Decoding,
    prompt: list[int],
    baseline: Generation,
    mutation: Mutation,
) -> TextOutcome:
    """The naive path's outcome: edit the weight, generate alone, restore."""
    result = naive_generate(lm, catalog, prompt, mutation, decoding)
    divergence = first_divergence(baseline.tokens, result.tokens)
    return TextOutcome(result.tokens, result.stopped, result.nonfinite, True, divergence)
