"""Replaying `model.generate`'s own computation from a mutated layer up, for naive checks.

A near tie is checked on the naive path: edit the weight, `model.generate` greedily, restore.
Below the mutated layer L, that run computes exactly what the unmutated model's `generate`
computed, for as long as it is fed the same tokens: the same weights, inputs and tensor shapes,
so the same floats. `GenerateTrace` records, for every forward call of the baseline's greedy
`generate` (the prompt, then one call per new token), each decoder layer's input, the arguments
the model passed its layers and how many positions went through the head. `GenerateTrace.replay`
runs layers L and up of those calls with the edit in place, with the same calls on the same
shapes, and yields `generate`'s logits bit for bit, without running layers 0 to L-1. A replay is
valid while its decisions are the baseline's tokens (the recorded inputs assume them); it stops
after the first decision that leaves them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass

import torch

from mutatui.engine.decoding import Decoding, Generation, naive_generate
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
                    extra = {
                        key: value
                        for key, value in kwargs.items()
                        if key not in ("hidden_states", "past_key_values", "use_cache")
                    }
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

    def replay(self, mutation: Mutation) -> Iterator[torch.Tensor]:
        """The float32 logits `generate` would score each step with under `mutation`, step
        after step, for the recorded calls (stop consuming once a decision leaves the
        baseline's tokens: later calls assume them)."""
        model = self.lm.model
        inner = model.model
        head = model.get_output_embeddings()
        first = mutation.site.layer
        with torch.inference_mode(), mutated(self.catalog, mutation):
            cache = KVStore()
            for call in self.calls:
                hidden = call.layer_inputs[first]
                for index in range(first, len(inner.layers)):
                    output = inner.layers[index](
                        hidden, past_key_values=cache, use_cache=True, **call.layer_kwargs
                    )
                    hidden = output[0] if isinstance(output, tuple) else output
                normed = inner.norm(hidden)
                logits = head(normed[:, -call.head_positions :, :])
                yield logits[:, -1, :].to(copy=True, dtype=torch.float32)[0]

    def decisions(self, mutation: Mutation, steps: int) -> list[int | None] | None:
        """`generate`'s first `steps` greedy decisions under `mutation` (None for an EOS); fewer
        when one of them leaves the baseline's tokens (it is the last one given: later calls
        would need other inputs), and None when the baseline made fewer than `steps` calls."""
        if steps > len(self.calls):
            return None
        baseline = [*self.generation.tokens, *([None] if self.generation.stopped else [])]
        eos = self.lm.eos_token_ids
        chosen: list[int | None] = []
        with closing(self.replay(mutation)) as scored:  # closing restores the weight at once
            for step, logits in enumerate(scored):
                token = int(logits.argmax())
                chosen.append(None if token in eos else token)
                if len(chosen) == steps or chosen[-1] != baseline[step]:
                    break
        return chosen
