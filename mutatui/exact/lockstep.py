"""The naive path for a whole batch: greedy decoding of many mutants at once that computes, for
each, the floats `model.generate` computes for it alone.

Where a batched pass and a lone one round differently (native half precision), nearly every
decision of the fast engine is a near tie that needs a naive check. This decoder needs none: it
makes `generate`'s own calls (the prompt in one call, then one token per call) for every mutant
at once, every matrix product in a shape whose rows compute as lone rows do
(`invariance.ChunkedLinears`), attention the model's own, which computes each batch row as a
lone one. Like a replay of `generate` (`replay`), a mutant of layer L starts at L from the
baseline's recorded input while it is fed the baseline's tokens, over the baseline's keys and
values below L; once it feeds a token of its own it runs every layer. All mutants sit at the
same position at every call (one call per step for everyone), so no mask or padding enters.

Whether the floats really are the lone ones depends on the kernels of the machine: the lockstep
path (`LockstepPath`, what the screener uses) holds a sample against the naive path before it
relies on this decoder, and settles everything naively where it does not hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mutatui.engine.architecture import Architecture, Positions
from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, Generation
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation
from mutatui.exact.invariance import ChunkedLinears, RowEdit, row_chunk, row_edit
from mutatui.exact.layers import join_at_layer
from mutatui.exact.outcome import TextOutcome, naive_outcome
from mutatui.exact.probes import ProbeTraces
from mutatui.exact.replay import GenerateTrace
from mutatui.exact.teacher import teacher_input
from mutatui.exact.tolerance import lone_logits

Observer = Callable[[list[int], int, torch.Tensor], None]
"""Sees each call's decisions: the mutation indices of the rows deciding, the step, and their
float32 logits (rows, vocab)."""

CHECKED_MUTANTS = 3
"""Mutants a screen holds against the naive path, logit for logit, before it relies on this
decoder; one of them must have changed the output (its continuation then went through both
ways a row runs: fed the baseline's tokens, and its own)."""


_POSITIONAL_ARGUMENTS = ("position_ids", "position_embeddings")
"""The arguments of a one-token `generate` call that depend on its position; this decoder
makes them for positions past the baseline's, and needs every other argument to be None."""


def linear_modules(architecture: Architecture) -> list[nn.Module]:
    """The matrix products of the decoder layers and the head."""
    modules = [
        module
        for layer in architecture.layers
        for module in layer.modules()
        if isinstance(module, nn.Linear)
    ]
    return [*modules, architecture.head]


def unsupported_reason(
    trace: GenerateTrace, catalog: MatrixCatalog, chunk: int, max_new_tokens: int
) -> str | None:
    """Why this decoder cannot reproduce `trace`'s model alone (None when it can)."""
    if any(type(catalog.module(info.layer, info.name)) is not nn.Linear for info in catalog):
        return "matrices that are not linear layers"
    if any("forward" in vars(module) for module in linear_modules(trace.architecture)):
        return "a model whose layers are wrapped (dispatched over devices)"
    positions = trace.calls[0].length + max_new_tokens
    if any(window is not None and window < positions for window in trace.architecture.windows):
        return "a sliding window shorter than the probe"
    for call in trace.calls[1:]:
        for arguments in call.layer_kwargs:
            others = (value for key, value in arguments.items() if key not in _POSITIONAL_ARGUMENTS)
            if any(value is not None for value in others):
                return "generate passes its layers arguments this decoder does not make"
    if chunk < 2:  # the machine's, where the model's own obstacles are the model's
        return "no batched product on this device computes rows as lone rows"
    return None


@dataclass
class _Row:
    index: int
    mutation: Mutation
    edit: RowEdit
    tokens: list[int] = field(default_factory=list)
    stopped: bool = False
    nonfinite: bool = False
    own: bool = False  # has fed a token of its own: runs every layer from then on
    finished: bool = False


class _Group:
    """Rows that run each call together, with every layer's keys and values for them.

    `keys[l]` is (rows, kv_heads, positions, head_dim), its first rows those that run layer l,
    filled up to position `filled`. Rows that finished (or left) stay in place, computed and
    never read, until there are enough of them to `compact`."""

    def __init__(self, positions: int, *, own: bool) -> None:
        self.rows: list[_Row] = []
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.positions = positions
        self.own = own
        self.filled = 0

    def allocate(self, layer: int, like: torch.Tensor, rows: int) -> None:
        """Layer `layer`'s buffers for `rows` rows and every position, in `like`'s dtype,
        device, heads and head size."""
        shape = (rows, like.shape[1], self.positions, like.shape[-1])
        self.keys[layer] = like.new_empty(shape)
        self.values[layer] = like.new_empty(shape)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *_a, **_kw
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cache method attention calls: store the new positions of the rows in the call
        (the first rows of the group), return everything stored for them."""
        rows, end = key_states.shape[0], self.filled + key_states.shape[-2]
        if layer_idx not in self.keys:
            self.allocate(layer_idx, key_states, rows)
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[:rows, :, self.filled : end] = key_states
        values[:rows, :, self.filled : end] = value_states
        return keys[:rows, :, :end], values[:rows, :, :end]

    def live(self) -> list[int]:
        """The rows still decoding here."""
        return [n for n, row in enumerate(self.rows) if not row.finished and row.own == self.own]

    def compact(self) -> None:
        """Drop the rows no longer decoding here, when they are a good part of the group."""
        keep = self.live()
        if len(self.rows) - len(keep) <= max(4, len(keep) // 4):
            return
        self.rows = [self.rows[n] for n in keep]
        for layer, keys in self.keys.items():
            index = [n for n in keep if n < keys.shape[0]]
            index = torch.tensor(index, dtype=torch.long, device=keys.device)
            keys[: len(index)] = keys.index_select(0, index)
            self.values[layer][: len(index)] = self.values[layer].index_select(0, index)


class LockstepDecoder:
    """Greedy decoding of batches of mutants on the prompt `trace` recorded, each exactly as
    `model.generate` decodes it alone (see the module's docstring)."""

    def __init__(self, trace: GenerateTrace, catalog: MatrixCatalog, chunk: int) -> None:
        self.trace = trace
        self.catalog = catalog
        self.architecture = trace.architecture
        self.linears = ChunkedLinears(catalog, linear_modules(self.architecture), chunk)
        self.prompt_length = trace.calls[0].length
        self.baseline = trace.generation

    @staticmethod
    def chunk_for(architecture: Architecture) -> int:
        """Rows per product that compute as lone rows on this model and device."""
        return row_chunk(linear_modules(architecture))

    def decode(
        self, mutations: Sequence[Mutation], max_new_tokens: int, observe: Observer | None = None
    ) -> list[Generation]:
        """Each mutation's greedy continuation, in the order given."""
        eos = self.trace.lm.eos_token_ids
        ordered = sorted(enumerate(mutations), key=lambda item: item[1].site.layer)
        rows = [
            _Row(index, mutation, row_edit(self.catalog, mutation)) for index, mutation in ordered
        ]
        positions = self.prompt_length + max_new_tokens
        fed = _Group(positions, own=False)  # fed the baseline's tokens: each from its layer
        fed.rows = list(rows)
        own = _Group(positions, own=True)
        below = self.trace.baseline_kv()  # before the products are chunked: generate's own
        with torch.inference_mode(), self.linears.active():
            for step in range(max_new_tokens):
                leaving: list[int] = []
                for group, run in ((fed, self._run_fed), (own, self._run_own)):
                    live = group.live()
                    if not live:
                        continue
                    scores = run(group, step).to(copy=True, dtype=torch.float32)
                    group.filled += self.prompt_length if step == 0 else 1
                    if observe is not None:
                        observe([group.rows[n].index for n in live], step, scores[live])
                    tokens = scores.argmax(dim=-1).tolist()
                    finite = torch.isfinite(scores).all(dim=-1).tolist()
                    for number in live:
                        row = group.rows[number]
                        row.nonfinite |= not finite[number]
                        self._decide(row, step, tokens[number], eos, max_new_tokens)
                        if group is fed and row.own and not row.finished:
                            leaving.append(number)  # chose a token of its own
                for number in leaving:
                    self._move(fed, number, own, len(rows), below)
                fed.compact()
                own.compact()
                if not fed.live() and not own.live():
                    break
        by_index = sorted(rows, key=lambda row: row.index)
        return [Generation(row.tokens, row.stopped, nonfinite=row.nonfinite) for row in by_index]

    def _decide(
        self, row: _Row, step: int, token: int, eos: frozenset[int], max_new_tokens: int
    ) -> None:
        """`generate`'s greedy step: `token` is the argmax of the row's float32 logits."""
        if token in eos:
            row.stopped = row.finished = True
            return
        row.tokens.append(token)
        if len(row.tokens) >= max_new_tokens:
            row.finished = True
        baseline = self.baseline.tokens
        if not row.own and (step >= len(baseline) or token != baseline[step]):
            row.own = True

    @staticmethod
    def _edits(group: _Group, layer: int) -> dict[nn.Module, list[tuple[int, RowEdit]]]:
        """The edits of the group's rows mutated in layer `layer`, by module."""
        edits: dict[nn.Module, list[tuple[int, RowEdit]]] = {}
        for number, row in enumerate(group.rows):
            if row.mutation.site.layer == layer and not row.finished:
                edits.setdefault(row.edit.module, []).append((number, row.edit))
        return edits

    def _run_fed(self, group: _Group, step: int) -> torch.Tensor:
        """One `generate` call for rows fed the baseline's tokens so far: each row joins at its
        mutation's layer with the baseline's recorded input there. Returns (rows, vocab)."""
        arch = self.architecture
        call = self.trace.calls[step]
        layers = [row.mutation.site.layer for row in group.rows]
        hidden = call.layer_inputs[layers[0]][:0]
        for layer in range(layers[0], arch.num_layers):
            hidden = join_at_layer(call.layer_inputs, layers, layer, hidden)
            self.linears.edits = self._edits(group, layer)
            hidden = arch.call_layer(layer, hidden, group, call.layer_kwargs[layer])
        return self._head(hidden, call.head_positions)

    def _run_own(self, group: _Group, step: int) -> torch.Tensor:
        """One `generate` call for rows fed tokens of their own: every layer."""
        arch = self.architecture
        position = self.prompt_length + step - 1
        device = arch.device
        tokens = [row.tokens[-1] if row.tokens else 0 for row in group.rows]
        ids = torch.tensor(tokens, device=device).view(-1, 1)
        hidden = arch.embed(ids, torch.full_like(ids, position))
        for layer in range(arch.num_layers):
            self.linears.edits = self._edits(group, layer)
            hidden = arch.call_layer(layer, hidden, group, self._arguments(step, layer, hidden))
        return self._head(hidden, 1)

    def _arguments(self, step: int, layer: int, hidden: torch.Tensor) -> dict:
        """What `generate` passes layer `layer` at `step`: recorded while the baseline ran so
        long; past it, a recorded one-token call's arguments with the new position's
        (`_POSITIONAL_ARGUMENTS`), or, when the baseline made none, no mask and those."""
        calls = self.trace.calls
        if step < len(calls):
            return calls[step].layer_kwargs[layer]
        position = self.prompt_length + step - 1
        where = Positions.contiguous(position, position + 1, hidden.device)
        built = self.architecture.layer_arguments(layer, hidden[:1], where)
        template = calls[-1].layer_kwargs[layer] if len(calls) > 1 else {"attention_mask": None}
        return {
            **template,
            **{key: built[key] for key in _POSITIONAL_ARGUMENTS if key in built},
        }

    def _head(self, hidden: torch.Tensor, positions: int) -> torch.Tensor:
        """The logits of the last position, as `generate` takes them: the final norm over the
        call's positions, the head over its last `positions`."""
        arch = self.architecture
        self.linears.edits = {}
        final = arch.norm(hidden)[:, -positions:, :]
        return arch.logits(final)[:, -1, :]

    def _move(
        self,
        fed: _Group,
        number: int,
        own: _Group,
        total: int,
        below: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        """Row `number` of `fed` feeds its own tokens from now on: into `own` (of `total` rows
        at most), with the baseline's keys and values (`below`, every layer's) below its layer
        and its own from there."""
        row = fed.rows[number]
        slot = len(own.rows)
        own.rows.append(row)
        filled = own.filled = fed.filled
        for layer, (keys, values) in enumerate(below):
            if layer not in own.keys:
                own.allocate(layer, keys, total)
            if layer >= row.mutation.site.layer:
                keys, values = (
                    fed.keys[layer][number : number + 1],
                    fed.values[layer][number : number + 1],
                )
            own.keys[layer][slot, :, :filled] = keys[0, :, :filled]
            own.values[layer][slot, :, :filled] = values[0, :, :filled]


def fingerprints(scores: torch.Tensor) -> list[int]:
    """One integer per row of float32 logits that changes with any one bit of them (the sum of
    their bit patterns): what a check compares, instead of keeping every row's logits."""
    return scores.contiguous().view(torch.int32).sum(dim=-1, dtype=torch.int64).tolist()


def checked_decode(
    decoder: LockstepDecoder,
    mutations: Sequence[Mutation],
    decoding: Decoding,
    lone: Callable[[Mutation, list[int]], torch.Tensor],
    count: int = CHECKED_MUTANTS,
) -> tuple[list[Generation], list[bool] | None]:
    """`decoder.decode`, with up to `count` of the mutants held against the naive path, those
    that changed the output first: `lone(mutation, fed)` gives the naive path's float32 logits
    at every decision for the tokens fed. Returns the results and, when every checked logit was
    the naive path's bit for bit, whether each checked mutant changed the output; None when one
    was not the naive path's."""
    seen: dict[int, list[int]] = {}

    def observe(indices: list[int], _step: int, scores: torch.Tensor) -> None:
        for index, value in zip(indices, fingerprints(scores), strict=True):
            seen.setdefault(index, []).append(value)

    results = decoder.decode(mutations, decoding.max_new_tokens, observe)
    baseline = decoder.baseline.tokens
    changed = [n for n, result in enumerate(results) if result.tokens != baseline]
    unchanged = [n for n, result in enumerate(results) if result.tokens == baseline]
    picked = [*changed, *unchanged][:count]
    for number in picked:
        fed = teacher_input(decoder.trace.prompt, results[number], decoding)
        if fingerprints(lone(mutations[number], fed)) != seen[number]:
            return results, None
    return results, [results[number].tokens != baseline for number in picked]


class LockstepPath:
    """The lockstep decoder as a screen uses it: one decoder per probe prompt, relied on once
    `CHECKED_MUTANTS` mutants (one of them output-changing) held against the naive path, and
    given up for the whole screen when one did not; mutants it cannot take are settled on the
    naive path, one at a time."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        decoding: Decoding,
        architecture: Architecture,
        traces: ProbeTraces,
    ) -> None:
        self.lm = lm
        self.catalog = catalog
        self.decoding = decoding
        self.architecture = architecture
        self.traces = traces
        self.chunk: int | None = None
        """Rows per matrix product that compute as lone rows (measured on first use)."""
        self.decoders: dict[tuple[int, ...], LockstepDecoder | str] = {}
        """Per probe prompt, its lockstep decoder, or why it cannot run on it."""
        self.held: list[bool] = []
        """Whether each mutant held against the naive path so far changed the output."""
        self.failure: str | None = None
        """Why the lockstep decoder runs for no probe of this screen (None while it may)."""
        self.check_seconds = 0.0
        """Time spent holding the decoder against the naive path: once per screen, not per
        mutation (`screening.estimate` leaves it out of the rate)."""
        self.state: str | None = None
        """How the decoder fared last: None until asked, "exact" when it ran, else why it did
        not."""

    def decoder(self, prompt: list[int]) -> LockstepDecoder | None:
        """The lockstep decoder for `prompt`, when it can run here (None when not, with the
        reason in `state`)."""
        if not GenerateTrace.supports(self.lm, self.decoding):
            self.failure = "it decodes greedily only"
        if self.failure is not None:
            self.state = self.failure
            return None
        key = tuple(prompt)
        if key not in self.decoders:  # once per probe, not once per batch
            if self.chunk is None:
                self.chunk = LockstepDecoder.chunk_for(self.architecture)
            trace = self.traces.generated(prompt)
            steps = self.decoding.max_new_tokens
            reason = unsupported_reason(trace, self.catalog, self.chunk, steps)
            self.decoders[key] = (
                LockstepDecoder(trace, self.catalog, self.chunk)
                if reason is None
                else reason  # of this probe (its length, its arguments): others may run
            )
        decoder = self.decoders[key]
        if isinstance(decoder, str):
            self.state = decoder
            return None
        return decoder

    def decode(
        self,
        prompt: list[int],
        baseline: Generation,
        mutations: Sequence[Mutation],
        batch_size: int,
    ) -> list[TextOutcome]:
        """The naive path's outcomes, batched by the lockstep decoder once a sample held
        against the naive path; one mutant at a time on the naive path where it cannot run or
        did not hold."""
        decoder = self.decoder(prompt)
        outcomes: list[TextOutcome] = []
        for start in range(0, len(mutations), batch_size):
            batch = list(mutations[start : start + batch_size])
            if decoder is None:
                outcomes += [self._naive(prompt, baseline, m) for m in batch]
                continue
            needed = self.checks_needed()
            if not needed:
                results = decoder.decode(batch, self.decoding.max_new_tokens)
            else:
                lone = self.lone_logits(prompt)
                results, held = checked_decode(decoder, batch, self.decoding, lone, needed)
                if held is None:
                    self.failure = "its logits differ from the naive path's here"
                    self.state, decoder = self.failure, None
                    outcomes += [self._naive(prompt, baseline, m) for m in batch]
                    continue
                self.held += held
            self.state = "exact"
            for result in results:
                divergence = first_divergence(baseline.tokens, result.tokens)
                outcomes.append(
                    TextOutcome(result.tokens, result.stopped, result.nonfinite, False, divergence)
                )
        return outcomes

    def checks_needed(self) -> int:
        """How many more mutants to hold against the naive path before relying on the decoder
        (`CHECKED_MUTANTS`, one of them output-changing)."""
        if len(self.held) < CHECKED_MUTANTS:
            return CHECKED_MUTANTS - len(self.held)
        return 0 if any(self.held) else 1

    def lone_logits(self, prompt: list[int]) -> Callable[[Mutation, list[int]], torch.Tensor]:
        """The naive path's logits a check compares with, timed into `check_seconds`."""

        def lone(mutation: Mutation, fed: list[int]) -> torch.Tensor:
            started = time.perf_counter()
            logits = lone_logits(self.lm, self.catalog, mutation, fed, len(prompt))
            self.check_seconds += time.perf_counter() - started
            return logits

        return lone

    def _naive(self, prompt: list[int], baseline: Generation, mutation: Mutation) -> TextOutcome:
        return naive_outcome(self.lm, self.catalog, self.decoding, prompt, baseline, mutation)
