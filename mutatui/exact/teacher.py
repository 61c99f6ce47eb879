"""Teacher forcing: where does each mutant first choose differently from the baseline?

The baseline's continuation is fed through the mutated model; at step t the mutant's choice
(greedy argmax, or the seeded Gumbel-max choice with step t's noise) is compared with the
baseline's token t. Up to its first differing step a mutant's output is the baseline's.

Most element mutations barely move the final hidden state, so most steps are decided without
computing the mutant's full logits: with `dh` the change of the final-norm output and every
head row of norm at most `N`, each score moves by at most `|dh| * N / T` (T the temperature, 1
for greedy).
1. When the baseline's winning margin exceeds twice that by more than the near-tie tolerance,
   the mutant's choice is certainly the baseline's token, with a margin that is not a near tie.
2. Otherwise the scores of the baseline's CANDIDATES best tokens are computed exactly, and every
   other token is bounded by the best baseline score outside them plus `|dh| * N / T`. When the
   best candidate beats both the next candidate and that bound by more than the tolerance, it is
   the mutant's choice (the baseline's token or not), with no near tie.
Only the remaining steps compute the full logits, through the same `Chooser` as decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from mutatui.engine.architecture import Architecture
from mutatui.engine.decoding import Chooser, Decoding, Generation, too_close
from mutatui.errors import MutatuiError

CANDIDATES = 64
"""Baseline tokens per step whose scores are computed exactly before falling back to the head."""


@dataclass
class Reference:
    """The baseline's decisions on its own continuation, as the mutants are judged against.

    Step t (0 <= t < steps) is decided at sequence position `prompt_length - 1 + t`; the baseline
    chose `targets[t]` there. When the baseline stopped, its last step chose an EOS token and any
    EOS token agrees with it.
    """

    prompt_length: int
    steps: int
    baseline: Generation
    eos: frozenset[int]
    final: torch.Tensor  # (steps, hidden): the baseline's final-norm output at each step
    targets: torch.Tensor  # (steps,)
    gaps: torch.Tensor  # (steps,) score of the target minus the best other score
    tops: torch.Tensor  # (steps,) score of the target
    candidates: torch.Tensor  # (steps, CANDIDATES) the baseline's best tokens, target included
    outside: torch.Tensor  # (steps,) the best baseline score of a token not among candidates
    score_scale: float  # how much a unit change of a logit moves a score

    def agrees(self, step: int, token: int) -> bool:
        if step < len(self.baseline.tokens):
            return token == self.baseline.tokens[step]
        return token in self.eos


def teacher_steps(baseline: Generation, decoding: Decoding) -> int:
    """How many decisions the baseline's continuation holds (its tokens, plus the EOS if any)."""
    count = len(baseline.tokens)
    if not baseline.stopped and count != decoding.max_new_tokens:
        raise MutatuiError(
            f"the baseline has {count} tokens without stopping, but max_new_tokens is "
            f"{decoding.max_new_tokens}: it was not decoded with this decoding"
        )
    return count + 1 if baseline.stopped else count


def teacher_input(prompt: Sequence[int], baseline: Generation, decoding: Decoding) -> list[int]:
    """The prompt and as much of the continuation as the decisions need (not the last token)."""
    steps = teacher_steps(baseline, decoding)
    return [*prompt, *baseline.tokens[: steps - 1]]


def eos_target(scores: torch.Tensor, eos: frozenset[int]) -> int:
    """The EOS token a stopped baseline's last decision stands for: the one its scores prefer
    there, else the lowest EOS id (any EOS ends a continuation alike)."""
    best = int(scores.argmax())
    return best if best in eos else min(eos)


def make_reference(
    prompt_length: int,
    baseline: Generation,
    eos: frozenset[int],
    final: torch.Tensor,
    logits: torch.Tensor,
    chooser: Chooser,
) -> Reference:
    """`final` and `logits` are the baseline's at the decision positions, one row per step."""
    steps = final.shape[0]
    targets, gaps, tops, candidates, outside = [], [], [], [], []
    for step in range(steps):
        scores = chooser.scores(logits[step], step)
        target = baseline.tokens[step] if step < len(baseline.tokens) else eos_target(scores, eos)
        others = scores.clone()
        others[target] = -math.inf
        targets.append(target)
        tops.append(scores[target])
        gaps.append(scores[target] - others.max())
        best_others = others.topk(min(CANDIDATES, others.numel()) - 1).indices
        chosen = torch.cat([torch.tensor([target], device=scores.device), best_others])
        others[chosen] = -math.inf
        candidates.append(chosen)
        outside.append(others.max())
    decoding = chooser.decoding
    return Reference(
        prompt_length=prompt_length,
        steps=steps,
        baseline=baseline,
        eos=eos,
        final=final,
        targets=torch.tensor(targets),
        gaps=torch.stack(gaps),
        tops=torch.stack(tops),
        candidates=torch.stack(candidates),
        outside=torch.stack(outside),
        score_scale=1.0 / decoding.temperature if decoding.mode == "sample" else 1.0,
    )


