"""Real weights through other families' code: SmolLM2's weights as a Mistral and as a Qwen2
(`engine.refamily`: the same function) give SmolLM2's own baseline, and the fast engine equals
the naive path on them, elements and tiles over every matrix type."""

import pytest
from naive import SMOLLM2_PROMPT as PROMPT
from naive import sampled_mutations_of_smollm2 as sampled_mutations

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.refamily import smollm2_as
from mutatui.exact.screener import Screener

pytestmark = [pytest.mark.smollm2, pytest.mark.timeout(3600)]

DECODING = Decoding(max_new_tokens=24)


@pytest.fixture(scope="module", params=["mistral", "qwen2"])
def refamilied(request):
    lm = load_model(str(smollm2_as(request.param)))
    return request.param, lm, MatrixCatalog(lm.model)


def test_the_same_weights_in_other_code_give_smollm2s_baseline(refamilied, smollm2):
    model_type, lm, catalog = refamilied
    assert lm.model.config.model_type == model_type
    llama, llama_catalog = smollm2
    prompt = encode_prompt(llama, PROMPT)
    assert encode_prompt(lm, PROMPT) == prompt
    ours = naive_generate(lm, catalog, prompt, None, DECODING)
    assert ours.tokens == naive_generate(llama, llama_catalog, prompt, None, DECODING).tokens


def test_fast_engine_equals_naive_path_in_other_code(refamilied):
    model_type, lm, catalog = refamilied
    prompt = encode_prompt(lm, PROMPT)
    mutations = sampled_mutations(catalog, seed=5)[::9]
    assert {m.site.matrix for m in mutations} == set(catalog.names)
    screener = Screener(lm, catalog, DECODING)
    assert screener.path == f"the fast path ({catalog.family.name})"
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    mismatches = []
    for mutation, outcome in zip(mutations, outcomes, strict=True):
        reference = naive_generate(lm, catalog, prompt, mutation, DECODING)
        if (outcome.tokens, outcome.stopped) != (reference.tokens, reference.stopped):
            mismatches.append(str(mutation))
    assert mismatches == [], model_type
    assert sum(outcome.diverge_at is not None for outcome in outcomes) >= 5
