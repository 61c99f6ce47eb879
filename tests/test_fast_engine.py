"""The fast screen engine against the naive path (edit the weight, generate alone, restore),
on the tiny random Llama, whose large weights make many mutations change the output."""

import pytest
import torch
from naive import naive_outcomes, sample_mutations

from mutatui.engine.decoding import (
    Decoding,
    encode_prompt,
    naive_generate,
)
from mutatui.engine.mutations import mutated
from mutatui.engine.questions import ChoiceQuestion, naive_choices, render_question
from mutatui.exact import layered_path, sizing, teacher
from mutatui.exact.layers import KVStore, LayerRunner, supports_layers
from mutatui.exact.replay import GenerateTrace
from mutatui.exact.screener import Screener

GREEDY = Decoding(max_new_tokens=20)
SAMPLED = Decoding(mode="sample", temperature=0.7, seed=5, max_new_tokens=20)
DECODINGS = pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])


@pytest.fixture(scope="module")
def prompt(tiny):
    lm, _ = tiny
    return encode_prompt(lm, "the cat sat")


def test_tiny_llama_takes_the_layered_path(tiny):
    lm, catalog = tiny
    assert supports_layers(lm.model)
    assert Screener(lm, catalog, GREEDY).layered


class WideTieScreener(Screener):
    """A screener that calls many decisions near ties, so that settling is exercised often."""

    def tolerance(self, mutation):
        return 0.05


@DECODINGS
def test_near_ties_are_checked_naively_only_as_far_as_needed(tiny, prompt, decoding, monkeypatch):
    """Greedy checks replay generate and score only the tie steps; sampled checks run the naive
    path to the last tie. Either way the outcome is the naive path's."""
    lm, catalog = tiny
    checks, replays = [], []

    def naive_spy(*args):
        checks.append(args[-1].max_new_tokens)
        return naive_generate(*args)

    decisions = GenerateTrace.decisions

    def replay_spy(self, mutation, steps, tokens=()):
        replays.append(list(steps))
        return decisions(self, mutation, steps, tokens)

    monkeypatch.setattr(layered_path, "naive_generate", naive_spy)
    monkeypatch.setattr(GenerateTrace, "decisions", replay_spy)
    mutations = sample_mutations(catalog, seed=3)
    screener = WideTieScreener(lm, catalog, decoding, batch_size=8)
    baseline = screener.baseline(prompt)
    checks.clear()
    outcomes = screener.screen_text(prompt, baseline, mutations)
    references = naive_outcomes(lm, catalog, prompt, mutations, decoding)
    for mutation, outcome, reference in zip(mutations, outcomes, references, strict=True):
        assert (outcome.tokens, outcome.stopped) == (reference.tokens, reference.stopped), str(
            mutation
        )
    settled = sum(o.settled_naively for o in outcomes)
    full = checks.count(decoding.max_new_tokens)
    assert settled >= 10, "the wide tolerance must send many mutants to the naive check"
    if decoding.mode == "greedy":
        assert len(replays) >= settled - full, "greedy checks must be replays"
        assert any(len(steps) <= steps[-1] for steps in replays), "only tie steps are scored"
        assert full == len(checks) < settled / 2, "most replays must confirm the batch"
    else:
        assert not replays
        assert full < len(checks), "some checks must stop at their last near tie"
        assert len(checks) < 2 * settled, "most checks must confirm the batched outcome"


@DECODINGS
def test_fast_engine_equals_editing_and_generating_alone(tiny, prompt, decoding):
    lm, catalog = tiny
    originals = {(i.layer, i.name): catalog.weight(i.layer, i.name).clone() for i in catalog}
    mutations = sample_mutations(catalog)
    assert {m.site.matrix for m in mutations} == {"q", "k", "v", "o", "gate", "up", "down"}
    screener = Screener(lm, catalog, decoding, batch_size=8)
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    references = naive_outcomes(lm, catalog, prompt, mutations, decoding)
    for mutation, outcome, reference in zip(mutations, outcomes, references, strict=True):
        assert outcome.tokens == reference.tokens, str(mutation)
        assert outcome.stopped == reference.stopped, str(mutation)
    diverged = [o.diverge_at for o in outcomes if o.diverge_at is not None]
    assert 0 in diverged, "some mutation must diverge at the very first step"
    assert len(diverged) >= 10 and len(diverged) < len(mutations), "needs changed and unchanged"
    assert sum(not o.settled_naively for o in outcomes if o.diverge_at) >= 10, (
        "diverged mutants must mostly be decoded by the fast path, not settled naively"
    )
    infinite, huge, nan = outcomes[-3:]
    assert infinite.nonfinite and nan.nonfinite and not huge.nonfinite
    for info in catalog:
        assert torch.equal(
            catalog.weight(info.layer, info.name), originals[(info.layer, info.name)]
        )


