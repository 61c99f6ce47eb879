"""Running a Llama-family model layer by layer: reuse the baseline's hidden states below a
mutated layer, and keep every layer's keys and values for decoding on from any position.

A mutation of layer L leaves everything below L unchanged, so a batch of mutations of layer L
starts from the baseline's residual stream at L's input and runs only layers L and up. The
decoder layers are called directly with the arguments the model itself passes them (captured
once from a normal forward pass of the baseline), so masks and rotary embeddings are the model's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from mutatui.engine.interventions import sample_deltas
from mutatui.engine.kv import with_cache, without_cache_arguments
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.mutations import Mutation

LAYERED_MODEL_TYPES = frozenset({"llama"})
"""Model types whose decoder layers take (hidden, attention_mask, position_ids, a cache (named
as `engine.kv` finds it), use_cache, position_embeddings) and whose head is norm then lm_head,
with nothing in between."""


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


@dataclass
class BaselineTrace:
    """The unmutated model on one token sequence (batch of one).

    `layer_inputs[l]` is the residual stream entering layer l, (1, positions, hidden); `final`
    is the output of the final norm, (positions, hidden); `kv` holds every layer's keys and values.
    """

    layer_inputs: list[torch.Tensor]
    layer_kwargs: dict
    final: torch.Tensor
    kv: KVStore


def supports_layers(model: nn.Module) -> bool:
    """True when the model is of a family whose layers `LayerRunner` can call directly."""
    config = getattr(model, "config", None)
    inner = getattr(model, "model", None)
    return (
        getattr(config, "model_type", None) in LAYERED_MODEL_TYPES
        and all(hasattr(inner, name) for name in ("embed_tokens", "layers", "norm", "rotary_emb"))
        and model.get_output_embeddings() is not None
    )


def token_logits(
    head: nn.Module, final: torch.Tensor, tokens: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """The head's logits of `tokens` only, for final-norm outputs `final` (..., hidden): one
    small product instead of the whole vocabulary's."""
    logits = final @ head.weight[tokens].T
    bias = getattr(head, "bias", None)
    return logits if bias is None else logits + bias[tokens]


def _hidden(output: torch.Tensor | tuple) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _layers_of(mutations: Sequence[Mutation]) -> list[int]:
    """The mutations' layers, which must be sorted (rows join the batch in layer order)."""
    layers = [mutation.site.layer for mutation in mutations]
    if layers != sorted(layers):
        raise ValueError("mutations must be sorted by layer")
    return layers


def _join(
    trace: BaselineTrace, layers: list[int], layer: int, hidden: torch.Tensor, start: int = 0
) -> torch.Tensor:
    """`hidden` with the rows whose mutation is at `layer` appended, entering with the
    baseline's residual stream at that layer's input (positions `start:`)."""
    joining = bisect_right(layers, layer) - hidden.shape[0]
    if not joining:
        return hidden
    entry = trace.layer_inputs[layer][:, start:]
    return torch.cat([hidden, entry.expand(joining, *entry.shape[1:])])


