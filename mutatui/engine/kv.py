"""The key-value cache argument of a transformers model or decoder layer, by the name it takes.

transformers 5.24 renamed the argument `past_key_values` to `cache`; the old name is still
accepted until 5.40, but a layer called with the old name while the captured keyword arguments
of a forward pass already hold `cache=None` drops the cache we pass. Every call that hands a
cache to a model or a layer therefore asks the module's own signature for the name.
"""

from __future__ import annotations

import inspect
from functools import cache

from torch import nn

CACHE_KEYWORDS = ("cache", "past_key_values", "layer_past")
"""Every name the cache argument has had, newest first (GPT-NeoX's layers call it `layer_past`)."""


def cache_keyword(module: nn.Module) -> str:
    """The name under which `module.forward` takes its key-value cache."""
    return _cache_keyword_of(type(module))


@cache
def _cache_keyword_of(module_type: type[nn.Module]) -> str:
    """Read once per module class: the layered engine asks for every layer at every decoding
    step, and `inspect.signature` costs tens of microseconds."""
    parameters = inspect.signature(module_type.forward).parameters
    return next((name for name in CACHE_KEYWORDS if name in parameters), "past_key_values")


def with_cache(module: nn.Module, cache: object) -> dict[str, object]:
    """Keyword arguments that hand `cache` to `module` and ask it to use it."""
    return {cache_keyword(module): cache, "use_cache": True}


def without_cache_arguments(kwargs: dict) -> dict:
    """Keyword arguments captured from a forward pass, less the cache and the hidden states,
    for calling the same layer again with a cache of our own."""
    dropped = {*CACHE_KEYWORDS, "use_cache", "hidden_states", "encoder_hidden_states"}
    return {key: value for key, value in kwargs.items() if key not in dropped}
