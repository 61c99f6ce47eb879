"""The screen engine: many mutations against one probe, each outcome exactly what editing that
site and generating alone gives, far faster than doing that.

For a text probe (Llama-family models):
1. the baseline's prompt and continuation are traced once through the unmutated model, keeping
   every layer's input, keys and values;
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

For a choice probe, each question's prompt is traced once and each layer's batch runs from its
layer up; the prefix all the questions share (the chat template's system turn) runs once per
batch, and each question from there on. A near tie among the answer letters settles that
question naively.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch

from mutatui.engine.architecture import text_config, unsupported_reason
from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import (
    Chooser,
    Decoding,
    Generation,
    generate_exact,
    naive_generate,
    too_close,
)
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel, pin_precision
from mutatui.engine.mutations import Mutation, mutated
from mutatui.engine.questions import ChoiceQuestion, choice_token_ids, naive_choices, pick_choice
from mutatui.engine.questions import render_question as render_choice_question
from mutatui.exact.effects import (
    Effect,
    EffectMeter,
    Measured,
    TracedWildtype,
    effect,
    margins_of,
    measure_logits,
    traced_wildtype,
)
from mutatui.exact.layers import BaselineTrace, KVStore, LayerRunner, Pass
from mutatui.exact.lockstep import CHECKED_MUTANTS, LockstepDecoder, checked_decode
from mutatui.exact.lockstep import unsupported_reason as lockstep_unsupported
from mutatui.exact.noise import NoiseFloor
from mutatui.exact.onward import Diverged, decode_onward
from mutatui.exact.replay import GenerateTrace
from mutatui.exact.teacher import (
    Reference,
    Verdict,
    eos_target,
    judge,
    make_reference,
    teacher_input,
)
from mutatui.exact.tolerance import (
    Tolerance,
    floor_tolerance,
    from_measurements,
    lone_logits,
    relative_difference,
)


@dataclass
class TextOutcome:
    """One mutation on one text probe."""

    tokens: list[int]  # the mutant's continuation, without the final EOS
    stopped: bool  # ended on EOS
    nonfinite: bool  # NaN/inf logits were seen
    settled_naively: bool  # a near tie sent it to the naive path
    diverge_at: int | None  # first token index differing from the baseline, None if identical
    effect: Effect | None = None  # how far it moves the model (when the screener records it)


@dataclass
class _TextProbe:
    """A prompt and its baseline, traced for reuse by every batch of mutations."""

    prompt: tuple[int, ...]
    baseline: Generation
    trace: BaselineTrace
    reference: Reference
    traced: TracedWildtype


SMALL_MODEL_PARAMETERS = 1_000_000_000

MEMORY_SHARE = 0.5
"""The share of the device's free memory (after loading the model) a batch may take."""

ROW_POSITIONS = 256
"""Positions a batch row is sized for (a probe's prompt and its continuation)."""


