"""Phenotypes read from effect sizes (`exact.effects`) instead of "any token changed".

Any change is saturated for tiles and, for elements, dominated by where the probe's own
continuation is fragile: a mutation that tips a near tie of the unmutated model changes the text
without moving the model much. Two gradings are blind to that:

- robust: the output changed, and not at a step where the unmutated model's own margin (top-1
  minus top-2 logit) is below a stated threshold;
- effect: the mean KL divergence from the unmutated model to the mutant over the baseline's
  continuation reaches a threshold (`min_effect`), or is in the top share of its matrix
  (`top_effect`), changed or not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mutatui.errors import MutatuiError
from mutatui.store.frames import SiteFrame


@dataclass(frozen=True)
class EffectGrade:
    """At most one of the three is set (`describe` says which)."""

    robust_margin: float | None = None
    min_effect: float | None = None
    top_effect: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.robust_margin, self.min_effect, self.top_effect) if v is not None]
        if len(given) > 1:
            raise MutatuiError("give one of --robust, --min-effect and --top-effect")
        if self.top_effect is not None and not 0 < self.top_effect <= 1:
            raise MutatuiError(f"--top-effect is a share in (0, 1], got {self.top_effect}")
        if self.min_effect is not None and not self.min_effect >= 0:
            raise MutatuiError(f"--min-effect is a KL divergence >= 0, got {self.min_effect}")

    def describe(self) -> str:
        if self.robust_margin is not None:
            return f"robust (changed at a baseline margin >= {self.robust_margin:g} logits)"
        if self.min_effect is not None:
            return f"effect >= {self.min_effect:g} nats (mean KL over the continuation)"
        return f"the top {100 * self.top_effect:g}% of each matrix by effect (mean KL)"

    def apply(self, frame: SiteFrame) -> SiteFrame:
        """The same mutations, with the phenotype this grade reads."""
        if not frame.effects_recorded:
            raise MutatuiError(
                f"screen {frame.screen.name!r} has no effect sizes: screen it with effects = "
                "true (--effects on), or add them with `mutatui effects`"
            )
        if frame.effects_missing:
            raise MutatuiError(
                f"screen {frame.screen.name!r} lacks effect sizes for {frame.effects_missing} of "
                "its text results (a backfill part-way): add the rest with `mutatui effects DB "
                f"--screen {frame.screen.name}` before grading by them"
            )
        if self.robust_margin is not None:
            return replace(frame, changed=frame.changed & (frame.margin >= self.robust_margin))
        if frame.noise is None:
            raise MutatuiError(
                f"screen {frame.screen.name!r} has effect sizes computed before controls (their "
                "KL can read below zero): `mutatui effects DB --screen "
                f"{frame.screen.name} --recompute` replaces them"
            )
        if self.min_effect is not None:
            return replace(frame, changed=above_floor(frame) & (frame.effect >= self.min_effect))
        return replace(frame, changed=above_floor(frame) & top_share(frame, self.top_effect))


def above_floor(frame: SiteFrame) -> np.ndarray:
    """The mutations whose effect is above the screen's noise floor (how far its controls
    strayed from the traced baseline): at or below it, an effect is none."""
    floor = frame.noise.kl if frame.noise is not None else 0.0
    return frame.effect > floor


def top_share(frame: SiteFrame, share: float) -> np.ndarray:
    """Per (layer, matrix), the mutations whose effect is among the top `share` of it."""
    chosen = np.zeros(len(frame), dtype=bool)
    keys = np.char.add(frame.layer.astype(str), np.char.add(".", frame.matrix.astype(str)))
    for key in np.unique(keys):
        members = np.flatnonzero(keys == key)
        effects = frame.effect[members]
        count = int(np.ceil(share * len(members)))
        order = np.argsort(-np.nan_to_num(effects, nan=-np.inf), kind="stable")[:count]
        chosen[members[order]] = np.isfinite(effects[order])
    return chosen