@dataclass
class Verdict:
    """One mutant under teacher forcing: its first differing step and the token it chose there
    (None, None when it agrees at every step), its steps decided by a near tie up to there
    (a margin under its tolerance, or a non-finite score), and whether its logits went
    non-finite."""

    diverge_at: int | None = None
    token: int | None = None
    ties: list[int] = field(default_factory=list)
    nonfinite: bool = False

    def note(self, step: int, margin: float, nonfinite: bool, tolerance: float) -> None:
        if too_close(margin, tolerance):
            self.ties.append(step)
        self.nonfinite |= nonfinite


def score_bounds(reference: Reference, final: torch.Tensor, head_norm: float) -> torch.Tensor:
    """(rows, steps) how far any score of each mutant can be from the baseline's at each step.

    `final` is the mutants' final-norm output at the decision positions, (rows, steps, hidden).
    """
    moved = (final.float() - reference.final.float()).norm(dim=-1)
    return moved * head_norm * reference.score_scale


def candidate_choices(
    reference: Reference,
    step: int,
    final: torch.Tensor,
    bounds: torch.Tensor,
    head: Architecture,
    chooser: Chooser,
    tolerances: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The choice at `step` of each row, decided from the baseline's candidate tokens alone.

    `final` is the rows' final-norm output at the step, (rows, hidden), `bounds` their score
    bounds there. Returns the tokens and a mask of the rows they decide: the best candidate
    beats the next one and every other token's bound by at least the tolerance (relative to
    `1 + |best|`, as `Chooser.choose` measures margins).
    """
    tokens = reference.candidates[step]
    scores = chooser.scores(head.token_logits(final, tokens), step, tokens)
    top = scores.topk(2, dim=-1)
    runner_up = torch.maximum(top.values[:, 1], reference.outside[step] + bounds)
    best = top.values[:, 0]
    margins = (best - runner_up) / (1.0 + best.abs())
    return tokens[top.indices[:, 0]].cpu(), (margins >= tolerances).cpu()


def certified_steps(
    reference: Reference, bounds: torch.Tensor, tolerances: torch.Tensor
) -> torch.Tensor:
    """(rows, steps) True where the mutant surely picks the baseline's token without a near tie.

    `bounds` are the rows' score bounds, `tolerances` each row's near-tie tolerance, (rows,).
    Comparisons with NaN are False, so non-finite rows are never certified.
    """
    lower = (reference.gaps - 2 * bounds) / (1 + reference.tops.abs() + bounds)
    return lower >= tolerances.view(-1, 1)


def judge(
    reference: Reference,
    final: torch.Tensor,
    head: Architecture,
    head_norm: float,
    chooser: Chooser,
    tolerances: torch.Tensor,
) -> list[Verdict]:
    """Each mutant's first step choosing differently from the baseline, step by step."""
    rows = final.shape[0]
    verdicts = [Verdict() for _ in range(rows)]
    tolerances = tolerances.to(final.device)
    bounds = score_bounds(reference, final, head_norm)
    certain = certified_steps(reference, bounds, tolerances).cpu()
    row_tolerances = tolerances.tolist()
    alive = torch.ones(rows, dtype=torch.bool)
    for step in range(reference.steps):
        pending = (alive & ~certain[:, step]).nonzero().flatten()
        if not len(pending):
            continue
        tokens, decided = candidate_choices(
            reference,
            step,
            final[pending.to(final.device), step],
            bounds[pending.to(final.device), step],
            head,
            chooser,
            tolerances[pending.to(final.device)],
        )
        for row, token in zip(pending[decided].tolist(), tokens[decided].tolist(), strict=True):
            if not reference.agrees(step, token):
                verdicts[row].diverge_at, verdicts[row].token = step, token
                alive[row] = False
        pending = pending[~decided].tolist()
        if not pending:
            continue
        logits = head.logits(final[pending, step])
        tokens, margins = chooser.choose(logits, step)
        nonfinite = ~torch.isfinite(logits).all(dim=-1)
        for row, token, margin, bad in zip(
            pending, tokens.tolist(), margins.tolist(), nonfinite.tolist(), strict=True
        ):
            verdict = verdicts[row]
            verdict.note(step, margin, bad, row_tolerances[row])
            if not reference.agrees(step, token):
                verdict.diverge_at, verdict.token = step, token
                alive[row] = False
    return verdicts