def free_memory(device: torch.device) -> int | None:
    """Bytes free on `device` now: the GPU's free memory, or the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu" and hasattr(os, "sysconf"):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


def row_bytes(model: torch.nn.Module, positions: int = ROW_POSITIONS) -> int:
    """What one mutant row of a batch holds at most: its keys and values for every layer (kept
    from teacher forcing, copied when it diverges, grown while decoding on: three copies), and
    the widest activation of a pass (the MLP's), over `positions` positions."""
    config = text_config(model)
    element = next(model.parameters()).element_size()
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    keys_values = 2 * layers * kv_heads * head_dim * positions * element
    intermediate = getattr(config, "intermediate_size", None) or 4 * config.hidden_size
    activations = 3 * intermediate * positions * max(element, 4)
    return 3 * keys_values + activations


def batch_size_for(parameters: int, free: int | None, per_row: int) -> int:
    """Rows per batch: 128 for models under a billion parameters, where wider batches make
    onward decoding's matrix products efficient (SmolLM2 on a 2-core CPU: tiles screen ~1.3x
    faster than at 32), 32 for larger ones; fewer when `MEMORY_SHARE` of the `free` bytes does
    not hold that many rows of `per_row` bytes."""
    by_size = 128 if parameters < SMALL_MODEL_PARAMETERS else 32
    if free is None:
        return by_size
    return max(1, min(by_size, int(MEMORY_SHARE * free) // max(per_row, 1)))


def default_batch_size(model: torch.nn.Module) -> int:
    """Rows per batch when none is asked for (`batch_size_for`), on the model's device."""
    parameters = sum(parameter.numel() for parameter in model.parameters())
    device = next(model.parameters()).device
    return batch_size_for(parameters, free_memory(device), row_bytes(model))


PASS_TOKENS = 2048
"""Tokens (rows x positions) per teacher-forced pass on a CPU. A pass's activations then stay
in the processor's cache between its elementwise steps (128 rows of an 83-token probe make 65 MB
per MLP activation); on SmolLM2 with a 2-core CPU, passes of 12-24 rows ran the same mutations
about 15% faster than one of 128. Onward decoding still gathers `batch_size` rows."""

NAIVE_SHARE = 0.5
"""When more than this share of a probe's baseline decisions are near ties, its mutants go
to the lockstep decoder, the naive path batched (see `Screener.ties_everywhere`)."""

MIN_SHARED_PREFIX = 4
"""Fewer shared prompt tokens than this are not worth a separate prefix run."""


@dataclass
class _SharedPrefix:
    """The first `length` tokens every question's prompt starts with, traced once."""

    length: int
    trace: BaselineTrace


def _layer_batches(
    mutations: Sequence[Mutation], batch_size: int
) -> Iterator[list[tuple[int, Mutation]]]:
    """[(index, mutation)] batches of at most `batch_size`, sorted by layer (rows join a batch
    at their own layer, so neighbouring layers share a batch cheaply)."""
    indexed = sorted(enumerate(mutations), key=lambda item: item[1].site.layer)
    for start in range(0, len(indexed), batch_size):
        yield indexed[start : start + batch_size]


def _decisions(tokens: Sequence[int], stopped: bool, steps: int) -> list[int | None]:
    """The first `steps` decisions of a continuation: its tokens, then None for its EOS."""
    return [*tokens, *([None] if stopped else [])][:steps]


def _up_to_divergence(reference: Reference, scores: torch.Tensor) -> int:
    """How many steps of a mutant's teacher-forced scores the engine reads: up to and including
    its first choice different from the baseline's."""
    for step, token in enumerate(scores.argmax(dim=-1).tolist()):
        if not reference.agrees(step, token):
            return step + 1
    return scores.shape[0]


def _row_states(
    states: dict[int, torch.Tensor], row: int, first_layer: int
) -> dict[int, torch.Tensor]:
    """One batch row's keys (or values) for the layers it ran, copied out of the batch."""
    return {
        layer: tensor[row : row + 1].clone()
        for layer, tensor in states.items()
        if layer >= first_layer
    }


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
        """Mutations per batch (`default_batch_size` when none is given)."""
        reason = unsupported_reason(lm.model)
        self.runner = LayerRunner(lm.model, catalog) if reason is None else None
        self.fallback: str | None = (
            None
            if reason is None
            else f"{reason}: this screen runs on the slower batched path (exact, without "
            "layer reuse or teacher forcing)"
        )
        """Why the model is not on the fast path, in one line (None when it is)."""
        self._chooser: Chooser | None = None
        self._probe: _TextProbe | None = None
        self._questions: dict[tuple[int, ...], BaselineTrace] = {}
        self._prefixes: dict[tuple[tuple[int, ...], ...], _SharedPrefix | None] = {}
        self._generate_traces: dict[tuple[int, ...], GenerateTrace] = {}
        pin_precision()  # whatever the process set since loading: the naive path pins it too
        self._tie_verdicts: dict[tuple, bool] = {}
        self.tolerances: Tolerance = floor_tolerance(lm.compute_dtype)
        """Near-tie tolerances: the dtype's floor until `calibrate` measures them."""
        self._lockstep_chunk: int | None = None
        self._lockstep_decoders: dict[tuple[int, ...], LockstepDecoder | str] = {}
        """Per probe prompt, its lockstep decoder, or why it cannot run on it."""
        self._lockstep_held: list[bool] = []
        """Whether each mutant held against the naive path so far changed the output."""
        self._lockstep_failure: str | None = None
        """Why the lockstep decoder runs for no probe of this screener (None while it may)."""
        self.lockstep_check_seconds = 0.0
        """Time spent holding the lockstep decoder against the naive path: once per screen, not
        per mutation (`screening.estimate` leaves it out of the rate)."""
        self.lockstep: str | None = None
        """How the lockstep decoder (the naive path batched) fared last: None until asked,
        "exact" when it ran, else why it did not."""
        self.observe_onward: Callable[[Diverged, torch.Tensor], None] | None = None
        """Sees every onward-decoding step's logits per row (for measurements only)."""
        self.meter = EffectMeter(self.runner.architecture) if self.runner is not None else None
        """Measures effect sizes against each pass's control (the layered engine)."""
        self._lone_noise = NoiseFloor()
        """The controls of the lone path: the unmutated pass each mutant is compared with."""
        if self.runner is not None:
            weight = self.runner.head_weight.detach()
            self.head_norm = float(weight.float().norm(dim=1).max())

    def pass_rows(self, positions: int) -> int:
        """Mutations per teacher-forced pass over `positions` tokens (`PASS_TOKENS` on a CPU;
        a whole batch elsewhere)."""
        if self.runner is None or self.runner.head_weight.device.type != "cpu":
            return self.batch_size
        return max(1, min(self.batch_size, PASS_TOKENS // positions))

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
        chooser = self._chooser_for()
        sequence = teacher_input(prompt, baseline, self.decoding)
        with torch.inference_mode():
            probe = self._text_probe(prompt, baseline)
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
            reference = self._text_probe(prompt, baseline).reference
        margins = reference.gaps / (1 + reference.tops.abs())
        return int((margins < self.tolerances.element).sum())

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
        return self._generate_trace(prompt).generation

    def _generate_trace(self, prompt: Sequence[int]) -> GenerateTrace:
        key = tuple(prompt)
        if key not in self._generate_traces:
            self._generate_traces[key] = GenerateTrace(self.lm, self.catalog, key, self.decoding)
        return self._generate_traces[key]

    def screen_text(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> list[TextOutcome]:
        """Each mutation's continuation of `prompt`, in the order given."""
        if not mutations:
            return []
        with torch.inference_mode():
            if self.runner is not None and not self.ties_everywhere(prompt, baseline):
                # the effect sizes come from the teacher-forced passes decoding runs anyway
                outcomes, measured = self._screen_text_layered(prompt, baseline, mutations)
            else:
                if self.runner is None:
                    outcomes = self._screen_text_batched(prompt, baseline, mutations)
                else:
                    outcomes = self._screen_text_lockstep(prompt, baseline, mutations)
                measured = self._measure(prompt, baseline, mutations) if self.effects else {}
            if not measured:
                return outcomes
            return self._with_effects(self._margins(prompt, baseline), outcomes, measured)

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
            self._screen_text_lockstep(prompt, baseline, list(sample)[:CHECKED_MUTANTS])
        return None if self.lockstep == "exact" else self.lockstep

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

    def lockstep_obstacle(self, prompt: list[int]) -> str | None:
        """Why the lockstep decoder cannot run on `prompt` here (None when it can; whether its
        floats are the naive path's is checked when it first runs)."""
        if self.runner is None:
            return self.fallback
        if self._lockstep_decoder(prompt) is None:
            return self.lockstep
        return None

    def _lockstep_decoder(self, prompt: list[int]) -> LockstepDecoder | None:
        """The lockstep decoder for `prompt`, when it can run here (None when not, with the
        reason in `lockstep`)."""
        if not GenerateTrace.supports(self.lm, self.decoding):
            self._lockstep_failure = "it decodes greedily only"
        if self._lockstep_failure is not None:
            self.lockstep = self._lockstep_failure
            return None
        key = tuple(prompt)
        if key not in self._lockstep_decoders:  # once per probe, not once per batch
            if self._lockstep_chunk is None:
                self._lockstep_chunk = LockstepDecoder.chunk_for(self.runner.architecture)
            trace = self._generate_trace(prompt)
            steps = self.decoding.max_new_tokens
            reason = lockstep_unsupported(trace, self.catalog, self._lockstep_chunk, steps)
            self._lockstep_decoders[key] = (
                LockstepDecoder(trace, self.catalog, self._lockstep_chunk)
                if reason is None
                else reason  # of this probe (its length, its arguments): others may run
            )
        decoder = self._lockstep_decoders[key]
        if isinstance(decoder, str):
            self.lockstep = decoder
            return None
        return decoder

    def _screen_text_lockstep(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> list[TextOutcome]:
        """Where nearly every decision is a near tie: the naive path's outcomes, batched by the
        lockstep decoder once a sample held against the naive path; one mutant at a
        time on the naive path where it cannot run or did not hold."""
        decoder = self._lockstep_decoder(prompt)
        outcomes: list[TextOutcome] = []
        for start in range(0, len(mutations), self.batch_size):
            batch = list(mutations[start : start + self.batch_size])
            if decoder is None:
                outcomes += [self._naive_outcome(prompt, baseline, m) for m in batch]
                continue
            needed = self._lockstep_checks_needed()
            if not needed:
                results = decoder.decode(batch, self.decoding.max_new_tokens)
            else:
                lone = self._lone_logits(prompt)
                results, held = checked_decode(decoder, batch, self.decoding, lone, needed)
                if held is None:
                    self._lockstep_failure = "its logits differ from the naive path's here"
                    self.lockstep, decoder = self._lockstep_failure, None
                    outcomes += [self._naive_outcome(prompt, baseline, m) for m in batch]
                    continue
                self._lockstep_held += held
            self.lockstep = "exact"
            for result in results:
                divergence = first_divergence(baseline.tokens, result.tokens)
                outcomes.append(
                    TextOutcome(result.tokens, result.stopped, result.nonfinite, False, divergence)
                )
        return outcomes

    def _lockstep_checks_needed(self) -> int:
        """How many more mutants to hold against the naive path before relying on the lockstep
        decoder (`lockstep.CHECKED_MUTANTS`, one of them output-changing)."""
        held = self._lockstep_held
        if len(held) < CHECKED_MUTANTS:
            return CHECKED_MUTANTS - len(held)
        return 0 if any(held) else 1

    def _lone_logits(self, prompt: list[int]) -> Callable[[Mutation, list[int]], torch.Tensor]:
        """The naive path's logits a lockstep check compares with, timed into
        `lockstep_check_seconds`."""

        def lone(mutation: Mutation, fed: list[int]) -> torch.Tensor:
            started = time.perf_counter()
            logits = lone_logits(self.lm, self.catalog, mutation, fed, len(prompt))
            self.lockstep_check_seconds += time.perf_counter() - started
            return logits

        return lone

    def _naive_outcome(
        self, prompt: list[int], baseline: Generation, mutation: Mutation
    ) -> TextOutcome:
        result = naive_generate(self.lm, self.catalog, prompt, mutation, self.decoding)
        divergence = first_divergence(baseline.tokens, result.tokens)
        return TextOutcome(result.tokens, result.stopped, result.nonfinite, True, divergence)

    def screen_choice(
        self,
        questions: Sequence[ChoiceQuestion],
        mutations: Sequence[Mutation],
        *,
        chat: bool = True,
    ) -> list[list[int]]:
        """The chosen choice index per question (`NO_ANSWER` when non-finite), per mutation."""
        if self.runner is None:
            return [
                naive_choices(self.lm, self.catalog, questions, m, chat=chat) for m in mutations
            ]
        answers = [[0] * len(questions) for _ in mutations]
        with torch.inference_mode():
            prompts = [render_choice_question(self.lm, q, chat=chat) for q in questions]
            traces = [self._prompt_trace(prompt) for prompt in prompts]
            shared = self._shared_prefix(prompts)
            rows = self.pass_rows(max(len(prompt) for prompt in prompts))
            for batch in _layer_batches(mutations, rows):
                batch_mutations = [m for _, m in batch]
                start, prefix_kv = 0, KVStore()
                if shared is not None:
                    start = shared.length
                    prefix_kv = self.runner.run_prefix(shared.trace, batch_mutations)
                for number, (question, trace) in enumerate(zip(questions, traces, strict=True)):
                    final = self.runner.run_after(trace, start, batch_mutations, prefix_kv)
                    decided = self._choose(question, batch, final, chat)
                    for index, chosen in decided.items():
                        answers[index][number] = chosen
        return answers

    def _chooser_for(self) -> Chooser:
        if self._chooser is None:
            vocab = self.runner.head_weight.shape[0] if self.runner else 0
            self._chooser = Chooser(self.decoding, vocab)
        return self._chooser

    def _text_probe(self, prompt: list[int], baseline: Generation) -> _TextProbe:
        key = tuple(prompt)
        probe = self._probe
        if probe is not None and probe.prompt == key and probe.baseline == baseline:
            return probe
        trace = self.runner.trace(teacher_input(prompt, baseline, self.decoding))
        decisions = slice(len(prompt) - 1, None)
        final = trace.final[decisions]
        logits = self.runner.logits(final)
        reference = make_reference(
            len(prompt), baseline, self.lm.eos_token_ids, final, logits, self._chooser_for()
        )
        traced = traced_wildtype(self.runner.architecture, final, logits, reference.targets)
        self._probe = _TextProbe(key, baseline, trace, reference, traced)
        return self._probe

    @property
    def noise(self) -> NoiseFloor:
        """The noise floor of every effect size this screener measured: how far its controls
        strayed from the traced baseline (`exact.effects`)."""
        return self.meter.noise if self.meter is not None else self._lone_noise

    def baseline_margins(self, prompt: list[int], baseline: Generation) -> list[float]:
        """The unmutated model's top-1 minus top-2 logit at each step of its continuation."""
        with torch.inference_mode():
            return self._margins(prompt, baseline).tolist()

    def _margins(self, prompt: list[int], baseline: Generation) -> torch.Tensor:
        if self.runner is not None:
            return self._text_probe(prompt, baseline).traced.margins
        return margins_of(self._forward_logits(prompt, baseline, None))

    def _with_effects(
        self,
        margins: torch.Tensor,
        outcomes: list[TextOutcome],
        measured: dict[int, Measured],
    ) -> list[TextOutcome]:
        return [
            replace(outcome, effect=effect(measured[index], margins, outcome.diverge_at))
            if index in measured
            else outcome
            for index, outcome in enumerate(outcomes)
        ]

    def _measure_pass(
        self, probe: _TextProbe, batch: Sequence[tuple[int, Mutation]], run: Pass
    ) -> dict[int, Measured]:
        """The effect measurements of one pass's mutants (`batch`), against its control."""
        rows = self.meter.measure_pass(probe.traced, run)
        return {index: row for (index, _), row in zip(batch, rows, strict=True)}

    def _measure_layered(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> dict[int, Measured]:
        """The effect measurements alone, by teacher-forced passes (when decoding runs on
        another path)."""
        probe = self._text_probe(prompt, baseline)
        decisions = slice(probe.reference.prompt_length - 1, None)
        measured: dict[int, Measured] = {}
        for batch in _layer_batches(mutations, self.pass_rows(probe.trace.final.shape[0])):
            run = self.runner.run_from(probe.trace, [m for _, m in batch], decisions, control=True)
            measured.update(self._measure_pass(probe, batch, run))
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
            measured = self._measure(prompt, baseline, mutations)
            margins = self._margins(prompt, baseline)
        return [
            effect(measured[index], margins, divergence)
            for index, divergence in enumerate(diverge_at)
        ]

    def _measure(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> dict[int, Measured]:
        """The effect measurements alone, without decoding: by teacher-forced passes, or on the
        naive path for a model without the layered engine."""
        if self.runner is None:
            return self._measure_lone(prompt, baseline, mutations)
        return self._measure_layered(prompt, baseline, mutations)

    def _forward_logits(
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
        """The effect measurements on the naive path (for models without the layered engine):
        each mutant's forward pass with the weight edited, alone, against the unmutated pass
        of the same shape (its control, which is the traced baseline itself: no noise)."""
        clean = self._forward_logits(prompt, baseline, None)
        targets = torch.tensor(self._targets(baseline, clean))
        measured: dict[int, Measured] = {}
        for index, mutation in enumerate(mutations):
            logits = self._forward_logits(prompt, baseline, mutation)
            measured[index] = measure_logits(clean, targets, [logits])[0]
            self._lone_noise = self._lone_noise.add(0.0, 0.0)
        return measured

    def _screen_text_layered(
        self, prompt: list[int], baseline: Generation, mutations: Sequence[Mutation]
    ) -> tuple[list[TextOutcome], dict[int, Measured]]:
        """The outcomes, and the effect measurements when the screener records them (taken from
        the same teacher-forced passes)."""
        probe = self._text_probe(prompt, baseline)
        reference = probe.reference
        outcomes: list[TextOutcome | None] = [None] * len(mutations)
        measured: dict[int, Measured] = {}
        pending: list[Diverged] = []
        decisions = slice(reference.prompt_length - 1, None)
        rows = self.pass_rows(probe.trace.final.shape[0])
        for batch in _layer_batches(mutations, rows):
            run = self.runner.run_from(
                probe.trace, [m for _, m in batch], decisions, control=self.effects
            )
            final, kv = run.final, run.kv
            if self.effects:
                measured.update(self._measure_pass(probe, batch, run))
            tolerances = torch.tensor([self.tolerance(m) for _, m in batch])
            verdicts = judge(
                reference,
                final,
                self.runner.architecture,
                self.head_norm,
                self._chooser_for(),
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
            if len(pending) >= self.batch_size:
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
        self, probe: _TextProbe, rows: list[Diverged], outcomes: list[TextOutcome | None]
    ) -> None:
        decode_onward(
            self.runner,
            probe.trace,
            probe.reference.prompt_length,
            rows,
            self._chooser_for(),
            self.decoding,
            self.lm.eos_token_ids,
            self.observe_onward,
        )
        for row in rows:
            outcome = TextOutcome(row.tokens, row.stopped, row.nonfinite, False, row.diverge_at)
            outcomes[row.index] = self._settle(probe, row.mutation, outcome, row.ties)

    def _settle(
        self, probe: _TextProbe, mutation: Mutation, outcome: TextOutcome, ties: list[int]
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
        self, probe: _TextProbe, mutation: Mutation, outcome: TextOutcome, ties: list[int]
    ) -> bool:
        """Whether the naive path makes the batched outcome's choices at its near-tie steps.

        For greedy decoding `model.generate` is replayed, fed the batched outcome's tokens
        (`replay`): bit for bit the same, without the layers below the mutated one while those
        tokens are the baseline's, and scored only at the ties. Otherwise the naive path runs as
        far as the last tie and is compared at every step up to it."""
        last = ties[-1]
        wanted = _decisions(outcome.tokens, outcome.stopped, last + 1)
        if GenerateTrace.supports(self.lm, self.decoding):
            trace = self._generate_trace(probe.prompt)
            decisions = trace.decisions(mutation, ties, outcome.tokens[:last])
            if decisions is not None:
                return all(decisions[step] == wanted[step] for step in ties)
        checked = replace(self.decoding, max_new_tokens=last + 1)
        prefix = naive_generate(self.lm, self.catalog, list(probe.prompt), mutation, checked)
        return _decisions(prefix.tokens, prefix.stopped, last + 1) == wanted

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

    def _prompt_trace(self, prompt: list[int]) -> BaselineTrace:
        """A question prompt's baseline trace, made once: the prompt alone decides it."""
        key = tuple(prompt)
        if key not in self._questions:
            self._questions[key] = self.runner.trace(prompt)
        return self._questions[key]

    def _shared_prefix(self, prompts: Sequence[list[int]]) -> _SharedPrefix | None:
        """The traced prefix the prompts share, leaving each at least one token of its own;
        None when they share fewer than MIN_SHARED_PREFIX tokens."""
        key = tuple(tuple(prompt) for prompt in prompts)
        if key not in self._prefixes:
            length = min(len(p) for p in prompts) - 1
            for prompt in prompts[1:]:
                length = next((i for i in range(length) if prompt[i] != prompts[0][i]), length)
            self._prefixes[key] = (
                _SharedPrefix(length, self.runner.trace(prompts[0][:length]))
                if length >= MIN_SHARED_PREFIX
                else None
            )
        return self._prefixes[key]

    def _choose(
        self,
        question: ChoiceQuestion,
        batch: Sequence[tuple[int, Mutation]],
        final: torch.Tensor,
        chat: bool,
    ) -> dict[int, int]:
        """Mutation index -> chosen choice for one question, from the final-norm outputs at its
        answer position (one row per mutation of `batch`); near ties are settled naively."""
        letters = choice_token_ids(self.lm, len(question.choices))
        scores = self.runner.token_logits(final, letters)
        top = scores.float().topk(2, dim=-1).values
        margins = (top[:, 0] - top[:, 1]) / (1.0 + top[:, 0].abs())
        finite = torch.isfinite(scores).all(dim=-1)
        chosen: dict[int, int] = {}
        for row, (index, mutation) in enumerate(batch):
            margin = float(margins[row])
            tie = too_close(margin, self.tolerance(mutation))
            if not bool(finite[row]) or tie:
                chosen[index] = naive_choices(
                    self.lm, self.catalog, [question], mutation, chat=chat
                )[0]
            else:
                chosen[index] = pick_choice(scores[row], range(len(letters)))
        return chosen
