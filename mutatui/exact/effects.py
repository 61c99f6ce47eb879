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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ROWS_PER_HEAD = 4
"""Mutants whose full logits are held at once (rows x steps x vocabulary floats)."""


@dataclass(frozen=True)
class Effect:
    """One mutation's effect on one text probe (None where a quantity is not a number)."""

    delta_nll: float | None
    kl_prefix: float | None
    kl_all: float | None
    diverge_margin: float | None


@dataclass(frozen=True)
class BaselineDistribution:
    """The unmutated model on its own continuation: per step, log-probabilities, the negative
    log-likelihood of the baseline's choice and the top-1 minus top-2 logit margin."""

    log_probs: torch.Tensor  # (steps, vocab) float32
    probs: torch.Tensor  # (steps, vocab) float32
    neg_entropy: torch.Tensor  # (steps,) float32: sum of P log P
    targets: torch.Tensor  # (steps,) the baseline's choice at each step
    nll: torch.Tensor  # (steps,) float64
    margins: torch.Tensor  # (steps,) float64

    @property
    def steps(self) -> int:
        return int(self.targets.shape[0])


@dataclass(frozen=True)
class Measured:
    """What teacher forcing measured of one mutant, per step, before its outcome is known."""

    nll: torch.Tensor  # (steps,) float64
    kl: torch.Tensor  # (steps,) float64


def baseline_distribution(logits: torch.Tensor, targets: torch.Tensor) -> BaselineDistribution:
    """`logits` are the unmutated model's at the decision steps, (steps, vocab); `targets` the
    baseline's choices there."""
    raw = logits.float()
    log_probs = torch.log_softmax(raw, dim=-1)
    targets = targets.to(device=raw.device, dtype=torch.long)
    top = raw.topk(2, dim=-1).values
    probs = log_probs.exp()
    return BaselineDistribution(
        log_probs=log_probs,
        probs=probs,
        neg_entropy=torch.where(probs > 0, probs * log_probs, 0.0).sum(-1),
        targets=targets,
        nll=-log_probs.gather(-1, targets.view(-1, 1)).squeeze(-1).double().cpu(),
        margins=(top[:, 0] - top[:, 1]).double().cpu(),
    )


def measure(baseline: BaselineDistribution, logits: torch.Tensor) -> list[Measured]:
    """Per mutant, the per-step NLL of the baseline's choices and KL(P_t || Q_t), from the
    mutants' logits at the decision steps, (rows, steps, vocab)."""
    log_q = torch.log_softmax(logits.float(), dim=-1)
    # KL(P || Q) = sum P log P - sum P log Q, the first term the baseline's alone
    kl = baseline.neg_entropy - torch.einsum("rsv,sv->rs", log_q, baseline.probs)
    unsure = ~torch.isfinite(kl).all(dim=-1)
    if unsure.any():  # Q rules out a token: 0 * log 0 is 0 where P rules it out too
        p, log_p = baseline.probs, baseline.log_probs
        exact = torch.where(p > 0, p * (log_p - log_q[unsure]), 0.0).sum(-1)
        kl[unsure] = exact
    index = baseline.targets.view(1, -1, 1).expand(log_q.shape[0], -1, 1)
    nll = -log_q.gather(-1, index).squeeze(-1)
    return [
        Measured(nll=row_nll, kl=row_kl)
        for row_nll, row_kl in zip(nll.double().cpu(), kl.double().cpu(), strict=True)
    ]


def _number(value: torch.Tensor) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def effect(baseline: BaselineDistribution, measured: Measured, diverge_at: int | None) -> Effect:
    """The mutant's effect once its outcome (first differing token, or None) is known."""
    steps = baseline.steps
    end = steps if diverge_at is None else min(diverge_at + 1, steps)
    margin = None
    if diverge_at is not None and diverge_at < steps:
        margin = float(baseline.margins[diverge_at])
    return Effect(
        delta_nll=_number((measured.nll - baseline.nll).mean()),
        kl_prefix=_number(measured.kl[:end].mean()),
        kl_all=_number(measured.kl.mean()),
        diverge_margin=margin,
    )
