"""Relative depth: where a layer sits in its model, so that models of different depths compare.

Layer l of an n-layer model covers the fraction [l/n, (l+1)/n) of the stack; its relative depth
is the middle of that, (l + 0.5) / n, and its band the fifth of the stack it falls in. SmolLM2's
30 layers and Llama-2's 32 then meet in the same five bands.
"""

from __future__ import annotations

DEPTH_BANDS = 5


def relative_depth(layer: int, layers: int) -> float:
    """The middle of the layer's share of the stack, in (0, 1)."""
    return (layer + 0.5) / layers


def depth_band(layer: int, layers: int, bands: int = DEPTH_BANDS) -> int:
    """Which of `bands` equal parts of the stack the layer's middle falls in (0 = first)."""
    return min(int(relative_depth(layer, layers) * bands), bands - 1)


def band_label(band: int, bands: int = DEPTH_BANDS) -> str:
    """`0-20%` for the first of five bands."""
    return f"{100 * band // bands}-{100 * (band + 1) // bands}%"
