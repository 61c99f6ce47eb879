"""A screen's probes traced once through the unmutated model and kept for every batch: a text
probe's prompt and baseline (teacher forcing's reference), `generate`'s own recorded run of a
prompt (the naive checks' replays and the lockstep decoder), a choice question's prompt, and
the prefix the questions share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mutatui.engine.decoding import Chooser, Decoding, Generation
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.exact.effects import TracedWildtype, traced_wildtype
from mutatui.exact.layers import BaselineTrace, LayerRunner
from mutatui.exact.replay import GenerateTrace
from mutatui.exact.teacher import Reference, make_reference, teacher_input

MIN_SHARED_PREFIX = 4
"""Fewer shared prompt tokens than this are not worth a separate prefix run."""


@dataclass
class TracedText:
    """A prompt and its baseline, traced for reuse by every batch of mutations."""

    prompt: tuple[int, ...]
    baseline: Generation
    trace: BaselineTrace
    reference: Reference
    traced: TracedWildtype


@dataclass
class SharedPrefix:
    """The first `length` tokens every question's prompt starts with, traced once."""

    length: int
    trace: BaselineTrace


class ProbeTraces:
    """The traces of one screener's probes, each made on first use (the text probe's, the
    latest one only: a screen goes through its probes one at a time)."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        decoding: Decoding,
        runner: LayerRunner | None,
    ) -> None:
        self.lm = lm
        self.catalog = catalog
        self.decoding = decoding
        self.runner = runner
        self._chooser: Chooser | None = None
        self._text: TracedText | None = None
        self._generated: dict[tuple[int, ...], GenerateTrace] = {}
        self._questions: dict[tuple[int, ...], BaselineTrace] = {}
        self._prefixes: dict[tuple[tuple[int, ...], ...], SharedPrefix | None] = {}

    def chooser(self) -> Chooser:
        """How a decision step's token is chosen from its logits, under the screen's decoding."""
        if self._chooser is None:
            vocab = self.runner.head_weight.shape[0] if self.runner else 0
            self._chooser = Chooser(self.decoding, vocab)
        return self._chooser

    def text(self, prompt: list[int], baseline: Generation) -> TracedText:
        """The text probe `prompt` with its `baseline` continuation, traced by teacher forcing
        (the layered engine only)."""
        key = tuple(prompt)
        probe = self._text
        if probe is not None and probe.prompt == key and probe.baseline == baseline:
            return probe
        trace = self.runner.trace(teacher_input(prompt, baseline, self.decoding))
        decisions = slice(len(prompt) - 1, None)
        final = trace.final[decisions]
        logits = self.runner.logits(final)
        reference = make_reference(
            len(prompt), baseline, self.lm.eos_token_ids, final, logits, self.chooser()
        )
        traced = traced_wildtype(self.runner.architecture, final, logits, reference.targets)
        self._text = TracedText(key, baseline, trace, reference, traced)
        return self._text

    def generated(self, prompt: Sequence[int]) -> GenerateTrace:
        """`model.generate`'s own run on `prompt`, recorded as it runs (greedy decoding)."""
        key = tuple(prompt)
        if key not in self._generated:
            self._generated[key] = GenerateTrace(self.lm, self.catalog, key, self.decoding)
        return self._generated[key]

    def question(self, prompt: list[int]) -> BaselineTrace:
        """A question prompt's baseline trace, made once: the prompt alone decides it."""
        key = tuple(prompt)
        if key not in self._questions:
            self._questions[key] = self.runner.trace(prompt)
        return self._questions[key]

    def shared_prefix(self, prompts: Sequence[list[int]]) -> SharedPrefix | None:
        """The traced prefix the prompts share, leaving each at least one token of its own;
        None when they share fewer than MIN_SHARED_PREFIX tokens."""
        key = tuple(tuple(prompt) for prompt in prompts)
        if key not in self._prefixes:
            length = min(len(p) for p in prompts) - 1
            for prompt in prompts[1:]:
                length = next((i for i in range(length) if prompt[i] != prompts[0][i]), length)
            self._prefixes[key] = (
                SharedPrefix(length, self.runner.trace(prompts[0][:length]))
                if length >= MIN_SHARED_PREFIX
                else None
            )
        return self._prefixes[key]
