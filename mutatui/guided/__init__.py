"""Guided screens: first-order sensitivity predictions, super-weight detection, guided sampling.

No UI and no SQL here: the store (mutatui.store.guided) persists what these modules compute.
"""
