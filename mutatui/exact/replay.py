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
from transformers import DynamicCache

from mutatui.engine.architecture import Architecture
from mutatui.engine.decoding import Decoding, Generation, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation, mutated
from mutatui.exact.layers import supports_layers


@dataclass
class _Call:
    """One forward call of `generate`: each layer's input and other arguments, and the number
    of last positions the head was applied to."""

    layer_inputs: list[torch.Tensor]
    layer_kwargs: list[dict]
    head_positions: int = 1

    @property
    def length(self) -> int:
        return self.layer_inputs[0].shape[1]


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
            raise ValueError("generate traces are for greedy decoding of models with an entry")
        self.lm = lm
        self.catalog = catalog
        self.architecture = Architecture(lm.model)
        self.prompt = tuple(prompt)
        self.calls: list[_Call] = []
        self.generation = self._record(prompt, decoding)
        self._kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @staticmethod
    def supports(lm: LoadedModel, decoding: Decoding) -> bool:
        """Replays are for greedy decoding of the families with an architecture entry."""
        return decoding.mode == "greedy" and supports_layers(lm.model)

    def _record(self, prompt: Sequence[int], decoding: Decoding) -> Generation:
        arch = self.architecture
        generations: list[Generation] = []
        head_positions: list[int] = []

        def capture_head(_module, args):
            head_positions.append(args[0].shape[1])

        handle = arch.head.register_forward_pre_hook(capture_head)
        try:
            recorded = arch.capture_arguments(
                lambda: generations.append(
                    naive_generate(self.lm, self.catalog, prompt, None, decoding)
                )
            )
        finally:
            handle.remove()
        for layers, positions in zip(recorded, head_positions, strict=True):
            inputs = [hidden for hidden, _ in layers]
            arguments = [kwargs for _, kwargs in layers]
            self.calls.append(_Call(inputs, arguments, positions))
        return generations[0]

    def _new_cache(self) -> DynamicCache:
        """A cache like the one `generate` made (sliding-window layers keep only their window)."""
        return DynamicCache(config=self.architecture.config)

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
        arch = self.architecture
        with torch.inference_mode(), mutated(self.catalog, mutation):
            hidden = [call.layer_inputs[first] for call in calls[:own]]
            hidden += self._below(first, calls, own, fed)
            cache = self._new_cache()
            for index in range(first, arch.num_layers):
                self._run_layer(index, calls, hidden, cache)
            scored = {}
            for step in sorted(set(steps)):
                positions = calls[step].head_positions
                logits = arch.logits(arch.norm(hidden[step])[:, -positions:, :])
                scored[step] = logits[:, -1, :].to(copy=True, dtype=torch.float32)[0]
        return scored

    def _below(
        self, first: int, calls: list[_Call], own: int, fed: Sequence[int]
    ) -> list[torch.Tensor]:
        """Layer `first`'s inputs for calls `own` and on, fed tokens of their own: the
        unmutated layers below it, over the baseline's keys and values of earlier positions."""
        if own >= len(calls):
            return []
        arch = self.architecture
        start = sum(call.length for call in calls[:own])
        hidden = [
            arch.embed(
                torch.tensor([[token]], device=arch.device),
                torch.tensor([[start + offset]], device=arch.device),
            )
            for offset, token in enumerate(fed[own - 1 :])
        ]
        baseline = self.baseline_kv()
        cache = self._new_cache()
        for index in range(first):
            keys, values = baseline[index]
            cache.update(keys[..., :start, :], values[..., :start, :], index)
            self._run_layer(index, calls[own:], hidden, cache)
        return hidden

    def _run_layer(
        self, index: int, calls: Sequence[_Call], hidden: list[torch.Tensor], cache: object
    ) -> None:
        """Decoder layer `index` over `calls` in order, `hidden[n]` being call n's input; each
        is replaced by the layer's output."""
        for number, call in enumerate(calls):
            hidden[number] = self.architecture.call_layer(
                index, hidden[number], cache, call.layer_kwargs[index]
            )

    def baseline_kv(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's keys and values over all the recorded calls, as `generate` computed
        them (the same projections of the same inputs), computed once."""
        if self._kv is None:
            arch = self.architecture
            layers = []
            with torch.inference_mode():
                for index in range(arch.num_layers):
                    parts = [
                        arch.keys_values(index, call.layer_inputs[index], call.layer_kwargs[index])
                        for call in self.calls
                    ]
                    layers.append(
                        (
                            torch.cat([keys for keys, _ in parts], dim=-2),
                            torch.cat([values for _, values in parts], dim=-2),
                        )
                    )
            self._kv = layers
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
