"""The lockstep decoder (the naive path batched) against the naive path itself, in bfloat16 on
this CPU: every family it runs, elements and blocks of every matrix type, output-changing
mutants among them, mutants decoding past where the baseline stopped; the families it cannot
run say why; a decoder whose products are not row-invariant is caught by the screen's check,
and the screen stays exact."""

import pytest
from machine import lockstep_runs_here
from naive import SMOLLM2_PROMPT, naive_outcomes, sample_mutations
from tiny_models import FAMILY_CONFIGS, build_tiny_model

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.exact.invariance import row_chunk
from mutatui.exact.lockstep import (
    LockstepDecoder,
    checked_decode,
    linear_modules,
    unsupported_reason,
)
from mutatui.exact.replay import GenerateTrace
from mutatui.exact.screener import Screener
from mutatui.exact.selfcheck import element_mutations
from mutatui.exact.tolerance import lone_logits

GREEDY = Decoding(max_new_tokens=16)
PROMPT = "the cat sat on the mat"
UNSUPPORTED = {
    "mistral": "sliding window",  # the tiny configs' window (8) is shorter than the probe
    "qwen2": "sliding window",
    "qwen3": "sliding window",
    "phi3": "sliding window",
    "gemma2": "sliding window",
    "gemma3_text": "sliding window",
    "gpt2": "not linear layers",  # Conv1D
}
WITHOUT_WINDOW = {"sliding_window": None, "use_sliding_window": False}
CONFIGS = {
    **FAMILY_CONFIGS,
    # as 7B Mistral and Qwen2 checkpoints ship: no window (Qwen2's q/k/v have biases)
    "mistral-unwindowed": {**FAMILY_CONFIGS["mistral"], **WITHOUT_WINDOW},
    "qwen2-unwindowed": {**FAMILY_CONFIGS["qwen2"], **WITHOUT_WINDOW},
    "qwen3-unwindowed": {**FAMILY_CONFIGS["qwen3"], **WITHOUT_WINDOW},
}


def _bfloat16(tmp_path, family):
    folder = build_tiny_model(tmp_path / family, CONFIGS[family], scale=8)
    lm = load_model(str(folder), dtype="bfloat16")
    return lm, MatrixCatalog(lm.model), encode_prompt(lm, PROMPT)


def _trace(lm, catalog, prompt):
    trace = GenerateTrace(lm, catalog, prompt, GREEDY)
    chunk = LockstepDecoder.chunk_for(trace.architecture)
    return trace, chunk


@lockstep_runs_here
@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_lockstep_decoding_is_generate_alone_in_bfloat16(tmp_path, family):
    lm, catalog, prompt = _bfloat16(tmp_path, family)
    trace, chunk = _trace(lm, catalog, prompt)
    assert chunk > 1, "bfloat16 products of a few rows compute as lone rows on this CPU"
    reason = unsupported_reason(trace, catalog, chunk, GREEDY.max_new_tokens)
    if family in UNSUPPORTED:
        assert reason is not None and UNSUPPORTED[family] in reason
        return
    assert reason is None
    mutations = sample_mutations(catalog)
    decoder = LockstepDecoder(trace, catalog, chunk)
    results = decoder.decode(mutations, GREEDY.max_new_tokens)
    references = naive_outcomes(lm, catalog, prompt, mutations, GREEDY)
    for mutation, result, reference in zip(mutations, results, references, strict=True):
        assert (result.tokens, result.stopped) == (reference.tokens, reference.stopped), str(
            mutation
        )
    changed = sum(reference.tokens != trace.generation.tokens for reference in references)
    assert 5 <= changed < len(mutations)
    assert all("forward" not in vars(module) for module in linear_modules(trace.architecture))


@lockstep_runs_here
def test_mutants_decode_past_where_the_baseline_stopped(tmp_path):
    """The baseline ends early (a token of its own made an end-of-sequence token); mutants that
    leave it before then decode on past the calls it made, as `generate` alone does."""
    lm, catalog, prompt = _bfloat16(tmp_path, "llama")
    free = GenerateTrace(lm, catalog, prompt, GREEDY).generation.tokens
    end = next(n for n in range(3, len(free)) if free[n] not in free[:n])
    lm.model.generation_config.eos_token_id = [1, free[end]]
    trace, chunk = _trace(lm, catalog, prompt)
    assert trace.generation.stopped and len(trace.generation.tokens) == end
    mutations = sample_mutations(catalog)
    results = LockstepDecoder(trace, catalog, chunk).decode(mutations, GREEDY.max_new_tokens)
    references = naive_outcomes(lm, catalog, prompt, mutations, GREEDY)
    assert [(r.tokens, r.stopped) for r in results] == [(r.tokens, r.stopped) for r in references]
    assert any(len(r.tokens) > end for r in references), "some mutant decodes past the baseline"


