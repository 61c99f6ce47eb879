"""Exactness on the real SmolLM2-135M-Instruct: 105 sampled mutations, elements and blocks over
all 7 matrix types, through the fast screen engine and through the naive path (edit the weight,
model.generate alone, restore): 100% equal."""

import pytest
import torch
from naive import SMOLLM2_PROMPT as PROMPT
from naive import sampled_mutations_of_smollm2 as sampled_mutations

from mutatui.engine.architecture import Architecture
from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.questions import naive_choices, render_question
from mutatui.exact.lockstep import LockstepDecoder
from mutatui.exact.screener import Screener
from mutatui.screening.choice import load_questions

# The naive reference costs ~1 s per mutation on a quiet 2-core CPU; allow for a busy one.
pytestmark = [pytest.mark.smollm2, pytest.mark.timeout(3600)]

MATRICES = ("q", "k", "v", "o", "gate", "up", "down")


def test_fast_engine_equals_naive_path_on_smollm2(smollm2):
    lm, catalog = smollm2
    decoding = Decoding(max_new_tokens=24)
    prompt = encode_prompt(lm, PROMPT)
    mutations = sampled_mutations(catalog)[::3]  # 6 elements and 4 tiles of every type
    assert len(mutations) >= 70
    assert {m.site.matrix for m in mutations} == set(MATRICES)
    assert any(m.site.is_element for m in mutations) and any(
        not m.site.is_element for m in mutations
    )
    before = {name: catalog.weight(5, name).clone() for name in MATRICES}
    screener = Screener(lm, catalog, decoding)
    assert screener.layered
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    mismatches = []
    for mutation, outcome in zip(mutations, outcomes, strict=True):
        reference = naive_generate(lm, catalog, prompt, mutation, decoding)
        if (outcome.tokens, outcome.stopped) != (reference.tokens, reference.stopped):
            mismatches.append(str(mutation))
    changed = sum(outcome.diverge_at is not None for outcome in outcomes)
    assert mismatches == []
    assert changed >= 10, f"only {changed} output-changing mutations"
    for name in MATRICES:
        assert torch.equal(catalog.weight(5, name), before[name])


def test_sampled_decoding_equals_the_sampler_alone_on_smollm2(smollm2):
    lm, catalog = smollm2
    decoding = Decoding(mode="sample", temperature=0.7, seed=0, max_new_tokens=16)
    prompt = encode_prompt(lm, PROMPT)
    mutations = sampled_mutations(catalog, seed=1)[::7]
    screener = Screener(lm, catalog, decoding)
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    for mutation, outcome in zip(mutations, outcomes, strict=True):
        reference = naive_generate(lm, catalog, prompt, mutation, decoding)
        assert (outcome.tokens, outcome.stopped) == (reference.tokens, reference.stopped), str(
            mutation
        )
    assert any(outcome.diverge_at is not None for outcome in outcomes)


def test_choice_assay_equals_the_naive_scorer_on_smollm2(smollm2):
    """The shipped questions share the chat template's system turn, which the fast assay runs
    once per batch; every answer must still be the naive scorer's."""
    lm, catalog = smollm2
    questions = load_questions()
    sampled = sampled_mutations(catalog, seed=2)[8::15]  # per matrix type: an element, a tile
    mutations = sampled[0::4] + sampled[3::4]  # elements of four types, tiles of the others
    screener = Screener(lm, catalog, Decoding())
    prompts = [render_question(lm, question) for question in questions]
    assert screener.traces.shared_prefix(prompts) is not None
    answers = screener.screen_choice(questions, mutations)
    baseline = naive_choices(lm, catalog, questions, None)
    for mutation, chosen in zip(mutations, answers, strict=True):
        assert chosen == naive_choices(lm, catalog, questions, mutation), str(mutation)
    assert any(chosen != baseline for chosen in answers)