class LayerRunner:
    """Calls the embedding, decoder layers, final norm and head of a Llama-family model."""

    def __init__(self, model: nn.Module, catalog: MatrixCatalog) -> None:
        self.model = model
        self.catalog = catalog
        self.inner = model.model
        self.layers: nn.ModuleList = self.inner.layers
        self.head: nn.Module = model.get_output_embeddings()

    @property
    def head_weight(self) -> torch.Tensor:
        return self.head.weight

    def trace(self, input_ids: Sequence[int]) -> BaselineTrace:
        """Run the unmutated model on `input_ids`, keeping what the mutated runs reuse."""
        device = self.head_weight.device
        ids = torch.tensor([list(input_ids)], dtype=torch.long, device=device)
        captured: dict = {}

        def capture(_module, _args, kwargs):
            captured.update(kwargs)

        handle = self.layers[0].register_forward_pre_hook(capture, with_kwargs=True)
        try:
            self.inner(input_ids=ids, use_cache=False)
        finally:
            handle.remove()
        layer_kwargs = without_cache_arguments(captured)
        kv = KVStore()
        layer_inputs: list[torch.Tensor] = []
        hidden = self.inner.embed_tokens(ids)
        for layer in self.layers:
            layer_inputs.append(hidden)
            hidden = _hidden(layer(hidden, **with_cache(layer, kv), **layer_kwargs))
        final = self.inner.norm(hidden)[0]
        return BaselineTrace(layer_inputs, layer_kwargs, final, kv)

    def run_from(
        self,
        trace: BaselineTrace,
        mutations: Sequence[Mutation],
        positions: slice,
    ) -> tuple[torch.Tensor, KVStore]:
        """Every mutation (one batch row each, sorted by layer) on the traced sequence.

        A row joins the batch at its mutation's layer, entering with the baseline's residual
        stream there, so a row costs only the layers from its own up: at layer l the batch is
        the rows whose layer is at most l, a prefix of the sorted rows. Returns the final-norm
        output at `positions`, (rows, len(positions), hidden), and the keys and values, which
        for layer l hold the rows that had joined by then.
        """
        layers = _layers_of(mutations)
        kv = KVStore()
        hidden = trace.layer_inputs[layers[0]][:0]
        with sample_deltas(self.catalog, list(enumerate(mutations))):
            for layer in range(layers[0], len(self.layers)):
                hidden = _join(trace, layers, layer, hidden)
                hidden = _hidden(
                    self.layers[layer](
                        hidden, **with_cache(self.layers[layer], kv), **trace.layer_kwargs
                    )
                )
        return self.inner.norm(hidden[:, positions]), kv

    def run_prefix(self, trace: BaselineTrace, mutations: Sequence[Mutation]) -> KVStore:
        """The keys and values `run_after` continues from: `run_from` on a prefix that many
        sequences share, whose own outputs nobody reads, so its last layer computes only its
        keys and values."""
        layers = _layers_of(mutations)
        last = len(self.layers) - 1
        kv = KVStore()
        hidden = trace.layer_inputs[layers[0]][:0]
        with sample_deltas(self.catalog, list(enumerate(mutations))):
            for layer in range(layers[0], last):
                hidden = _join(trace, layers, layer, hidden)
                hidden = _hidden(
                    self.layers[layer](
                        hidden, **with_cache(self.layers[layer], kv), **trace.layer_kwargs
                    )
                )
            hidden = _join(trace, layers, last, hidden)
            rotary = trace.layer_kwargs["position_embeddings"]
            kv.keys[last], kv.values[last] = self._last_keys_values(hidden, rotary)
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
        layers = _layers_of(mutations)
        first = trace.layer_inputs[layers[0]]
        length = first.shape[1] - start
        position_ids = torch.arange(start, start + length, device=first.device).view(1, length)
        rotary = self.inner.rotary_emb(first, position_ids)
        visible = torch.ones(length, start + length, dtype=torch.bool, device=first.device)
        visible[:, start:] = torch.tril(visible[:, start:])
        mask = torch.zeros(visible.shape, dtype=first.dtype, device=first.device)
        mask = mask.masked_fill(~visible, torch.finfo(first.dtype).min).view(1, 1, length, -1)
        hidden = first[:0, start:]
        last = len(self.layers) - 1
        with sample_deltas(self.catalog, list(enumerate(mutations))):
            for layer in range(layers[0], last):
                hidden = _join(trace, layers, layer, hidden, start)
                hidden = _hidden(
                    self.layers[layer](
                        hidden,
                        attention_mask=mask,
                        position_ids=position_ids,
                        **with_cache(self.layers[layer], PrefixedKV(prefix)),
                        position_embeddings=rotary,
                    )
                )
            hidden = _join(trace, layers, last, hidden, start)
            hidden = self._last_position(hidden, mask, position_ids, rotary, prefix)
        return self.inner.norm(hidden[:, -1])

    def _last_keys_values(
        self, hidden: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The last decoder layer's keys (rotated) and values for input `hidden`, (rows,
        kv_heads, positions, head_dim) each: what later positions attend to, without the
        queries, attention, o and MLP that are nine tenths of a layer's cost."""
        block = self.layers[-1]
        attention = block.self_attn
        normed = block.input_layernorm(hidden)
        keys, values = attention.k_proj(normed), attention.v_proj(normed)
        # heads spelled out: a sequence of one position leaves none here, and view(-1) fails
        shape = (*normed.shape[:-1], keys.shape[-1] // attention.head_dim, attention.head_dim)
        keys = keys.view(shape).transpose(1, 2)
        values = values.view(shape).transpose(1, 2)
        cos, sin = rotary
        _, keys = apply_rotary_pos_emb(keys, keys, cos, sin)
        return keys, values

    def _last_position(
        self,
        hidden: torch.Tensor,
        mask: torch.Tensor,
        position_ids: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        prefix: KVStore,
    ) -> torch.Tensor:
        """The last decoder layer where only the last position's output is read: the keys and
        values of the earlier positions, then the whole layer on the last position alone.
        Returns (rows, 1, hidden)."""
        cos, sin = rotary
        earlier = self._last_keys_values(hidden[:, :-1], (cos[:, :-1], sin[:, :-1]))
        return _hidden(
            self.layers[-1](
                hidden[:, -1:],
                attention_mask=mask[..., -1:, :],
                position_ids=position_ids[:, -1:],
                **with_cache(self.layers[-1], PrefixedKV(prefix, {len(self.layers) - 1: earlier})),
                position_embeddings=(cos[:, -1:], sin[:, -1:]),
            )
        )

    def step(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        visible: torch.Tensor,
        kv: KVStore,
        mutations: Sequence[Mutation],
    ) -> torch.Tensor:
        """One decoding step for rows at different positions: each row's new token `tokens[r]`
        sits at `positions[r]`, attends to the stored positions where `visible[r]` is True, and
        to itself. Returns the head's logits, (rows, vocab); appends to `kv`."""
        rows = tokens.shape[0]
        hidden = self.inner.embed_tokens(tokens.view(rows, 1))
        position_ids = positions.view(rows, 1)
        allowed = torch.cat([visible, visible.new_ones(rows, 1)], dim=1)
        blocked = torch.finfo(hidden.dtype).min
        mask = torch.zeros(allowed.shape, dtype=hidden.dtype, device=hidden.device)
        mask = mask.masked_fill(~allowed, blocked).view(rows, 1, 1, -1)
        rotary = self.inner.rotary_emb(hidden, position_ids)
        with sample_deltas(self.catalog, list(enumerate(mutations))):
            for block in self.layers:
                hidden = _hidden(
                    block(
                        hidden,
                        attention_mask=mask,
                        position_ids=position_ids,
                        **with_cache(block, kv),
                        position_embeddings=rotary,
                    )
                )
        return self.head(self.inner.norm(hidden[:, -1]))

    def logits(self, final: torch.Tensor) -> torch.Tensor:
        """The head applied to final-norm outputs."""
        return self.head(final)