@DECODINGS
def test_batch_composition_does_not_change_results(tiny, prompt, decoding):
    lm, catalog = tiny
    mutations = sample_mutations(catalog, seed=1)
    batched = Screener(lm, catalog, decoding, batch_size=16)
    alone = Screener(lm, catalog, decoding, batch_size=1)
    baseline = batched.baseline(prompt)
    together = batched.screen_text(prompt, baseline, mutations)
    reversed_order = batched.screen_text(prompt, baseline, mutations[::-1])[::-1]
    for index, mutation in list(enumerate(mutations))[::3]:
        single = alone.screen_text(prompt, baseline, [mutation])[0]
        for outcome in (together[index], reversed_order[index]):
            assert (outcome.tokens, outcome.stopped, outcome.diverge_at) == (
                single.tokens,
                single.stopped,
                single.diverge_at,
            ), str(mutation)


def test_diverge_at_is_the_first_differing_token(tiny, prompt):
    lm, catalog = tiny
    screener = Screener(lm, catalog, GREEDY, batch_size=8)
    baseline = screener.baseline(prompt)
    for outcome in screener.screen_text(prompt, baseline, sample_mutations(catalog, seed=2)):
        if outcome.diverge_at is None:
            assert (outcome.tokens, outcome.stopped) == (baseline.tokens, baseline.stopped)
        else:
            at = outcome.diverge_at
            assert outcome.tokens[:at] == baseline.tokens[:at]
            assert outcome.tokens[at : at + 1] != baseline.tokens[at : at + 1]


def test_a_baseline_that_stops_on_eos_is_matched_exactly(tiny, prompt):
    """Make a frequent baseline token an EOS, so the baseline stops early and mutants may stop
    earlier, later or not at all."""
    lm, catalog = tiny
    config = lm.model.generation_config
    original = config.eos_token_id
    probe = naive_generate(lm, catalog, prompt, None, GREEDY)
    config.eos_token_id = [original, probe.tokens[4]]
    try:
        screener = Screener(lm, catalog, GREEDY, batch_size=8)
        baseline = screener.baseline(prompt)
        assert baseline.stopped
        mutations = sample_mutations(catalog, seed=3)
        outcomes = screener.screen_text(prompt, baseline, mutations)
        references = naive_outcomes(lm, catalog, prompt, mutations, GREEDY)
    finally:
        config.eos_token_id = original
    for mutation, outcome, reference in zip(mutations, outcomes, references, strict=True):
        assert (outcome.tokens, outcome.stopped) == (reference.tokens, reference.stopped), str(
            mutation
        )
    assert any(o.stopped and o.diverge_at is not None for o in outcomes)
    assert any(not o.stopped for o in outcomes)


QUESTIONS = [
    ChoiceQuestion("What is 2 + 2?", ("3", "4", "5", "22"), 1),
    ChoiceQuestion("Which is a colour?", ("red", "dog"), 0),
    ChoiceQuestion("The sky is", ("green", "blue", "loud"), 1),
]


PREAMBLE = "Read the question, then answer with the letter of the right option. "
PREFIXED = [
    ChoiceQuestion(PREAMBLE + question.question, question.choices, question.answer)
    for question in QUESTIONS
]