@pytest.mark.parametrize("arithmetic", ["native", "float32"])
def test_bfloat16_engine_equals_naive_path_on_smollm2(arithmetic):
    """SmolLM2 in bfloat16, computed natively and in float32 arithmetic: a sample over all 7
    matrix types, elements and tiles, through the engine (after measuring its tolerance, as a
    screen does) and the naive path in the same dtype and arithmetic: 100% equal."""
    from naive import sampled_mutations_of_smollm2

    from mutatui.engine.matrices import MatrixCatalog
    from mutatui.engine.models import load_model
    from mutatui.exact.selfcheck import self_check

    lm = load_model("smollm2", dtype="bfloat16", arithmetic=arithmetic)
    catalog = MatrixCatalog(lm.model)
    mutations = sampled_mutations_of_smollm2(catalog, seed=3)[::20]  # 11: all 7 types, tiles too
    assert {m.site.matrix for m in mutations} == set(MATRICES)
    assert {m.site.is_element for m in mutations} == {True, False}
    check = self_check(
        lm, catalog, Decoding(max_new_tokens=24), encode_prompt(lm, PROMPT), mutations
    )
    assert check.mismatches == []
    assert check.changed >= 3, f"only {check.changed} output-changing mutations"
    assert check.tolerance.mutations > 0
    if arithmetic == "native":  # nearly every decision is a near tie: the lockstep decoder
        chunk = LockstepDecoder.chunk_for(Architecture(lm.model))  # this machine's kernels
        if chunk > 1:
            assert check.lockstep == "exact"
            assert check.settled == 0
        else:  # it says why, and every mutant goes to the naive path
            assert check.lockstep == "no batched product on this device computes rows as lone rows"
            assert check.settled == len(mutations)


PLAIN_NAMES = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}


def test_native_bfloat16_outcomes_are_the_plain_generate_call():
    """The reference call of docs/design/engine.md, written as a researcher writes it, with no
    mutatui code between the model and its output: `AutoModelForCausalLM.from_pretrained` in
    bfloat16 (transformers' default attention), the chat template's token ids, the weight set
    to its matrix's max or min by hand, `model.generate(ids, attention_mask=ones,
    do_sample=False)`, restored. A native bfloat16 screener's outcomes (elements and tiles,
    changed and unchanged) are its tokens, every one."""
    from transformers import AutoModelForCausalLM

    from mutatui.engine.matrices import MatrixCatalog
    from mutatui.engine.models import load_model
    from mutatui.engine.mutations import make_mutation
    from mutatui.exact.selfcheck import element_mutations, tile_mutations

    lm = load_model("smollm2", dtype="bfloat16", arithmetic="native")
    catalog = MatrixCatalog(lm.model)
    decoding = Decoding(max_new_tokens=16)
    plain = AutoModelForCausalLM.from_pretrained(lm.source, dtype=torch.bfloat16).eval()
    tokenizer = lm.tokenizer
    messages = [{"role": "user", "content": PROMPT}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    prompt = encode_prompt(lm, PROMPT)
    assert ids[0].tolist() == prompt

    def generate() -> list[int]:
        with torch.inference_mode():
            out = plain.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=16
            )
        tokens = out[0, ids.shape[1] :].tolist()
        eos = plain.generation_config.eos_token_id
        return tokens[: tokens.index(eos)] if eos in tokens else tokens

    mutations = element_mutations(catalog, 4, seed=11) + tile_mutations(catalog, 3, seed=11)
    own = float(catalog.weight(12, "v")[5, 6])  # its own value: certainly unchanged
    mutations.append(make_mutation("L12.v[5,6]", repr(own), catalog))
    screener = Screener(lm, catalog, decoding)
    baseline = screener.baseline(prompt)
    assert baseline.tokens == generate()
    outcomes = screener.screen_text(prompt, baseline, mutations)
    for mutation, outcome in zip(mutations, outcomes, strict=True):
        site = mutation.site
        weight = plain.model.layers[site.layer].get_submodule(PLAIN_NAMES[site.matrix]).weight
        kept = weight.data[site.row0 : site.row1, site.col0 : site.col1].clone()
        value = {"max": weight.data.max(), "min": weight.data.min()}.get(
            mutation.kind.value, mutation.value
        )
        weight.data[site.row0 : site.row1, site.col0 : site.col1] = value
        try:
            assert outcome.tokens == generate(), str(mutation)
        finally:
            weight.data[site.row0 : site.row1, site.col0 : site.col1] = kept
    changed = sum(outcome.diverge_at is not None for outcome in outcomes)
    assert 0 < changed < len(mutations), "changed and unchanged outputs both"
    assert outcomes[-1].diverge_at is None
