"""The noise floor of a screen's effect sizes, in a module of its own so that the store and the
explorer read it without loading torch (`exact.effects` measures it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NoiseFloor:
    """How far a screen's controls (unmutated rows of its passes) strayed from the traced
    baseline: the largest KL of any control at any step, and the largest |delta_nll| of any
    control, over `controls` controls. Effect sizes below them are no effect."""

    controls: int = 0
    kl: float = 0.0
    nll: float = 0.0

    def add(self, kl: float, nll: float) -> NoiseFloor:
        """This floor with one more control, whose largest KL from the traced baseline at any
        step and |delta_nll| are `kl` and `nll` (both 0 for a control equal to it bit for
        bit)."""
        return NoiseFloor(self.controls + 1, max(self.kl, kl), max(self.nll, nll))

    def merged(self, other: NoiseFloor) -> NoiseFloor:
        """The floor of two sets of controls together."""
        return NoiseFloor(
            self.controls + other.controls, max(self.kl, other.kl), max(self.nll, other.nll)
        )

    def describe(self) -> str:
        """`KL 0 and |delta NLL| 0 nats over 12 controls`."""
        if not self.controls:
            return "not measured (no controls)"
        return (
            f"KL {self.kl:.2g} and |delta NLL| {self.nll:.2g} nats over {self.controls} "
            f"control{'s' if self.controls != 1 else ''}"
        )


def kl_floor(noise: NoiseFloor | None) -> float:
    """The mean KL at or below which an effect is none: the screen's noise floor (0 where its
    controls matched the traced baseline bit for bit, or none was recorded)."""
    return noise.kl if noise is not None else 0.0


def shown_effect(kl: float, noise: NoiseFloor | None) -> str:
    """A KL effect size in words: its value above the noise floor, else none."""
    floor = kl_floor(noise)
    if kl > floor:
        return f"{kl:.3g}"
    return f"none (under the noise floor {floor:.2g})" if floor > 0 else "none"
