"""Replaying model.generate from a mutated layer up: bit for bit generate's own logits."""

import pytest
import torch
from naive import STEPS, check_bitwise

from mutatui.engine.decoding import (
    Decoding,
    encode_prompt,
)
from mutatui.engine.mutations import make_mutation
from mutatui.exact.replay import GenerateTrace


def test_replay_is_generate_bit_for_bit_on_the_tiny_llama(tiny):
    lm, catalog = tiny
    sites = [
        ("L0.q[3,5]", "max"),
        ("L1.down[0:8,0:8]", "min"),
        ("L2.gate[7,1]", "max"),
        ("L1.v[0:4,:]", "max"),
        ("L2.o[1,2]", "0"),
    ]
    assert check_bitwise(lm, catalog, "the cat sat", sites) > len(sites)


def test_a_replay_restores_the_weight_and_needs_the_recorded_calls(tiny):
    lm, catalog = tiny
    prompt = encode_prompt(lm, "the cat sat")
    trace = GenerateTrace(lm, catalog, prompt, Decoding(max_new_tokens=STEPS))
    mutation = make_mutation("L1.up[0:8,0:8]", "max", catalog)
    before = catalog.weight(1, "up").clone()
    assert list(trace.decisions(mutation, [2])) == [2]
    assert torch.equal(catalog.weight(1, "up"), before)
    assert trace.decisions(mutation, [len(trace.calls)]) is None


def test_only_greedy_llama_runs_are_replayed(tiny):
    lm, catalog = tiny
    sampled = Decoding(mode="sample", temperature=0.7, seed=0, max_new_tokens=STEPS)
    assert not GenerateTrace.supports(lm, sampled)
    with pytest.raises(ValueError, match="greedy"):
        GenerateTrace(lm, catalog, encode_prompt(lm, "the cat"), sampled)


@pytest.mark.smollm2
def test_replay_is_generate_bit_for_bit_on_smollm2(smollm2):
    lm, catalog = smollm2
    sites = [
        ("L4.down[64,522]", "max"),
        ("L17.k[166,388]", "min"),
        ("L28.up[429,96]", "max"),
        ("L4.down[64:128,512:576]", "min"),
        ("L17.k[128:192,384:448]", "max"),
        ("L0.q[0:64,0:64]", "min"),
    ]
    assert check_bitwise(lm, catalog, "The life cycle of Drosophila:", sites) > len(sites)
