"""The lockstep decoder (the naive path batched) against the naive path itself, in bfloat16 on
this CPU: every family it runs, elements and blocks of every matrix type, output-changing
mutants among them, mutants decoding past where the baseline stopped; the families it cannot
run say why; a decoder whose products are not row-invariant is caught by the screen's check,
and the screen stays exact.

Whether the decoder can run rests on this machine's kernels (`invariance.row_chunk`, measured
here with the code's own check): where it can, its outcomes are held against the naive path;
where it cannot, the screen says why and settles every mutant on the naive path, exactly. Both
sides are asserted, so the tests pass on any processor."""

import subprocess
import sys

import pytest
import torch
from naive import SMOLLM2_PROMPT, naive_outcomes, sample_mutations
from tiny_models import FAMILY_CONFIGS, build_tiny_model

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.exact.invariance import ORDER_SCALE, ROW_CHUNKS, order_probe, row_chunk, rows_agree
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


def _settled_naively_with_reason(lm, catalog, prompt, reason, decoding=GREEDY):
    """Where the decoder cannot run: a screen says why and settles each mutant on the naive
    path, with the naive path's outcome."""
    mutations = sample_mutations(catalog)[:6]
    screener = Screener(lm, catalog, decoding, batch_size=3)
    baseline = screener.baseline(prompt)
    outcomes = screener.lockstep_path.decode(prompt, baseline, mutations, screener.batch_size)
    assert screener.lockstep == reason
    assert all(outcome.settled_naively for outcome in outcomes)
    references = naive_outcomes(lm, catalog, prompt, mutations, decoding)
    assert [(o.tokens, o.stopped) for o in outcomes] == [(r.tokens, r.stopped) for r in references]


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_lockstep_decoding_is_generate_alone_in_bfloat16(tmp_path, family):
    lm, catalog, prompt = _bfloat16(tmp_path, family)
    trace, chunk = _trace(lm, catalog, prompt)
    reason = unsupported_reason(trace, catalog, chunk, GREEDY.max_new_tokens)
    if family in UNSUPPORTED:
        assert reason is not None and UNSUPPORTED[family] in reason
        return
    if chunk < 2:
        assert reason == "no batched product on this device computes rows as lone rows"
        _settled_naively_with_reason(lm, catalog, prompt, reason)
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


def test_mutants_decode_past_where_the_baseline_stopped(tmp_path):
    """The baseline ends early (a token of its own made an end-of-sequence token); mutants that
    leave it before then decode on past the calls it made, as `generate` alone does."""
    lm, catalog, prompt = _bfloat16(tmp_path, "llama")
    free = GenerateTrace(lm, catalog, prompt, GREEDY).generation.tokens
    end = next(n for n in range(3, len(free)) if free[n] not in free[:n])
    lm.model.generation_config.eos_token_id = [1, free[end]]
    trace, chunk = _trace(lm, catalog, prompt)
    assert trace.generation.stopped and len(trace.generation.tokens) == end
    if chunk < 2:
        reason = unsupported_reason(trace, catalog, chunk, GREEDY.max_new_tokens)
        _settled_naively_with_reason(lm, catalog, prompt, reason)
        return
    mutations = sample_mutations(catalog)
    results = LockstepDecoder(trace, catalog, chunk).decode(mutations, GREEDY.max_new_tokens)
    references = naive_outcomes(lm, catalog, prompt, mutations, GREEDY)
    assert [(r.tokens, r.stopped) for r in results] == [(r.tokens, r.stopped) for r in references]
    assert any(len(r.tokens) > end for r in references), "some mutant decodes past the baseline"


