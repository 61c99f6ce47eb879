import pytest
import torch

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import (
    Decoding,
    GumbelNoise,
    encode_prompt,
    generate_exact,
    naive_generate,
    stream_batch,
)
from mutatui.engine.mutations import make_mutation
from mutatui.errors import MutatuiError

GREEDY = Decoding(max_new_tokens=16)
SAMPLED = Decoding(mode="sample", temperature=0.7, seed=7, max_new_tokens=16)


def all_matrix_mutations(catalog, site="[1:3,2:5]"):
    return [
        make_mutation(f"L{layer}.{name}{index}", kind, catalog)
        for layer in range(catalog.num_layers)
        for name in catalog.names
        for index in (site, "[0,1]")
        for kind in ("max", "min")
    ]


@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_batched_rows_equal_editing_the_weight_and_generating_alone(tiny, decoding):
    lm, catalog = tiny
    prompt = encode_prompt(lm, "the cat sat")
    mutations = [None, *all_matrix_mutations(catalog)]
    batched = generate_exact(lm, catalog, prompt, mutations, decoding)
    changed = 0
    for mutation, result in zip(mutations, batched, strict=True):
        alone = naive_generate(lm, catalog, prompt, mutation, decoding)
        assert result.tokens == alone.tokens, str(mutation)
        assert result.stopped == alone.stopped
        changed += first_divergence(batched[0].tokens, result.tokens) is not None
    assert changed >= 5, "the test needs mutations that change the output"
    assert changed < len(mutations) - 1, "and some that do not"


def test_sampling_is_seeded_and_step_noise_is_fixed():
    first, second = GumbelNoise(3, 50), GumbelNoise(3, 50)
    second.at(5)
    assert torch.equal(first.at(2), second.at(2))
    assert not torch.equal(first.at(2), GumbelNoise(4, 50).at(2))


def test_sampled_output_differs_from_greedy_but_repeats(tiny):
    lm, catalog = tiny
    prompt = encode_prompt(lm, "hello")
    one = naive_generate(lm, catalog, prompt, None, SAMPLED)
    two = naive_generate(lm, catalog, prompt, None, SAMPLED)
    greedy = naive_generate(lm, catalog, prompt, None, GREEDY)
    assert one.tokens == two.tokens
    assert one.tokens != greedy.tokens


def test_streaming_yields_each_step_and_stops_rows_at_eos_like_generate(tiny):
    lm, catalog = tiny
    prompt = encode_prompt(lm, "abc")
    baseline = naive_generate(lm, catalog, prompt, None, GREEDY)
    stop_token = baseline.tokens[3]
    config = lm.model.generation_config
    original = config.eos_token_id
    config.eos_token_id = [original, stop_token]
    try:
        mutation = make_mutation("L1.up[0:8,0:8]", "max", catalog)
        results = []
        steps = list(stream_batch(lm, catalog, prompt, [None, mutation], GREEDY, results))
        alone = naive_generate(lm, catalog, prompt, None, GREEDY)
    finally:
        config.eos_token_id = original
    assert [step.index for step in steps] == list(range(len(steps)))
    assert (
        results[0].stopped
        and results[0].tokens == baseline.tokens[: baseline.tokens.index(stop_token)]
    )
    assert results[0].tokens == alone.tokens and alone.stopped
    assert steps[len(results[0].tokens)].tokens[0] is None


def test_huge_values_are_flagged_not_fatal(tiny):
    lm, catalog = tiny
    prompt = encode_prompt(lm, "abc")
    mutations = [None, make_mutation("L0.q[0:32,0:32]", "inf", catalog)]
    base, mutant = generate_exact(lm, catalog, prompt, mutations, GREEDY)
    assert mutant.nonfinite and not base.nonfinite
    assert mutant.tokens == naive_generate(lm, catalog, prompt, mutations[1], GREEDY).tokens


def test_decoding_settings_are_checked():
    with pytest.raises(MutatuiError, match="valid: greedy, sample"):
        Decoding(mode="beam")
    with pytest.raises(MutatuiError, match="max_new_tokens"):
        Decoding(max_new_tokens=0)


def test_chat_template_is_used_unless_turned_off(tiny):
    lm, _ = tiny
    chat = lm.tokenizer.decode(encode_prompt(lm, "hi"))
    plain = lm.tokenizer.decode(encode_prompt(lm, "hi", chat=False))
    assert chat == "<|user|>hi<|end|><|assistant|>"
    assert plain == "hi"
