"""Effect sizes: how far a mutation moves the model on the baseline's own continuation, defined
for every mutation, changed or not, and blind to near ties.

The engine already feeds each mutant the prompt and the baseline's continuation (teacher
forcing). At each step t of that continuation the unmutated model has a next-token distribution
P_t and the mutant Q_t, both over the whole vocabulary from the raw logits (temperature 1,
whatever the decoding):

- `delta_nll`: the mean over steps of -log Q_t(b_t) minus the same under P_t, with b_t the
  baseline's token (its EOS at a final stop): how much less likely the mutant finds the
  baseline's continuation, in nats per token.
- `kl_all`: the mean over steps of KL(P_t || Q_t).
- `kl_prefix`: the same mean over the steps up to and including the first divergence (all steps
  for an unchanged output): there the teacher-forced context is the mutant's own.

Per baseline step, the unmutated model's `margin` (top-1 minus top-2 logit) says how fragile the
step is; a changed output carries the margin of the step it diverged at (`diverge_margin`), so a
divergence at a near tie of the baseline's own is visible as such.

**A control in every pass.** Each teacher-forced pass carries one unmutated row (a wild-type
control, as on every plate of a biological screen) computed in the pass's own shape, and P_t is
that row's, so rounding that depends on the shape of a pass (batched against lone products)
cancels between a mutant and its control. How far the controls themselves stray from the traced
baseline (a lone pass) is the screen's noise floor (`NoiseFloor`): an effect below it is no
effect.

**Precise, and never below zero.** Everything is taken from the logit change d = z_Q - z_P
(for a linear head, the head applied to the change of the final-norm output, so two large
logits are never subtracted): with s = sum P (e^d - 1) and m = sum P d,

    log Q(v) - log P(v) = d(v) - log(1 + s),    KL(P || Q) = log(1 + s) - m,

both quantities of the size of the change, not of the logits (an entropy of several nats minus
a cross-entropy, in float32, was off by 3e-4 nats). KL >= 0 holds exactly (Jensen); its rounding
is a few float32 epsilons of sum P |d|, and a value that rounding takes below zero is zero. The
vocabulary is swept in slices (`VOCAB_SLICE`), so the head's output for a whole pass is never
held at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mutatui.engine.architecture import Architecture
from mutatui.exact.layers import Pass
from mutatui.exact.noise import NoiseFloor

VOCAB_SLICE = 1024
"""Tokens per slice of the head when measuring (a pass's rows x steps x this many floats stay in
the processor's cache between the steps that use them)."""

Changes = Callable[[slice], torch.Tensor]
"""The mutants' logits minus the control's over a slice of the vocabulary, (rows, steps, width)."""


@dataclass(frozen=True)
class Effect:
    """One mutation's effect on one text probe (None where a quantity is not a number)."""

    delta_nll: float | None
    kl_prefix: float | None
    kl_all: float | None
    diverge_margin: float | None


@dataclass(frozen=True)
class Wildtype:
    """The unmutated model at the decision steps of a probe, as one pass computed it: its
    next-token probabilities, (steps, vocab) float32, their sum per step in float64 (one, to
    float32's rounding), the baseline's choices, (steps,), and for a linear head the
    probability-weighted mean of the head's rows, (steps, hidden), which gives a change's
    expected logit change without a sweep of the vocabulary."""

    probs: torch.Tensor
    total: torch.Tensor
    targets: torch.Tensor
    head_mean: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        return int(self.targets.shape[0])


def wildtype(
    logits: torch.Tensor, targets: torch.Tensor, architecture: Architecture | None = None
) -> Wildtype:
    """`logits` are the unmutated model's at the decision steps, (steps, vocab); `targets` the
    baseline's choices there; `architecture` (its head) gives the head mean."""
    probs = torch.softmax(logits.float(), dim=-1)
    total = probs.sum(-1, dtype=torch.float64)
    head_mean = None if architecture is None else architecture.head_mean(probs / total[:, None])
    return Wildtype(probs, total, targets.to(device=logits.device, dtype=torch.long), head_mean)


def margins_of(logits: torch.Tensor) -> torch.Tensor:
    """Per step, the top-1 minus top-2 logit, (steps,) float64 on the CPU."""
    top = logits.float().topk(2, dim=-1).values
    return (top[:, 0] - top[:, 1]).double().cpu()


@dataclass(frozen=True)
class Measured:
    """What teacher forcing measured of one mutant, per step, before its outcome is known: the
    change of the baseline choice's negative log-likelihood and KL(P_t || Q_t), float64."""

    nll_change: torch.Tensor
    kl: torch.Tensor

    def floor(self) -> tuple[float, float]:
        """As a control against the traced baseline: its largest KL at any step and its
        |delta_nll| (`NoiseFloor.add`); a value that is not a number counts as infinite."""
        kl = float(self.kl.nan_to_num(math.inf).max()) if self.kl.numel() else 0.0
        nll = abs(float(self.nll_change.mean())) if self.nll_change.numel() else 0.0
        return kl, math.inf if math.isnan(nll) else nll


def measure(
    wild: Wildtype, changes: Changes, vocab: int, centre: torch.Tensor | None = None
) -> list[Measured]:
    """Per mutant row of `changes` (their logits minus the control's, `wild`, by slice of the
    `vocab` tokens), the per-step measurements behind its effect sizes. `centre` is the
    changes' probability-weighted mean per row and step, (rows, steps), where it is known
    without a sweep (`EffectMeter`); else a first sweep takes it. Taking e^d - 1 of the
    change less its mean keeps float32's rounding at the size of the change's spread, not of
    the change: a mutation that shifts every logit alike moves no distribution."""
    if centre is None:
        centre = _weighted_mean(wild, changes, vocab)
    centre = centre.float()
    rows, steps = centre.shape
    spread = torch.zeros(rows, steps, dtype=torch.float64, device=centre.device)
    residual, target_change = spread.clone(), spread.clone()
    for start in range(0, vocab, VOCAB_SLICE):
        tokens = slice(start, min(start + VOCAB_SLICE, vocab))
        change = changes(tokens).float()
        _gather_targets(target_change, change, wild.targets, tokens)
        change -= centre[..., None]
        probs = wild.probs[:, tokens]
        residual += (change * probs).sum(-1)
        spread += change.expm1_().mul_(probs).sum(-1)
    total = wild.total
    # log of sum P e^d over sum P, with d the change less its centre
    log_ratio = torch.log1p(spread + (total - 1)) - torch.log1p(total - 1)
    kl = (log_ratio - residual / total).clamp_min(0.0)  # NaN stays NaN
    nll_change = log_ratio + centre - target_change
    measured = [Measured(nll_change=nll_change[row].cpu(), kl=kl[row].cpu()) for row in range(rows)]
    for row in torch.nonzero(~torch.isfinite(spread).all(-1)).flatten().tolist():
        measured[row] = _measure_wide(wild, changes, vocab, row)  # e^d overflowed, or NaN
    return measured


def _weighted_mean(wild: Wildtype, changes: Changes, vocab: int) -> torch.Tensor:
    """The changes' probability-weighted mean per row and step, by a sweep of the slices."""
    mean = None
    for start in range(0, vocab, VOCAB_SLICE):
        tokens = slice(start, min(start + VOCAB_SLICE, vocab))
        part = (changes(tokens).float() * wild.probs[:, tokens]).sum(-1, dtype=torch.float64)
        mean = part if mean is None else mean + part
    return mean / wild.total


def _gather_targets(
    into: torch.Tensor, change: torch.Tensor, targets: torch.Tensor, tokens: slice
) -> None:
    """Add each step's change at its baseline choice, where that choice is in `tokens`."""
    inside = (targets >= tokens.start) & (targets < tokens.stop)
    if bool(inside.any()):
        steps = torch.nonzero(inside).flatten()
        columns = targets[steps] - tokens.start
        into[:, steps] += change[:, steps, columns].double()


def _measure_wide(wild: Wildtype, changes: Changes, vocab: int, row: int) -> Measured:
    """One row whose float32 e^d overflowed (logits moved by more than 88: a mutation set
    to a huge value), in float64 with the largest term factored out; a row that is not a
    number stays one."""
    change = torch.cat(
        [
            changes(slice(start, min(start + VOCAB_SLICE, vocab)))[row].double()
            for start in range(0, vocab, VOCAB_SLICE)
        ],
        dim=-1,
    )
    probs = wild.probs.double()
    log_probs = torch.log(probs)
    log_ratio = torch.logsumexp(log_probs + change, dim=-1)
    mean = torch.where(probs > 0, probs * change, 0.0).sum(-1)
    nll_change = log_ratio - change.gather(-1, wild.targets.view(-1, 1)).squeeze(-1)
    return Measured(nll_change=nll_change.cpu(), kl=(log_ratio - mean).clamp_min(0.0).cpu())


def _number(value: torch.Tensor) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def effect(measured: Measured, margins: torch.Tensor, diverge_at: int | None) -> Effect:
    """The mutant's effect once its outcome (first differing token, or None) is known;
    `margins` are the baseline's per step (`margins_of`)."""
    steps = int(margins.shape[0])
    end = steps if diverge_at is None else min(diverge_at + 1, steps)
    margin = None
    if diverge_at is not None and diverge_at < steps:
        margin = float(margins[diverge_at])
    return Effect(
        delta_nll=_number(measured.nll_change.mean()),
        kl_prefix=_number(measured.kl[:end].mean()),
        kl_all=_number(measured.kl.mean()),
        diverge_margin=margin,
    )


@dataclass(frozen=True)
class TracedWildtype:
    """The traced baseline at a probe's decision steps: its final-norm outputs, (steps,
    hidden), its distribution and its margins."""

    final: torch.Tensor
    wild: Wildtype
    margins: torch.Tensor


def float_logits(architecture: Architecture, final: torch.Tensor) -> torch.Tensor:
    """The whole vocabulary's float32 logits of final-norm outputs (`float_logits` of the
    architecture), made by slice so that a half-precision head is never copied whole."""
    vocab, width = int(architecture.head_weight.shape[0]), VOCAB_SLICE * 8
    return torch.cat(
        [
            architecture.float_logits(final, slice(start, start + width))
            for start in range(0, vocab, width)
        ],
        dim=-1,
    )


def traced_wildtype(
    architecture: Architecture, final: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
) -> TracedWildtype:
    """The traced baseline at the decision steps: its final-norm outputs, their distribution
    (from the float32 head) and the margins of the model's own `logits`: the reference of
    noise floors."""
    measured = logits if logits.dtype == torch.float32 else float_logits(architecture, final)
    return TracedWildtype(final, wildtype(measured, targets, architecture), margins_of(logits))


class EffectMeter:
    """Measures the rows of teacher-forced passes against each pass's control row, and keeps
    the noise floor of everything it measured (`noise`)."""

    def __init__(self, architecture: Architecture) -> None:
        self.architecture = architecture
        self.vocab = int(architecture.head_weight.shape[0])
        self.noise = NoiseFloor()

    def _control(self, traced: TracedWildtype, control: torch.Tensor) -> Wildtype:
        """A control's distribution, its difference from the traced baseline added to the noise
        floor (none, and nothing to compute, where the pass computed it bit for bit as the
        lone trace did)."""
        if torch.equal(control, traced.final):
            self.noise = self.noise.add(0.0, 0.0)
            return traced.wild
        strayed = self._measure(traced.wild, control[None], traced.final)
        self.noise = self.noise.add(*strayed[0].floor())
        head = self.architecture
        return wildtype(float_logits(head, control), traced.wild.targets, head)

    def _measure(
        self, wild: Wildtype, final: torch.Tensor, reference: torch.Tensor
    ) -> list[Measured]:
        """Rows of final-norm outputs, (rows, steps, hidden), against `reference`'s, whose
        distribution `wild` is."""
        centre = None
        if wild.head_mean is not None:  # a linear head: the mean change is the mean row's
            change = final.float() - reference.float()
            centre = torch.einsum("rsh,sh->rs", change, wild.head_mean)
        return measure(wild, self.architecture.logit_change(final, reference), self.vocab, centre)

    def measure_pass(self, traced: TracedWildtype, run: Pass) -> list[Measured]:
        """The mutant rows of one pass, each against its own control row (the unmutated row
        that joined with it); each control against the traced baseline feeds the noise
        floor."""
        assert run.controls is not None and run.control_of is not None, "a pass with controls"
        measured: list[Measured | None] = [None] * run.final.shape[0]
        for number, control in enumerate(run.controls):
            rows = [row for row, own in enumerate(run.control_of) if own == number]
            wild = self._control(traced, control)
            for row, one in zip(rows, self._measure(wild, run.final[rows], control), strict=True):
                measured[row] = one
        return measured  # type: ignore[return-value]


def measure_logits(
    wild_logits: torch.Tensor, targets: torch.Tensor, logits: Sequence[torch.Tensor]
) -> list[Measured]:
    """Mutants' whole logits (each (steps, vocab)) against an unmutated pass of the same shape
    (`wild_logits`): the lone path, where every mutant is its own pass."""
    if not logits:
        return []
    stacked = torch.stack([row.float() for row in logits])
    wild = wildtype(wild_logits, targets)
    vocab = int(wild_logits.shape[-1])
    reference = wild_logits.float()
    return measure(wild, lambda tokens: stacked[..., tokens] - reference[:, tokens], vocab)