@pytest.mark.smollm2
def test_a_decoder_that_is_not_the_naive_path_is_caught_and_the_screen_stays_exact():
    """SmolLM2 in bfloat16: products of more than 32 rows take another kernel on this CPU (AMX
    tiles), which rounds differently from a lone row's. A decoder told to use them (40 rows
    per decoding step) fails the check against the naive path, and the screen settles its
    mutants on the naive path instead."""
    lm = load_model("smollm2", dtype="bfloat16")
    catalog = MatrixCatalog(lm.model)
    prompt = encode_prompt(lm, SMOLLM2_PROMPT)
    decoding = Decoding(max_new_tokens=6)
    trace = GenerateTrace(lm, catalog, prompt, decoding)
    modules = linear_modules(trace.architecture)
    if row_chunk(modules) >= 64:
        pytest.skip("64-row products compute as lone rows on this machine")
    mutations = element_mutations(catalog, 40, seed=4)

    def lone(mutation, fed):
        return lone_logits(lm, catalog, mutation, fed, len(prompt))

    wide = LockstepDecoder(trace, catalog, 64)
    _results, held = checked_decode(wide, mutations, decoding, lone)
    assert held is None

    screener = Screener(lm, catalog, decoding, batch_size=len(mutations))
    screener._lockstep_chunk = 64
    baseline = screener.baseline(prompt)
    outcomes = screener._screen_text_lockstep(prompt, baseline, mutations)
    assert screener.lockstep is not None and "differ from the naive path" in screener.lockstep
    assert all(outcome.settled_naively for outcome in outcomes)
    for mutation, outcome in list(zip(mutations, outcomes, strict=True))[:3]:
        reference = naive_generate(lm, catalog, prompt, mutation, decoding)
        assert (outcome.tokens, outcome.stopped) == (reference.tokens, reference.stopped)


@lockstep_runs_here
def test_a_screen_holds_the_decoder_against_the_naive_path_then_relies_on_it(tmp_path):
    """Batches of two: the first two mutants are checked, then one more (one of the three
    changed the output); later batches decode unchecked, every outcome the naive path's."""
    lm, catalog, prompt = _bfloat16(tmp_path, "olmo2")
    mutations = sample_mutations(catalog)
    screener = Screener(lm, catalog, GREEDY, batch_size=2)
    baseline = screener.baseline(prompt)
    checked = []
    lone_logits_of = screener._lone_logits

    def counted(prompt):
        lone = lone_logits_of(prompt)

        def check(mutation, fed):
            checked.append(mutation)
            return lone(mutation, fed)

        return check

    screener._lone_logits = counted
    outcomes = screener._screen_text_lockstep(prompt, baseline, mutations)
    assert screener.lockstep == "exact"
    assert len(checked) == len(screener._lockstep_held) == 3 and any(screener._lockstep_held)
    assert set(checked) <= set(mutations[:4])
    spent = screener.lockstep_check_seconds
    assert spent > 0  # what an estimate leaves out of the rate: the check is paid once
    screener._screen_text_lockstep(prompt, baseline, mutations[:6])
    assert screener.lockstep_check_seconds == spent and len(checked) == 3
    references = naive_outcomes(lm, catalog, prompt, mutations, GREEDY)
    assert [(o.tokens, o.stopped) for o in outcomes] == [(r.tokens, r.stopped) for r in references]
    assert not any(outcome.settled_naively for outcome in outcomes)


@lockstep_runs_here
def test_a_probe_longer_than_the_window_goes_naive_and_a_shorter_one_still_runs(tmp_path):
    """A sliding window shorter than one probe keeps the decoder from that probe only."""
    lm, catalog, _prompt = _bfloat16(tmp_path, "mistral")
    window = CONFIGS["mistral"]["sliding_window"]
    decoding = Decoding(max_new_tokens=2)
    long, short = encode_prompt(lm, PROMPT), encode_prompt(lm, "cat")
    assert len(long) + 2 > window >= len(short) + 2
    mutations = sample_mutations(catalog)[:12]
    screener = Screener(lm, catalog, decoding, batch_size=12)
    for prompt, state in ((long, "a sliding window shorter than the probe"), (short, "exact")):
        baseline = screener.baseline(prompt)
        outcomes = screener._screen_text_lockstep(prompt, baseline, mutations)
        assert screener.lockstep == state
        references = naive_outcomes(lm, catalog, prompt, mutations, decoding)
        assert [(o.tokens, o.stopped) for o in outcomes] == [
            (r.tokens, r.stopped) for r in references
        ]


@lockstep_runs_here
def test_the_probe_finds_the_rows_this_machine_keeps():
    """Where bfloat16 products of up to 32 rows compute as lone rows (measured with torch
    alone), `row_chunk` finds 32 on SmolLM2's shapes, with and without a bias."""
    from torch import nn

    modules = [nn.Linear(576, 1536).bfloat16(), nn.Linear(1536, 576, bias=False).bfloat16()]
    assert row_chunk(modules) == 32
