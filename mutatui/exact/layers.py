"""Running a decoder model layer by layer: reuse the baseline's hidden states below a mutated
layer, and keep every layer's keys and values for decoding on from any position.

A mutation of layer L leaves everything below L unchanged, so a batch of mutations of layer L
starts from the baseline's residual stream at L's input and runs only layers L and up. Every
call into the model goes through its architecture adapter (`engine.architecture`): on the
traced sequence the layers get the arguments the model itself passed them (captured from a
normal forward pass of the baseline), elsewhere the masks and position embeddings the adapter
builds for the positions at hand.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mutatui.engine.architecture import Architecture, Positions, unsupported_reason
from mutatui.engine.interventions import sample_deltas
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.mutations import Mutation


class KVStore:
    """Keys and values per layer, shaped (batch, kv_heads, positions, head_dim).

    It has the one method a decoder layer's attention calls on its cache, `update`, which appends
    the new positions and returns everything stored for that layer.
    """

    def __init__(self) -> None:
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self._filled: dict[int, int] = {}  # positions in use, for layers given room

    def reserve(self, room: int) -> None:
        """Give every layer room for `room` more positions, so that updates write in place.

        Decoding appends one position per layer per step; concatenating copied the whole cache
        every time (a tenth of onward decoding's time in one profile). After this, `keys[l]` and `values[l]`
        are buffers whose first positions are filled; `update` returns the filled part."""
        for layer in list(self.keys):
            self._filled[layer] = self.keys[layer].shape[-2]
            self.keys[layer] = _with_room(self.keys[layer], room)
            self.values[layer] = _with_room(self.values[layer], room)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *_args, **_kw
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx in self._filled:
            start = self._filled[layer_idx]
            end = start + key_states.shape[-2]
            keys, values = self.keys[layer_idx], self.values[layer_idx]
            if end > keys.shape[-2]:
                raise ValueError(f"layer {layer_idx}'s cache has no room for position {end - 1}")
            keys[..., start:end, :] = key_states
            values[..., start:end, :] = value_states
            self._filled[layer_idx] = end
            return keys[..., :end, :], values[..., :end, :]
        if layer_idx in self.keys:
            key_states = torch.cat([self.keys[layer_idx], key_states], dim=-2)
            value_states = torch.cat([self.values[layer_idx], value_states], dim=-2)
        self.keys[layer_idx] = key_states
        self.values[layer_idx] = value_states
        return key_states, value_states

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these batch rows, in this order."""
        for layer in self.keys:
            self.keys[layer] = self.keys[layer].index_select(0, rows)
            self.values[layer] = self.values[layer].index_select(0, rows)


class PrefixedKV:
    """The cache of one sequence that continues a shared prefix, for `LayerRunner.run_after`.

    `update` returns the prefix's keys and values (for the rows in the batch; none when the
    prefix is an empty store), then `earlier` ones when given (positions of this sequence
    computed apart, {layer: (keys, values)}), then the new ones, and keeps nothing: the prefix
    serves the next sequence unchanged.
    """

    def __init__(
        self, prefix: KVStore, earlier: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> None:
        self.prefix = prefix
        self.earlier = earlier or {}

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *_args, **_kw
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = key_states.shape[0]
        keys, values = [], []
        if layer_idx in self.prefix.keys:
            keys.append(self.prefix.keys[layer_idx][:rows])
            values.append(self.prefix.values[layer_idx][:rows])
        if layer_idx in self.earlier:
            earlier_keys, earlier_values = self.earlier[layer_idx]
            keys.append(earlier_keys)
            values.append(earlier_values)
        return torch.cat([*keys, key_states], dim=-2), torch.cat([*values, value_states], dim=-2)


def _with_room(states: torch.Tensor, room: int) -> torch.Tensor:
    grown = states.new_empty(*states.shape[:-2], states.shape[-2] + room, states.shape[-1])
    grown[..., : states.shape[-2], :] = states
    return grown


@dataclass(frozen=True)
class Pass:
    """One teacher-forced pass (`LayerRunner.run_from`): the mutant rows' final-norm outputs,
    (mutants, positions, hidden); the keys and values of every batch row, a mutant's at batch
    row `kv_rows[mutant]`; and, when the pass carried controls, their outputs, (controls,
    positions, hidden), a mutant's own control at `control_of[mutant]`."""

    final: torch.Tensor
    kv: KVStore
    kv_rows: list[int]
    controls: torch.Tensor | None = None
    control_of: list[int] | None = None


@dataclass
class BaselineTrace:
    """The unmutated model on one token sequence (batch of one).

    `layer_inputs[l]` is the residual stream entering layer l, (1, positions, hidden), and
    `layer_kwargs[l]` the other arguments the model passed layer l; `final` is the output of
    the final norm, (positions, hidden); `kv` holds every layer's keys and values.
    """

    layer_inputs: list[torch.Tensor]
    layer_kwargs: list[dict]
    final: torch.Tensor
    kv: KVStore


def supports_layers(model: nn.Module) -> bool:
    """True when the model's family has an architecture entry `LayerRunner` can run."""
    return unsupported_reason(model) is None


def layer_batches(
    mutations: Sequence[Mutation], batch_size: int
) -> Iterator[list[tuple[int, Mutation]]]:
    """[(index, mutation)] batches of at most `batch_size`, sorted by layer (rows join a batch
    at their own layer, so neighbouring layers share a batch cheaply)."""
    indexed = sorted(enumerate(mutations), key=lambda item: item[1].site.layer)
    for start in range(0, len(indexed), batch_size):
        yield indexed[start : start + batch_size]


def _layers_of(mutations: Sequence[Mutation]) -> list[int]:
    """The mutations' layers, which must be sorted (rows join the batch in layer order)."""
    layers = [mutation.site.layer for mutation in mutations]
    if layers != sorted(layers):
        raise ValueError("mutations must be sorted by layer")
    return layers


def join_at_layer(
    layer_inputs: Sequence[torch.Tensor],
    layers: Sequence[int],
    layer: int,
    hidden: torch.Tensor,
    start: int = 0,
) -> torch.Tensor:
    """`hidden` with the rows whose mutation is at `layer` appended (`layers`: each row's,
    sorted), entering with the baseline's residual stream at that layer's input
    (`layer_inputs[layer]`, positions `start:`)."""
    joining = bisect_right(layers, layer) - hidden.shape[0]
    if not joining:
        return hidden
    entry = layer_inputs[layer][:, start:]
    return torch.cat([hidden, entry.expand(joining, *entry.shape[1:])])


class LayerRunner:
    """Calls the embedding, decoder layers, final norm and head of a model, through its
    architecture adapter, with per-sample mutations on the catalog's matrices."""

    def __init__(self, model: nn.Module, catalog: MatrixCatalog) -> None:
        self.architecture = Architecture(model)
        self.catalog = catalog
        self.num_layers = self.architecture.num_layers

    @property
    def head_weight(self) -> torch.Tensor:
        return self.architecture.head_weight

    def trace(self, input_ids: Sequence[int]) -> BaselineTrace:
        """Run the unmutated model on `input_ids`, keeping what the mutated runs reuse."""
        arch = self.architecture
        ids = torch.tensor([list(input_ids)], dtype=torch.long, device=arch.device)
        outputs = []
        calls = arch.capture_arguments(
            lambda: outputs.append(arch.base(input_ids=ids, use_cache=False))
        )
        layer_inputs = [hidden for hidden, _ in calls[0]]
        layer_kwargs = [arguments for _, arguments in calls[0]]
        kv = KVStore()
        for index, (hidden, arguments) in enumerate(calls[0]):
            kv.keys[index], kv.values[index] = arch.keys_values(index, hidden, arguments)
        final = outputs[0].last_hidden_state[0]
        return BaselineTrace(layer_inputs, layer_kwargs, final, kv)

    def run_from(
        self,
        trace: BaselineTrace,
        mutations: Sequence[Mutation],
        positions: slice,
        *,
        control: bool = False,
    ) -> Pass:
        """Every mutation (one batch row each, sorted by layer) on the traced sequence.

        A row joins the batch at its mutation's layer, entering with the baseline's residual
        stream there, so a row costs only the layers from its own up: at layer l the batch is
        the rows whose layer is at most l. With `control`, an unmutated row joins with the
        first mutants of the pass, and again with those of a later layer unless the control
        already there enters that layer with the baseline's residual stream bit for bit: every
        mutant then has a control that entered its layer with its own input, in the same pass.
        Returns the mutants' final-norm outputs at `positions`, the keys and values of every
        row, and the controls' outputs.
        """
        arch = self.architecture
        layers = _layers_of(mutations)
        kv = KVStore()
        hidden = trace.layer_inputs[layers[0]][:0]
        mutant_rows: list[int] = []
        control_rows: list[int] = []
        control_of: list[int] = []
        for layer in range(layers[0], self.num_layers):
            first, stop = bisect_left(layers, layer), bisect_right(layers, layer)
            if stop > first:
                entry = trace.layer_inputs[layer]
                fresh = control and not (
                    control_rows and torch.equal(hidden[control_rows[-1]], entry[0])
                )
                if fresh:
                    control_rows.append(hidden.shape[0])
                start = hidden.shape[0] + int(fresh)
                mutant_rows += range(start, start + stop - first)
                control_of += [len(control_rows) - 1] * (stop - first) if control else []
                joining = stop - first + int(fresh)
                hidden = torch.cat([hidden, entry.expand(joining, *entry.shape[1:])])
            deltas = list(zip(mutant_rows[first:stop], mutations[first:stop], strict=True))
            with sample_deltas(self.catalog, deltas):
                hidden = arch.call_layer(layer, hidden, kv, trace.layer_kwargs[layer])
        final = arch.norm(hidden[:, positions])
        if not control:
            return Pass(final, kv, mutant_rows)
        return Pass(final[mutant_rows], kv, mutant_rows, final[control_rows], control_of)

    def run_prefix(self, trace: BaselineTrace, mutations: Sequence[Mutation]) -> KVStore:
        """The keys and values `run_after` continues from: `run_from` on a prefix that many
        sequences share, whose own outputs nobody reads, so its last layer computes only its
        keys and values."""
        arch = self.architecture
        layers = _layers_of(mutations)
        last = self.num_layers - 1
        kv = KVStore()
        hidden = trace.layer_inputs[layers[0]][:0]
        with sample_deltas(self.catalog, list(enumerate(mutations))):
            for layer in range(layers[0], last):
                hidden = join_at_layer(trace.layer_inputs, layers, layer, hidden)
                hidden = arch.call_layer(layer, hidden, kv, trace.layer_kwargs[layer])
            hidden = join_at_layer(trace.layer_inputs, layers, last, hidden)
            kv.keys[last], kv.values[last] = arch.keys_values(
                last, hidden, trace.layer_kwargs[last]
            )
        return kv

    def run_after(
        self,
        trace: BaselineTrace,
        start: int,
        mutations: Sequence[Mutation],
        prefix: KVStore,
    ) -> torch.Tensor:
        """Like `run_from` on positions `start:` of the traced sequence, its first `start`
        positions already run for these mutations: `prefix` is what `run_prefix` kept for
        them (an empty store, with `start` 0, for a sequence run whole). Many sequences sharing
        a prefix (the chat template's system turn before each question) thus run it once per
        mutation, not once per sequence. Only the last position's output is returned, (rows,
        hidden), so the last layer runs the rest of the layer for that position alone
        (`_last_position`)."""
        arch = self.architecture
        layers = _layers_of(mutations)
        first = trace.layer_inputs[layers[0]]
        stop = first.shape[1]
        hidden = first[:0, start:]
        arguments = arch.arguments(hidden, Positions.contiguous(start, stop, first.device))
        last = self.num_layers - 1
        with sample_deltas(self.catalog, list(enumerate(mutations))):
            for layer in range(layers[0], last):
                hidden = join_at_layer(trace.layer_inputs, layers, layer, hidden, start)
                hidden = arch.call_layer(layer, hidden, PrefixedKV(prefix), arguments[layer])
            hidden = join_at_layer(trace.layer_inputs, layers, last, hidden, start)
            hidden = self._last_position(hidden, start, prefix)
        return arch.norm(hidden[:, -1])

    def _last_position(self, hidden: torch.Tensor, start: int, prefix: KVStore) -> torch.Tensor:
        """The last decoder layer where only the last position's output is read: the keys and
        values of the earlier positions (`hidden` holds positions start:), then the whole layer
        on the last position alone. Returns (rows, 1, hidden)."""
        arch = self.architecture
        last = self.num_layers - 1
        stop = start + hidden.shape[1]
        device = hidden.device
        earlier: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if hidden.shape[1] > 1:  # a layer cannot shape the heads of zero positions
            before = hidden[:, :-1]
            arguments = arch.layer_arguments(
                last, before, Positions.contiguous(start, stop - 1, device)
            )
            earlier[last] = arch.keys_values(last, before, arguments)
        own = hidden[:, -1:]
        own_arguments = arch.layer_arguments(
            last, own, Positions.contiguous(stop - 1, stop, device)
        )
        return arch.call_layer(last, own, PrefixedKV(prefix, earlier), own_arguments)

    def step(
        self,
        tokens: torch.Tensor,
        positions: Positions,
        kv: KVStore,
        mutations: Sequence[Mutation],
    ) -> torch.Tensor:
        """One decoding step for rows at different positions: each row's new token `tokens[r]`
        sits at `positions.queries[r]` and attends to the stored keys `positions` allows, and to
        itself (the last of `positions.keys`). Returns the head's logits, (rows, vocab);
        appends to `kv`."""
        arch = self.architecture
        rows = tokens.shape[0]
        hidden = arch.embed(tokens.view(rows, 1), positions.queries)
        arguments = arch.arguments(hidden, positions)
        with sample_deltas(self.catalog, list(enumerate(mutations))):
            for layer in range(self.num_layers):
                hidden = arch.call_layer(layer, hidden, kv, arguments[layer])
        return arch.logits(arch.norm(hidden[:, -1]))

    def logits(self, final: torch.Tensor) -> torch.Tensor:
        """The head applied to final-norm outputs."""
        return self.architecture.logits(final)

    def token_logits(
        self, final: torch.Tensor, tokens: torch.Tensor | Sequence[int]
    ) -> torch.Tensor:
        """The logits of `tokens` only, for final-norm outputs (..., hidden)."""
        return self.architecture.token_logits(final, tokens)
