"""How far batched logits are from lone ones: the measurement behind the near-tie tolerances.

The screen engine computes a mutant's logits in a batch, with the mutation as a per-sample delta;
the naive path edits the weight and decodes alone. Their logits differ in the last bits. A
decision can flip only when its margin is smaller than that difference (twice it, at most), so
the near-tie tolerance must exceed it. A screen measures it at its start (`exact.tolerance`,
`Screener.calibrate`); this prints that calibration, then, for random element and 64x64 tile
mutations of SmolLM2 (or `--model`), in the dtype and arithmetic asked for, the largest
difference of any logit relative to `1 + |top1|`, in epsilons of the arithmetic, over
- teacher forcing (the baseline's tokens through the mutated model, up to the mutant's first
  different choice), for the full head and for the judge's candidate scores (the baseline's
  best tokens at each step, as one small product), and
- onward decoding of diverged mutants (each compared on its own tokens),
the baseline's own near ties at the calibrated tolerance, and how many mutants' decisions come
closer than a range of tolerances.

    .venv/bin/python benchmarks/near_ties.py [--dtype bfloat16] [--arithmetic float32]
        [--model smollm2] [--elements 128] [--tiles 64]
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from screen_throughput import PROMPT

from mutatui.engine.decoding import Decoding, encode_prompt
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.mutations import Mutation
from mutatui.exact.onward import Diverged
from mutatui.exact.screener import Screener
from mutatui.exact.selfcheck import element_mutations, tile_mutations
from mutatui.exact.teacher import teacher_input
from mutatui.exact.tolerance import lone_logits, relative_difference

EPS = torch.finfo(torch.float32).eps
"""Machine epsilon of the arithmetic measured (set in `main`)."""


def epsilons(batched: torch.Tensor, lone: torch.Tensor) -> float:
    """Largest logit difference relative to 1 + |top1|, in epsilons of the arithmetic."""
    return relative_difference(batched, lone) / EPS


def measure(name: str, screener: Screener, prompt: list[int], mutations: list[Mutation]) -> None:
    lm, catalog = screener.lm, screener.catalog
    baseline = screener.baseline(prompt)
    sequence = teacher_input(prompt, baseline, screener.decoding)
    onward: dict[int, list[torch.Tensor]] = defaultdict(list)
    rows: dict[int, Diverged] = {}

    def observe(row: Diverged, logits: torch.Tensor) -> None:
        onward[id(row)].append(logits.clone())
        rows[id(row)] = row

    screener.observe_onward = observe
    outcomes = screener.screen_text(prompt, baseline, mutations)
    screener.observe_onward = None
    probe = screener.traces.text(prompt, baseline)
    teacher, candidate, margins = [], [], []
    rows_per_pass = screener.pass_rows(len(sequence))
    tokens = probe.reference.candidates
    for start in range(0, len(mutations), rows_per_pass):
        chunk = sorted(mutations[start : start + rows_per_pass], key=lambda m: m.site.layer)
        with torch.inference_mode():
            run = screener.runner.run_from(probe.trace, chunk, slice(len(prompt) - 1, None))
            final = run.final
            batched = screener.runner.logits(final)
            # the judge's candidate scores: each step's candidates only, as one small product
            scored = torch.stack(
                [
                    screener.runner.token_logits(final[:, step], tokens[step])
                    for step in range(len(tokens))
                ],
                1,
            )
        for row, mutation in enumerate(chunk):
            lone = lone_logits(lm, catalog, mutation, sequence, len(prompt))
            outcome = outcomes[mutations.index(mutation)]
            end = len(lone) if outcome.diverge_at is None else outcome.diverge_at + 1
            teacher.append(epsilons(batched[row, :end], lone[:end]))
            top = lone[:end].max(dim=-1).values.abs().view(-1, 1)
            error = (scored[row, :end] - lone[:end].gather(1, tokens[:end])).abs() / (1 + top)
            candidate.append(float(error.max()) / EPS)
            top2 = lone[:end].topk(2, dim=-1).values
            margin = (top2[:, 0] - top2[:, 1]) / (1 + top2[:, 0].abs())
            margins.append(float(margin.min()) / EPS)
    decoded = []
    for key, steps in onward.items():
        row = rows[key]
        lone = lone_logits(lm, catalog, row.mutation, [*prompt, *row.tokens], len(prompt))
        first = row.diverge_at + 1
        usable = min(len(steps), len(lone) - first)
        decoded.append(epsilons(torch.stack(steps[:usable]), lone[first : first + usable]))
    print(f"{name}: {len(mutations)} mutants, {len(decoded)} decoded onward")
    measured = (
        ("teacher forcing", teacher),
        ("teacher forcing, candidate scores", candidate),
        ("onward decoding", decoded),
    )
    for label, values in measured:
        if values:
            values.sort()
            median = values[len(values) // 2]
            print(f"  {label}: largest {values[-1]:.0f} eps, median {median:.0f} eps")
    for tolerance in (2, 4, 8, 16, 32) if EPS > 1e-4 else (128, 256, 512, 1024, 2048):
        closer = sum(margin < tolerance for margin in margins)
        print(f"  mutants with a margin under {tolerance} eps (teacher forcing): {closer}")


def main() -> None:
    global EPS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=128)
    parser.add_argument("--tiles", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.add_argument("--arithmetic", default="native", choices=("native", "float32"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    lm = load_model(args.model, dtype=args.dtype, device=args.device, arithmetic=args.arithmetic)
    EPS = torch.finfo(lm.compute_dtype).eps
    catalog = MatrixCatalog(lm.model)
    screener = Screener(lm, catalog, Decoding(max_new_tokens=48))
    prompt = encode_prompt(lm, PROMPT)
    print(
        f"{args.model}, {lm.describe()}, prompt {PROMPT!r}, greedy, 48 new tokens, "
        f"batch {screener.batch_size}"
    )
    baseline = screener.baseline(prompt)
    sample = element_mutations(catalog, 8, args.seed + 1) + tile_mutations(catalog, 4, args.seed)
    tolerance = screener.calibrate(prompt, baseline, sample)
    ties = screener.baseline_near_ties(prompt, baseline)
    print(f"calibration (as a screen's start): {tolerance.describe(lm.compute_dtype)}")
    print(f"  the baseline's decisions under it: {ties} of {len(baseline.tokens) + 1}")
    if args.elements:
        mutations = element_mutations(catalog, args.elements, args.seed)
        measure("random elements", screener, prompt, mutations)
    if args.tiles:
        measure("64x64 tiles", screener, prompt, tile_mutations(catalog, args.tiles, args.seed))


if __name__ == "__main__":
    main()
