"""The naive path the exact engine is held against (edit the weight, generate alone, restore),
and the mutations the exactness tests run through both."""

import random

import torch

from mutatui.engine.decoding import (
    Decoding,
    encode_prompt,
    greedy_generate_kwargs,
    naive_generate,
)
from mutatui.engine.mutations import make_mutation, mutated, weight_dtype
from mutatui.engine.sites import Site
from mutatui.exact.replay import GenerateTrace


def sample_mutations(catalog, seed=0):
    """Elements and blocks of every matrix type of every layer, max and min, plus huge values."""
    rng = random.Random(seed)
    mutations = []
    for info in catalog:
        for kind in ("max", "min"):
            row, col = rng.randrange(info.rows), rng.randrange(info.cols)
            mutations.append(
                make_mutation(Site.element(info.layer, info.name, row, col), kind, catalog)
            )
            row, col = rng.randrange(info.rows - 8), rng.randrange(info.cols - 8)
            block = Site(info.layer, info.name, row, row + 8, col, col + 8)
            mutations.append(make_mutation(block, kind, catalog))
    first, down, v = catalog.names[0], catalog.names[-1], catalog.names[2]  # q, down, v
    q, last = catalog.get(0, first), catalog.num_layers - 1
    mutations += [
        make_mutation(f"L0.{first}[0:{min(32, q.rows)},0:{min(32, q.cols)}]", "inf", catalog),
        make_mutation(f"L1.{down}[3,4]", repr(huge_value(catalog, 1, down)), catalog),
        make_mutation(f"L{last}.{v}[0:16,:]", "nan", catalog),
    ]
    return mutations


def huge_value(catalog, layer: int, name: str) -> float:
    """A huge value the matrix's weights hold as written: 1e30, or half the largest a
    narrower dtype holds (float16: 32752), which a mutation may no longer overflow to inf."""
    return min(1e30, float(torch.finfo(weight_dtype(catalog, layer, name)).max) / 2)


def naive_outcomes(lm, catalog, prompt, mutations, decoding):
    return [naive_generate(lm, catalog, prompt, m, decoding) for m in mutations]


SMOLLM2_PROMPT = "The life cycle of Drosophila:"


def sampled_mutations_of_smollm2(catalog, seed=0):
    """Per matrix type: 16 random elements and 14 random 64x64 tiles, max and min alternating."""
    rng = random.Random(seed)
    mutations = []
    for name in catalog.names:
        for number in range(30):
            info = catalog.get(rng.randrange(catalog.num_layers), name)
            if number < 16:
                site = Site.element(
                    info.layer, name, rng.randrange(info.rows), rng.randrange(info.cols)
                )
            else:
                row = rng.randrange(info.rows // 64) * 64
                col = rng.randrange(info.cols // 64) * 64
                site = Site(info.layer, name, row, row + 64, col, col + 64)
            mutations.append(make_mutation(site, ("max", "min")[number % 2], catalog))
    return mutations


STEPS = 10


def generate_logits(lm, catalog, prompt, mutation):
    """model.generate's own float32 scores per step, with the weight edited."""
    ids = torch.tensor([prompt])
    arguments = greedy_generate_kwargs(lm, ids, Decoding(max_new_tokens=STEPS))
    with mutated(catalog, mutation), torch.inference_mode():
        output = lm.model.generate(
            ids, **arguments, output_logits=True, return_dict_in_generate=True
        )
    return [step[0].float() for step in output.logits]


def check_bitwise(lm, catalog, text, sites):
    prompt = encode_prompt(lm, text)
    trace = GenerateTrace(lm, catalog, prompt, Decoding(max_new_tokens=STEPS))
    assert trace.generation == naive_generate(
        lm, catalog, prompt, None, Decoding(max_new_tokens=STEPS)
    )
    compared, left = 0, 0
    for site, kind in sites:
        mutation = make_mutation(site, kind, catalog)
        weight = catalog.weight(mutation.site.layer, mutation.site.matrix).clone()
        reference = generate_logits(lm, catalog, prompt, mutation)
        naive = naive_generate(lm, catalog, prompt, mutation, Decoding(max_new_tokens=STEPS))
        steps = range(len(reference))
        # fed the mutant's own tokens, every step is generate's, also after leaving the baseline
        replayed = trace.replay(mutation, steps, naive.tokens)
        for step in steps:
            assert torch.equal(replayed[step], reference[step]), f"{site} step {step}"
        compared += len(steps)
        left += naive.tokens != trace.generation.tokens
        assert torch.equal(catalog.weight(mutation.site.layer, mutation.site.matrix), weight)
        chosen = [*naive.tokens, None]
        last = len(reference) - 1
        assert trace.decisions(mutation, [0, last], naive.tokens) == {
            0: chosen[0],
            last: chosen[last],
        }
    assert left >= 2, "some mutants must leave the baseline's tokens"
    return compared