@pytest.mark.smollm2
def test_a_decoder_that_is_not_the_naive_path_is_caught_and_the_screen_stays_exact():
    """SmolLM2 in bfloat16: a decoder told to compute products of 64 rows, which on AVX-512
    CPUs take another kernel than a lone row (AMX tiles above 32 rows; without AMX, any batch
    of the down projection), fails the check against the naive path, and the screen settles
    its mutants on the naive path instead."""
    lm = load_model("smollm2", dtype="bfloat16")
    catalog = MatrixCatalog(lm.model)
    prompt = encode_prompt(lm, SMOLLM2_PROMPT)
    decoding = Decoding(max_new_tokens=6)
    trace = GenerateTrace(lm, catalog, prompt, decoding)
    modules = linear_modules(trace.architecture)
    if row_chunk(modules) >= max(ROW_CHUNKS) and all(rows_agree(m, 64) for m in modules):
        pytest.skip("64-row products compute as lone rows here: no wrong kernel to catch")
    mutations = element_mutations(catalog, 40, seed=4)

    def lone(mutation, fed):
        return lone_logits(lm, catalog, mutation, fed, len(prompt))

    wide = LockstepDecoder(trace, catalog, 64)
    _results, held = checked_decode(wide, mutations, decoding, lone)
    assert held is None

    screener = Screener(lm, catalog, decoding, batch_size=len(mutations))
    screener.lockstep_path.chunk = 64
    baseline = screener.baseline(prompt)
    outcomes = screener.lockstep_path.decode(prompt, baseline, mutations, screener.batch_size)
    assert screener.lockstep is not None and "differ from the naive path" in screener.lockstep
    assert all(outcome.settled_naively for outcome in outcomes)
    for mutation, outcome in list(zip(mutations, outcomes, strict=True))[:3]:
        reference = naive_generate(lm, catalog, prompt, mutation, decoding)
        assert (outcome.tokens, outcome.stopped) == (reference.tokens, reference.stopped)


def test_a_screen_holds_the_decoder_against_the_naive_path_then_relies_on_it(tmp_path):
    """Batches of two: the first two mutants are checked, then one more (one of the three
    changed the output); later batches decode unchecked, every outcome the naive path's."""
    lm, catalog, prompt = _bfloat16(tmp_path, "olmo2")
    trace, chunk = _trace(lm, catalog, prompt)
    if chunk < 2:
        reason = unsupported_reason(trace, catalog, chunk, GREEDY.max_new_tokens)
        _settled_naively_with_reason(lm, catalog, prompt, reason)
        return
    mutations = sample_mutations(catalog)
    screener = Screener(lm, catalog, GREEDY, batch_size=2)
    baseline = screener.baseline(prompt)
    checked = []
    lone_logits_of = screener.lockstep_path.lone_logits

    def counted(prompt):
        lone = lone_logits_of(prompt)

        def check(mutation, fed):
            checked.append(mutation)
            return lone(mutation, fed)

        return check

    screener.lockstep_path.lone_logits = counted
    outcomes = screener.lockstep_path.decode(prompt, baseline, mutations, screener.batch_size)
    assert screener.lockstep == "exact"
    assert len(checked) == len(screener.lockstep_path.held) == 3 and any(
        screener.lockstep_path.held
    )
    assert set(checked) <= set(mutations[:4])
    spent = screener.lockstep_check_seconds
    assert spent > 0  # what an estimate leaves out of the rate: the check is paid once
    screener.lockstep_path.decode(prompt, baseline, mutations[:6], screener.batch_size)
    assert screener.lockstep_check_seconds == spent and len(checked) == 3
    references = naive_outcomes(lm, catalog, prompt, mutations, GREEDY)
    assert [(o.tokens, o.stopped) for o in outcomes] == [(r.tokens, r.stopped) for r in references]
    assert not any(outcome.settled_naively for outcome in outcomes)


def test_a_probe_longer_than_the_window_goes_naive_and_a_shorter_one_still_runs(tmp_path):
    """A sliding window shorter than one probe keeps the decoder from that probe only."""
    lm, catalog, _prompt = _bfloat16(tmp_path, "mistral")
    window = CONFIGS["mistral"]["sliding_window"]
    decoding = Decoding(max_new_tokens=2)
    long, short = encode_prompt(lm, PROMPT), encode_prompt(lm, "cat")
    assert len(long) + 2 > window >= len(short) + 2
    mutations = sample_mutations(catalog)[:12]
    screener = Screener(lm, catalog, decoding, batch_size=12)
    _trace_short, chunk = _trace(lm, catalog, short)
    runs = "exact" if chunk > 1 else "no batched product on this device computes rows as lone rows"
    for prompt, state in ((long, "a sliding window shorter than the probe"), (short, runs)):
        baseline = screener.baseline(prompt)
        outcomes = screener.lockstep_path.decode(prompt, baseline, mutations, screener.batch_size)
        assert screener.lockstep == state
        references = naive_outcomes(lm, catalog, prompt, mutations, decoding)
        assert [(o.tokens, o.stopped) for o in outcomes] == [
            (r.tokens, r.stopped) for r in references
        ]


