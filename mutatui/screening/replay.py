"""Replaying `model.generate`'s own computation for naive checks, without most of its cost.

A near tie is checked on the naive path: edit the weight, `model.generate` greedily, restore.
That run computes, below the mutated layer L and for as long as it is fed the baseline's tokens,
exactly what the unmutated model's `generate` computed: the same weights, inputs and tensor
shapes, so the same floats. `GenerateTrace` records, for every forward call of the baseline's
greedy `generate` (the prompt, then one call per new token), each decoder layer's input, the
arguments the model passed its layers and how many positions went through the head.
`GenerateTrace.replay` makes the same calls on the same shapes with the edit in place, and gives
`generate`'s logits bit for bit:
- calls fed the baseline's tokens start at layer L from their recorded input;
- calls fed other tokens (a mutant that left the baseline) run every layer, with the baseline's
  keys and values of the earlier positions below L (the same floats `generate` would cache).

The replay runs layer by layer rather than call by call: each layer's calls in order, then the
next layer. Every call still sees the same inputs, arguments and cache, so the floats are the
same, but a layer's weights stay in the processor's cache across its calls; and the head (the
largest matrix) runs only at the steps asked about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mutatui.engine.decoding import Decoding, Generation, naive_generate
from mutatui.engine.kv import with_cache, without_cache_arguments
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation, mutated
from mutatui.screening.layers import KVStore, supports_layers


@dataclass
class _Call:
    """One forward call of `generate`: each layer's input, the layers' other arguments, and
    the number of last positions the head was applied to."""

    layer_inputs: list[torch.Tensor]
    layer_kwargs: dict
    head_positions: int = 1


class GenerateTrace:
    """The unmutated model's greedy `generate` on one prompt, recorded layer by layer."""

    def __init__(
        self,
        lm: LoadedModel,
        catalog: MatrixCatalog,
        prompt: Sequence[int],
        decoding: Decoding,
    ) -> None:
        if not self.supports(lm, decoding):
            raise ValueError("generate traces are for greedy decoding of Llama-family models")
        self.lm = lm
        self.catalog = catalog
        self.calls: list[_Call] = []
        self.generation = self._record(prompt, decoding)
        self._kv: KVStore | None = None

    @staticmethod
    def supports(lm: LoadedModel, decoding: Decoding) -> bool:
        """Replays are for greedy decoding of the Llama family (whose layers we can call)."""
        return decoding.mode == "greedy" and supports_layers(lm.model)

    def _record(self, prompt: Sequence[int], decoding: Decoding) -> Generation:
        model = self.lm.model
        layers = model.model.layers
        calls = self.calls

        def capture_layer(index: int):
            def hook(_module, args, kwargs):
                hidden = args[0] if args else kwargs["hidden_states"]
                if index == 0:
                    extra = without_cache_arguments(kwargs)
                    calls.append(_Call([], extra))
                calls[-1].layer_inputs.append(hidden.detach().clone())

            return hook

        def capture_head(_module, args):
            calls[-1].head_positions = args[0].shape[1]

        handles = [
            layer.register_forward_pre_hook(capture_layer(index), with_kwargs=True)
            for index, layer in enumerate(layers)
        ]
        handles.append(model.get_output_embeddings().register_forward_pre_hook(capture_head))
        try:
            return naive_generate(self.lm, self.catalog, prompt, None, decoding)
        finally:
            for handle in handles:
                handle.remove()

    def replay(
        self, mutation: Mutation, steps: Sequence[int], tokens: Sequence[int] = ()
    ) -> dict[int, torch.Tensor] | None:
        """The float32 logits `generate` would score `steps` with under `mutation`, by step,
        when fed `tokens` after the prompt (the mutant's decisions before the last of `steps`;
        the baseline's where not given). None when the baseline made fewer calls than needed."""
        last = max(steps)
        if last >= len(self.calls):
            return None
        fed = [*tokens, *self.generation.tokens[len(tokens) :]][:last]
        calls = self.calls[: last + 1]
        baseline = self.generation.tokens
        own = next((n for n, token in enumerate(fed) if token != baseline[n]), last) + 1
        first = mutation.site.layer
        inner = self.lm.model.model
        with torch.inference_mode(), mutated(self.catalog, mutation):
            hidden = [call.layer_inputs[first] for call in calls[:own]]
            hidden += self._below(first, calls, own, fed)
            cache = KVStore()
            for layer in inner.layers[first:]:
                self._run_layer(layer, calls, hidden, cache)
            head = self.lm.model.get_output_embeddings()
            scored = {}
            for step in sorted(set(steps)):
                positions = calls[step].head_positions
                logits = head(inner.norm(hidden[step])[:, -positions:, :])
                scored[step] = logits[:, -1, :].to(copy=True, dtype=torch.float32)[0]
        return scored

    def _below(
        self, first: int, calls: list[_Call], own: int, fed: Sequence[int]
    ) -> list[torch.Tensor]:
        """Layer `first`'s inputs for calls `own` and on, fed tokens of their own: the
        unmutated layers below it, over the baseline's keys and values of earlier positions."""
        if own >= len(calls):
            return []
        inner = self.lm.model.model
        device = self.lm.model.get_output_embeddings().weight.device
        ids = torch.tensor(fed[own - 1 :], dtype=torch.long, device=device).view(-1, 1, 1)
        hidden = [inner.embed_tokens(token) for token in ids]
        start = sum(call.layer_inputs[0].shape[1] for call in calls[:own])
        baseline = self._baseline_kv()
        for index in range(first):
            cache = KVStore()
            cache.keys[index] = baseline.keys[index][..., :start, :]
            cache.values[index] = baseline.values[index][..., :start, :]
            self._run_layer(inner.layers[index], calls[own:], hidden, cache)
        return hidden

    @staticmethod
    def _run_layer(
        layer: torch.nn.Module,
        calls: Sequence[_Call],
        hidden: list[torch.Tensor],
        cache: KVStore,
    ) -> None:
        """One decoder layer over `calls` in order, `hidden[n]` being call n's input; each is
        replaced by the layer's output."""
        for number, call in enumerate(calls):
            output = layer(hidden[number], **with_cache(layer, cache), **call.layer_kwargs)
            hidden[number] = output[0] if isinstance(output, tuple) else output

    def _baseline_kv(self) -> KVStore:
        """Every layer's keys and values over all the recorded calls, as `generate` cached them
        (computed once, by the same calls)."""
        if self._kv is None:
            kv = KVStore()
            with torch.inference_mode():
                for index, layer in enumerate(self.lm.model.model.layers):
                    inputs = [call.layer_inputs[index] for call in self.calls]
                    self._run_layer(layer, self.calls, inputs, kv)
            self._kv = kv
        return self._kv

    def decisions(
        self, mutation: Mutation, steps: Sequence[int], tokens: Sequence[int] = ()
    ) -> dict[int, int | None] | None:
        """`generate`'s greedy decisions at `steps` under `mutation` (None for an EOS) when fed
        `tokens` after the prompt (see `replay`); None when the baseline made too few calls."""
        scored = self.replay(mutation, steps, tokens)
        if scored is None:
            return None
        eos = self.lm.eos_token_ids
        chosen = {}
        for step, logits in scored.items():
            token = int(logits.argmax())
            chosen[step] = None if token in eos else token
        return chosen