@pytest.mark.parametrize(
    ("questions", "seed", "shared_length"),
    [(QUESTIONS, 4, 0), (PREFIXED, 6, len(PREAMBLE) // 2)],
    ids=["own-prompts", "shared-prefix"],
)
def test_choice_screen_equals_the_naive_scorer(tiny, questions, seed, shared_length):
    """Questions opening with the same words run that prefix once per batch; either way every
    answer is the naive scorer's."""
    lm, catalog = tiny
    mutations = sample_mutations(catalog, seed=seed)
    screener = Screener(lm, catalog, GREEDY, batch_size=8)
    shared = screener.traces.shared_prefix([render_question(lm, q) for q in questions])
    if shared_length:
        assert shared is not None and shared.length >= shared_length
    else:
        assert shared is None  # each question runs whole, its last layer trimmed all the same
    answers = screener.screen_choice(questions, mutations)
    baseline = naive_choices(lm, catalog, questions, None)
    changed = 0
    for mutation, chosen in zip(mutations, answers, strict=True):
        assert chosen == naive_choices(lm, catalog, questions, mutation), str(mutation)
        changed += chosen != baseline
    assert changed >= 3


@pytest.mark.parametrize(
    "own", [1, 7, None], ids=["one-own-token", "seven-own-tokens", "no-shared-prefix"]
)
def test_run_after_a_shared_prefix_is_the_edited_models_last_position(tiny, own):
    """The choice assay's path (the prefix run once, the question after it, the last layer on
    the last position alone) gives the edited model's own final-norm output at the last
    position, for mutations of every matrix of every layer, the last layer's k and v included
    (their deltas act on the keys and values computed apart); also when the sequence has a
    single position of its own after the prefix, so there is nothing to compute apart, and
    when there is no prefix (questions that share none run whole, from position 0)."""
    lm, catalog = tiny
    runner = LayerRunner(lm.model, catalog)
    prompt = encode_prompt(lm, "Which is a fruit?\nA. apple\nB. stone\nThe correct option is")
    start = 0 if own is None else len(prompt) - own
    finite = [m for m in sample_mutations(catalog, seed=3) if m.kind in ("max", "min")]
    mutations = sorted(finite, key=lambda m: m.site.layer)
    assert {(m.site.layer, m.site.matrix) for m in mutations} >= {(2, "k"), (2, "v"), (2, "q")}
    with torch.inference_mode():
        prefix = runner.run_prefix(runner.trace(prompt[:start]), mutations) if start else KVStore()
        final = runner.run_after(runner.trace(prompt), start, mutations, prefix)
        ids = torch.tensor([prompt])
        for row, mutation in enumerate(mutations):
            with mutated(catalog, mutation):
                expected = lm.model.model(input_ids=ids).last_hidden_state[0, -1]
            torch.testing.assert_close(final[row], expected, rtol=1e-4, atol=1e-4)


def test_default_batch_size_follows_the_model_size_and_the_free_memory(tiny):
    lm, catalog = tiny
    assert Screener(lm, catalog, GREEDY).batch_size == 128
    assert Screener(lm, catalog, GREEDY, batch_size=8).batch_size == 8
    per_row = sizing.row_bytes(lm.model)
    assert per_row > 3 * 2 * 3 * 2 * 8 * sizing.ROW_POSITIONS * 4  # keys and values alone
    assert sizing.batch_size_for(10**8, None, per_row) == 128
    assert sizing.batch_size_for(7 * 10**9, None, per_row) == 32
    assert sizing.batch_size_for(7 * 10**9, 10 * per_row, per_row) == 5
    assert sizing.batch_size_for(10**8, per_row // 4, per_row) == 1


@DECODINGS
def test_candidate_scores_decide_as_the_full_head_does(tiny, prompt, decoding, monkeypatch):
    """The judge's middle tier (exact scores of the baseline's best tokens, a bound for the rest)
    finds the same first differing step and token as the full head at every step."""
    lm, catalog = tiny
    screener = Screener(lm, catalog, decoding)
    runner, chooser = screener.runner, screener.traces.chooser()
    baseline = screener.baseline(prompt)
    probe = screener.traces.text(prompt, baseline)
    reference = probe.reference
    decided = []
    candidate_choices = teacher.candidate_choices

    def spy(reference, step, *args):
        tokens, mask = candidate_choices(reference, step, *args)
        decided.extend(reference.agrees(step, token) for token in tokens[mask].tolist())
        return tokens, mask

    monkeypatch.setattr(teacher, "candidate_choices", spy)
    mutations = sorted(sample_mutations(catalog, seed=2)[:-3], key=lambda m: m.site.layer)
    with torch.inference_mode():
        mutants = runner.run_from(probe.trace, mutations, slice(len(prompt) - 1, None)).final
        tolerances = torch.tensor([screener.tolerance(m) for m in mutations])
        verdicts = teacher.judge(
            reference, mutants, runner.architecture, screener.head_norm, chooser, tolerances
        )
        for row, verdict in enumerate(verdicts):
            expected = (None, None)
            for step in range(reference.steps):
                token = int(chooser.scores(runner.logits(mutants[row, step]), step).argmax())
                if not reference.agrees(step, token):
                    expected = (step, token)
                    break
            assert (verdict.diverge_at, verdict.token) == expected, str(mutations[row])
    assert decided.count(True) >= 20, "the candidate tier must decide many steps"
    assert decided.count(False) >= 3, "the candidate tier must also find divergences"