SMOLLM2_SHAPES = ((576, 1536, True), (1536, 576, False), (576, 192, False))


def _modules(seed):
    torch.manual_seed(seed)
    return [
        torch.nn.Linear(inputs, outputs, bias=bias).bfloat16()
        for inputs, outputs, bias in SMOLLM2_SHAPES
    ]


def _rows_are_lone_rows(modules, chunk, draws=6):
    """Products of 2..chunk rows on random inputs (seeds the probe never used) against lone
    rows: what the decoder relies on."""
    for module in modules:
        for draw in range(draws):
            generator = torch.Generator().manual_seed(1000 + draw)
            inputs = torch.randn(chunk, module.in_features, generator=generator).bfloat16()
            lone = torch.cat([module(inputs[n : n + 1]) for n in range(chunk)])
            for rows in range(2, chunk + 1):
                if not torch.equal(module(inputs[:rows]), lone[:rows]):
                    return False
    return True


def test_the_probe_is_a_property_of_the_shapes_and_holds_on_fresh_inputs():
    """`row_chunk` on SmolLM2's shapes gives one answer for any weights of those shapes (it was
    32, 16, 8 or 4 for fresh random weights on an AVX-512 CPU without AMX), and the products
    of that many rows compute as lone rows on inputs it never saw."""
    chunk = row_chunk(_modules(0))
    assert chunk in (1, *ROW_CHUNKS)
    assert [row_chunk(_modules(seed)) for seed in (1, 2, 3)] == [chunk] * 3
    with torch.inference_mode():
        assert chunk == 1 or _rows_are_lone_rows(_modules(4), chunk)


def test_the_order_probe_tells_two_summation_orders_apart():
    """The probe's weights make a sum depend on the order its products are added in: the
    same product summed in two halves, or lane by lane, comes out different on some row,
    which random weights rarely show."""
    module = torch.nn.Linear(1536, 576, bias=False)
    probe = order_probe(module)
    weight = probe.weight
    assert weight.abs().max() == ORDER_SCALE
    signs = torch.randint(0, 2, (4, 1536), generator=torch.Generator().manual_seed(0)) * 2 - 1
    inputs = signs.float()
    whole = inputs @ weight.T
    halves = inputs[:, :768] @ weight[:, :768].T + inputs[:, 768:] @ weight[:, 768:].T
    sequential = torch.zeros(4, 576)
    for column in range(1536):
        sequential += inputs[:, column : column + 1] * weight[:, column]
    assert not torch.equal(whole, halves) or not torch.equal(whole, sequential)
    assert not torch.equal(halves, sequential)
    generator = torch.Generator().manual_seed(1)
    random_weight = torch.randn(576, 1536, generator=generator)
    randn = torch.randn(4, 1536, generator=generator)
    agree = torch.isclose(  # sums of size ~40 whose rounding is ~3e-5 on every machine seen
        randn @ random_weight.T,
        randn[:, :768] @ random_weight[:, :768].T + randn[:, 768:] @ random_weight[:, 768:].T,
        rtol=1e-5,
        atol=1e-4,
    )
    assert agree.float().mean() > 0.99  # real data hides the order


PROBE_SCRIPT = """
import torch
from mutatui.exact.invariance import row_chunk
torch.manual_seed(5)
shapes = ((576, 1536, True), (1536, 576, False), (576, 192, False))
print(row_chunk([torch.nn.Linear(i, o, bias=b).bfloat16() for i, o, b in shapes]))
"""


@pytest.mark.parametrize(
    "environment",
    [{}, {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}],
    ids=["this-cpu", "avx2"],
)
def test_the_probe_gives_one_answer_per_machine_in_every_process(environment):
    """Two processes on one machine (or one emulated: oneDNN and ATen capped at AVX2) find the
    same chunk; the decoder's premise is measured, not assumed."""
    import os

    env = {**os.environ, **environment}
    found = [
        subprocess.run(
            [sys.executable, "-c", PROBE_SCRIPT], capture_output=True, text=True, env=env
        ).stdout.strip()
        for _ in range(2)
    ]
    assert found[0] == found[1] and int(found[0]) in (1, *ROW_CHUNKS), found
