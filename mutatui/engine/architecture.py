"""The one architecture adapter: how mutatui reaches the inside of a decoder model.

Everything that runs a model layer by layer (the exact engine, the replays of `generate`) or
reads its internals speaks to an `Architecture`, never to a family's modules: the embedding,
the decoder layers and the arguments each is called with (attention masks with the layer's
sliding window, rotary position embeddings or none, the key-value cache under the name the
layer takes it), the final norm and the head (soft-capped where the family caps it). What
differs between families is data in `engine.families`; this module turns it into calls.

Masks built here are additive (0 where a key is visible, the dtype's minimum where it is not),
which eager and SDPA attention both accept; a key is visible when it is allowed, not after the
query, and, in a layer with a sliding window w, less than w positions before it, as
transformers' own `sliding_window_overlay` rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import torch
from torch import nn

from mutatui.engine.families import Family, family_of
from mutatui.engine.kv import with_cache, without_cache_arguments

FAST_ATTENTION = frozenset({"eager", "sdpa"})
"""Attention implementations that take the additive masks the adapter builds."""


def text_config(model: nn.Module) -> object:
    """The config of the text decoder (the model's own, for a plain causal LM)."""
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if getter is not None else config


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the layered fast path cannot run this model (None when it can)."""
    config = text_config(model)
    model_type = getattr(config, "model_type", None)
    family = family_of(model_type)
    if family is None:
        return f"model type {model_type!r} has no architecture entry"
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation not in FAST_ATTENTION:
        return f"attention implementation {implementation!r} is not eager or sdpa"
    try:
        attrgetter(f"{family.base}.{family.layers}")(model)
    except AttributeError:
        return f"{type(model).__name__} does not have the {family.name} layout"
    if model.get_output_embeddings() is None:
        return f"{type(model).__name__} has no output head"
    return None


class KeysValuesReady(Exception):  # noqa: N818 (a signal that ends a layer early, not an error)
    """Raised by `KeysValuesCatcher` to stop a layer once its keys and values are known."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__("keys and values computed")
        self.keys = keys
        self.values = values


class KeysValuesCatcher:
    """A cache whose `update` (what every family's attention calls with its new keys and
    values, after rotary embedding and any key norm) stops the layer there: the rest of the
    layer (attention, output projection, MLP) is most of its cost and not needed."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *_args, **_kw):
        raise KeysValuesReady(key_states, value_states)


@dataclass(frozen=True)
class Positions:
    """Who attends to what in one call of the decoder layers.

    `queries` (rows, q) are the positions of the tokens run; `keys` (rows, k) the positions of
    every key they may attend to, in cache order (the cache's keys, then the new ones);
    `allowed` (rows, k) masks keys out (a row's own gap in a shared cache), or None.
    """

    queries: torch.Tensor
    keys: torch.Tensor
    allowed: torch.Tensor | None = None

    @classmethod
    def contiguous(cls, start: int, stop: int, device: torch.device) -> Positions:
        """Positions start..stop-1 attending causally to 0..stop-1 (a prefix of `start`)."""
        queries = torch.arange(start, stop, device=device).view(1, -1)
        keys = torch.arange(stop, device=device).view(1, -1)
        return cls(queries, keys)


class Architecture:
    """One decoder model seen through its family's entry."""

    def __init__(self, model: nn.Module) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(reason)
        self.model = model
        self.config = text_config(model)
        family = family_of(self.config.model_type)
        assert family is not None
        self.family: Family = family
        base = attrgetter(family.base)(model)
        self.base: nn.Module = base
        """The decoder stack without the head (its forward ends with the final norm)."""
        self.embedding: nn.Module = attrgetter(family.embed)(base)
        self.position_table: nn.Module | None = (
            attrgetter(family.positions)(base) if family.positions else None
        )
        self.layers: nn.ModuleList = attrgetter(family.layers)(base)
        self.final_norm: nn.Module = attrgetter(family.norm)(base)
        self.rotary: nn.Module | None = attrgetter(family.rotary)(base) if family.rotary else None
        self.head: nn.Module = model.get_output_embeddings()
        cap = getattr(self.config, family.softcap, None) if family.softcap else None
        self.softcap: float | None = float(cap) if cap else None
        self.windows: tuple[int | None, ...] = tuple(
            self._window(index) for index in range(len(self.layers))
        )
        self.layer_types: tuple[str | None, ...] = tuple(
            self._layer_type(index) for index in range(len(self.layers))
        )

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def head_weight(self) -> torch.Tensor:
        return self.head.weight

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _layer_type(self, index: int) -> str | None:
        types = getattr(self.config, "layer_types", None)
        return types[index] if types else None

    def _window(self, index: int) -> int | None:
        window = getattr(self.config, "sliding_window", None)
        if self.family.windows == "config":
            return window
        if self.family.windows == "layer_types" and self._layer_type(index) == "sliding_attention":
            return window
        return None

    # --- the residual stream -------------------------------------------------------------

    def embed(self, ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """The residual stream entering layer 0 for token ids (rows, positions)."""
        hidden = self.embedding(ids)
        if self.position_table is not None:
            hidden = hidden + self.position_table(position_ids).to(hidden.device)
        return hidden

    def call_layer(
        self, index: int, hidden: torch.Tensor, cache: object, arguments: dict
    ) -> torch.Tensor:
        """Decoder layer `index` on `hidden`, appending its keys and values to `cache`."""
        layer = self.layers[index]
        output = layer(hidden, **with_cache(layer, cache), **arguments)
        return output[0] if isinstance(output, tuple) else output

    def keys_values(
        self, index: int, hidden: torch.Tensor, arguments: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `index`'s keys and values for input `hidden`, as its attention caches them
        (rows, kv_heads, positions, head_dim), without the rest of the layer."""
        try:
            self.call_layer(index, hidden, KeysValuesCatcher(), arguments)
        except KeysValuesReady as ready:
            return ready.keys, ready.values
        raise RuntimeError(f"layer {index} did not hand its keys and values to its cache")

    def norm(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.final_norm(hidden)

    def logits(self, final: torch.Tensor) -> torch.Tensor:
        """The head on final-norm outputs, soft-capped as the model caps it."""
        return self._cap(self.head(final))

    def token_logits(
        self, final: torch.Tensor, tokens: torch.Tensor | Sequence[int]
    ) -> torch.Tensor:
        """The logits of `tokens` only: one small product instead of the whole vocabulary's."""
        logits = final @ self.head.weight[tokens].T
        bias = getattr(self.head, "bias", None)
        return self._cap(logits if bias is None else logits + bias[tokens])

    def float_logits(self, final: torch.Tensor, tokens: slice = slice(None)) -> torch.Tensor:
        """The head over `tokens` on final-norm outputs in float32, whatever the model's dtype,
        soft-capped as the model caps it: what effect sizes are measured from (a half-precision
        logit's own rounding step would swamp a small effect)."""
        weight = self.head.weight[tokens].float()
        bias = getattr(self.head, "bias", None)
        part = None if bias is None else bias[tokens].float()
        return self._cap(nn.functional.linear(final.float(), weight, part))

    def logit_change(
        self, final: torch.Tensor, reference: torch.Tensor
    ) -> Callable[[slice], torch.Tensor]:
        """The float32 logits of `final` (rows, steps, hidden) minus those of `reference`
        (steps, hidden), by slice of the vocabulary. A linear head is applied to the change of
        the final-norm output (the bias cancels), so two large logits are never subtracted;
        a soft-capped head gives both logits and subtracts them."""
        if self.softcap is not None:
            return lambda tokens: (
                self.float_logits(final, tokens) - self.float_logits(reference, tokens)
            )
        change = final.float() - reference.float()
        weight = self.head.weight
        return lambda tokens: nn.functional.linear(change, weight[tokens].float())

    def head_mean(self, weights: torch.Tensor) -> torch.Tensor | None:
        """Per step, the head's rows averaged with `weights` (steps, vocab), in float32, by
        slice of the vocabulary: the weighted mean of a linear head's logit change is this
        row times the change of the final-norm output. None for a soft-capped head, whose
        logits are not linear in it."""
        if self.softcap is not None:
            return None
        weight = self.head.weight
        width = 8192
        mean = torch.zeros(weights.shape[0], weight.shape[1], device=weights.device)
        for start in range(0, weight.shape[0], width):
            part = slice(start, start + width)
            mean += weights[:, part].float() @ weight[part].float()
        return mean

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        if self.softcap is None:
            return logits
        return torch.tanh(logits / self.softcap) * self.softcap

    # --- the arguments of a layer call ----------------------------------------------------

    def arguments(self, hidden: torch.Tensor, positions: Positions) -> list[dict]:
        """Each layer's keyword arguments (mask, position ids, rotary embeddings) for running
        `hidden` (rows, q, hidden) at `positions`; layers alike share one dict."""
        built: dict[tuple, dict] = {}
        result = []
        for window, kind in zip(self.windows, self.layer_types, strict=True):
            if (window, kind) not in built:
                built[window, kind] = self._arguments(window, kind, hidden, positions)
            result.append(built[window, kind])
        return result

    def layer_arguments(self, index: int, hidden: torch.Tensor, positions: Positions) -> dict:
        """Layer `index`'s keyword arguments alone (see `arguments`)."""
        return self._arguments(self.windows[index], self.layer_types[index], hidden, positions)

    def _arguments(
        self, window: int | None, kind: str | None, hidden: torch.Tensor, positions: Positions
    ) -> dict:
        arguments = {
            "attention_mask": self._mask(positions, window, hidden.dtype),
            "position_ids": positions.queries,
        }
        if self.rotary is not None:
            arguments["position_embeddings"] = (
                self.rotary(hidden, positions.queries, kind)
                if self.family.rotary_by_layer_type
                else self.rotary(hidden, positions.queries)
            )
        return arguments

    @staticmethod
    def _mask(positions: Positions, window: int | None, dtype: torch.dtype) -> torch.Tensor:
        """(rows, 1, q, k) additive mask."""
        queries = positions.queries.unsqueeze(-1)
        keys = positions.keys.unsqueeze(-2)
        visible = keys <= queries
        if window is not None:
            visible = visible & (keys > queries - window)
        if positions.allowed is not None:
            visible = visible & positions.allowed.unsqueeze(-2)
        mask = torch.zeros(visible.shape, dtype=dtype, device=visible.device)
        return mask.masked_fill(~visible, torch.finfo(dtype).min).unsqueeze(1)

    # --- capturing what the model passes its layers ---------------------------------------

    def _as_keywords(self, args: tuple, kwargs: dict) -> dict:
        """A layer call's arguments other than the hidden states and the cache, as keywords."""
        named = dict(zip(self.family.positional, args[1:], strict=False))
        named.update(kwargs)
        return without_cache_arguments(named)

    def capture_arguments(self, run: Callable[[], object]) -> list[list[tuple[torch.Tensor, dict]]]:
        """Run `run()` (a forward pass or a `generate`) and record, for every forward call,
        each layer's input and the other arguments the model passed it (cache left out).
        Returns `calls[call][layer] = (input, arguments)`."""
        calls: list[list[tuple[torch.Tensor, dict]]] = []

        def capture(index: int):
            def hook(_module, args, kwargs):
                hidden = args[0] if args else kwargs["hidden_states"]
                if index == 0:
                    calls.append([])
                calls[-1].append((hidden.detach().clone(), self._as_keywords(args, kwargs)))

            return hook

        handles = [
            layer.register_forward_pre_hook(capture(index), with_kwargs=True)
            for index, layer in enumerate(self.layers)
        ]
        try:
            run()
        finally:
            for handle in handles:
                handle.remove()
        return calls
