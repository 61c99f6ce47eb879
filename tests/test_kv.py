"""The cache argument goes by the name the installed transformers gives it (engine.kv)."""

from __future__ import annotations

import torch
from torch import nn

from mutatui.engine.kv import cache_keyword, with_cache, without_cache_arguments
from mutatui.exact.layers import KVStore


class OldStyleLayer(nn.Module):
    def forward(self, hidden_states, past_key_values=None, use_cache=False):
        return hidden_states


class NoCacheLayer(nn.Module):
    def forward(self, hidden_states):
        return hidden_states


def test_an_old_style_layer_takes_past_key_values():
    assert cache_keyword(OldStyleLayer()) == "past_key_values"
    assert cache_keyword(NoCacheLayer()) == "past_key_values"


def test_a_decoder_layer_called_with_captured_arguments_fills_our_cache(tiny):
    """The captured keyword arguments of a forward pass hold the model's own cache argument;
    calling the layer again with them and our store must fill our store, not drop it."""
    lm, _catalog = tiny
    layer = lm.model.model.layers[1]
    captured: dict = {}
    handle = layer.register_forward_pre_hook(
        lambda _m, _a, kwargs: captured.update(kwargs), with_kwargs=True
    )
    ids = torch.tensor([[5, 6, 7, 8]])
    try:
        with torch.inference_mode():
            lm.model(input_ids=ids, use_cache=False)
    finally:
        handle.remove()
    arguments = without_cache_arguments(captured)
    assert not {"cache", "past_key_values", "use_cache", "hidden_states"} & set(arguments)
    store = KVStore()
    hidden = torch.zeros(1, 4, lm.model.config.hidden_size)
    with torch.inference_mode():
        layer(hidden, **with_cache(layer, store), **arguments)
    assert list(store.keys) == [1]
    assert store.keys[1].shape[-2] == 4


def test_a_baseline_trace_keeps_every_layers_keys_and_values(tiny):
    """The layered engine's baseline trace: with the cache passed by its old name, transformers
    5.24 dropped it and the trace kept nothing, so decoding on from it failed."""
    from mutatui.exact.layers import LayerRunner

    lm, catalog = tiny
    trace = LayerRunner(lm.model, catalog).trace([5, 6, 7, 8, 9])
    layers = len(lm.model.model.layers)
    assert sorted(trace.kv.keys) == list(range(layers))
    assert all(trace.kv.keys[layer].shape[-2] == 5 for layer in range(layers))
