"""How far batched logits are from lone ones: the measurement behind the near-tie tolerances.

The screen engine computes a mutant's logits in a batch, with the mutation as a per-sample delta;
the naive path edits the weight and decodes alone. Their float32 logits differ in the last bits.
A decision can flip only when its margin is smaller than that difference (twice it, at most), so
`engine.decoding.near_tie_tolerance` must exceed it. For SmolLM2 this prints, for random element
and 64x64 tile mutations, the largest difference of any logit relative to `1 + |top1|`, in
float32 epsilons, over
- teacher forcing (the baseline's tokens through the mutated model, up to the mutant's first
  different choice), for the full head and for the judge's candidate scores (the baseline's
  best tokens at each step, as one small product), and
- onward decoding of diverged mutants (each compared on its own tokens),
and how many mutants' decisions come closer than a range of tolerances.

    .venv/bin/python benchmarks/near_ties.py [--elements 128] [--tiles 64]
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from screen_throughput import PROMPT, element_mutations, tile_mutations
from transformers import DynamicCache

from mutatui.engine.decoding import Decoding, encode_prompt
from mutatui.engine.kv import with_cache
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel, load_model
from mutatui.engine.mutations import Mutation, mutated
from mutatui.exact.onward import Diverged
from mutatui.exact.screener import Screener
from mutatui.exact.teacher import teacher_input

EPS = torch.finfo(torch.float32).eps


def lone_logits(
    lm: LoadedModel, catalog: MatrixCatalog, mutation: Mutation, sequence: list[int], prompt: int
) -> torch.Tensor:
    """The naive path's logits at every decision of `sequence`, as `model.generate` computes
    them: the weight edited, the prompt in one pass, then one token at a time with a cache."""
    with torch.inference_mode(), mutated(catalog, mutation):
        cache = DynamicCache()
        inputs = [sequence[:prompt], *([token] for token in sequence[prompt:])]
        steps = [
            lm.model(
                input_ids=torch.tensor([ids]), **with_cache(lm.model, cache), logits_to_keep=1
            ).logits[0, -1]
            for ids in inputs
        ]
    return torch.stack(steps)


def epsilons(batched: torch.Tensor, lone: torch.Tensor) -> float:
    """Largest logit difference relative to 1 + |top1|, in float32 epsilons."""
    top = lone.max(dim=-1).values.abs()
    return float(((batched - lone).abs().max(dim=-1).values / (1 + top)).max()) / EPS


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
    probe = screener._text_probe(prompt, baseline)
    teacher, candidate, margins = [], [], []
    rows_per_pass = screener.pass_rows(len(sequence))
    tokens = probe.reference.candidates
    for start in range(0, len(mutations), rows_per_pass):
        chunk = sorted(mutations[start : start + rows_per_pass], key=lambda m: m.site.layer)
        with torch.inference_mode():
            final, _ = screener.runner.run_from(probe.trace, chunk, slice(len(prompt) - 1, None))
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
    for tolerance in (128, 256, 512, 1024, 2048):
        closer = sum(margin < tolerance for margin in margins)
        print(f"  mutants with a margin under {tolerance} eps (teacher forcing): {closer}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=128)
    parser.add_argument("--tiles", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    lm = load_model("smollm2")
    catalog = MatrixCatalog(lm.model)
    screener = Screener(lm, catalog, Decoding(max_new_tokens=48))
    prompt = encode_prompt(lm, PROMPT)
    print(f"smollm2, prompt {PROMPT!r}, greedy, 48 new tokens, batch {screener.batch_size}")
    if args.elements:
        mutations = element_mutations(catalog, args.elements, args.seed)
        measure("random elements", screener, prompt, mutations)
    if args.tiles:
        measure("64x64 tiles", screener, prompt, tile_mutations(catalog, args.tiles, args.seed))


if __name__ == "__main__":
    main()
