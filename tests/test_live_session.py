"""The live session: exact against the naive path, throttled, cancellable, weights untouched."""

import threading

import pytest
import torch

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.mutations import make_mutation
from mutatui.live.session import LiveRequest, LiveSession, RunStatus, Throttle

GREEDY = Decoding(max_new_tokens=20)
SAMPLED = Decoding(mode="sample", temperature=0.7, seed=3, max_new_tokens=20)
PROMPT = "the cat sat"


def weights_of(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def assert_weights_are(model, saved):
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def no_hooks_left(model):
    return all(not module._forward_hooks for module in model.modules())


@pytest.fixture
def session(tiny):
    lm, catalog = tiny
    return LiveSession(lm, catalog)


@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
@pytest.mark.parametrize(
    ("site", "kind"),
    [
        ("L1.up[0:8,0:8]", "max"),
        ("L0.down[3,5]", "min"),
        ("L2.q[0:4,0:32]", "zero"),
        ("L1.v[1,2]", "-7.5"),
    ],
)
def test_a_live_run_equals_editing_the_weight_and_generating(session, decoding, site, kind):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    mutation = make_mutation(site, kind, catalog)
    updates = []
    result = session.run(LiveRequest(PROMPT, mutation, decoding), updates.append, interval=0)
    prompt = encode_prompt(lm, PROMPT)
    assert result.status is RunStatus.COMPLETED
    assert result.prompt_tokens == prompt
    assert result.mutant.tokens == naive_generate(lm, catalog, prompt, mutation, decoding).tokens
    assert result.baseline.tokens == naive_generate(lm, catalog, prompt, None, decoding).tokens
    assert_weights_are(lm.model, saved)
    assert no_hooks_left(lm.model)
    final = updates[-1]
    assert final.final and final.status is RunStatus.COMPLETED
    assert final.mutant.same + final.mutant.diverged == lm.tokenizer.decode(result.mutant.tokens)
    assert result.first_token_seconds is not None and result.tokens_per_second


def test_the_divergence_is_reported_from_the_step_it_happens(session):
    catalog = session.catalog
    mutation = make_mutation("L1.up[0:8,0:8]", "max", catalog)
    updates = []
    result = session.run(LiveRequest(PROMPT, mutation, GREEDY), updates.append, interval=0)
    assert result.diverge_at is not None, "the test needs a mutation that changes the output"
    streamed = [update for update in updates if not update.final]
    assert len(streamed) == result.steps
    for update in streamed:
        expected = result.diverge_at if update.steps > result.diverge_at else None
        assert update.diverge_at == expected, update.steps


def test_updates_are_throttled_but_first_and_last_always_arrive(session):
    mutation = make_mutation("L0.down[3,5]", "max", session.catalog)
    updates = []
    result = session.run(LiveRequest(PROMPT, mutation, GREEDY), updates.append, interval=60.0)
    assert result.steps == GREEDY.max_new_tokens
    assert [update.steps for update in updates] == [1, result.steps]
    assert [update.final for update in updates] == [False, True]


def test_throttle_lets_one_through_per_interval():
    now = [0.0]
    throttle = Throttle(1 / 30, clock=lambda: now[0])
    seen = []
    for tick in range(100):  # a token every 5 ms for half a second
        now[0] = tick * 0.005
        seen.append(throttle.due())
    assert seen[0]
    assert 14 <= sum(seen) <= 16


def test_cancel_stops_between_steps_and_leaves_the_model_clean(session):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    mutation = make_mutation("L1.up[0:8,0:8]", "max", catalog)
    updates = []
    result = session.run(
        LiveRequest(PROMPT, mutation, GREEDY),
        updates.append,
        cancelled=lambda: len(updates) >= 3,
        interval=0,
    )
    assert result.status is RunStatus.CANCELLED
    assert result.steps == 3 and len(result.mutant.tokens) == 3
    assert updates[-1].final and updates[-1].status is RunStatus.CANCELLED
    assert_weights_are(lm.model, saved)
    assert no_hooks_left(lm.model), "a cancelled stream must remove its hooks at once"
    prompt = encode_prompt(lm, PROMPT)
    again = session.run(LiveRequest(PROMPT, mutation, GREEDY), lambda _update: None)
    assert again.baseline.tokens == naive_generate(lm, catalog, prompt, None, GREEDY).tokens


class BoomError(RuntimeError):
    pass


def test_a_failing_forward_pass_fails_the_run_not_the_caller(session):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    calls = []

    def explode(_module, _args, _output):
        calls.append(1)
        if len(calls) == 4:
            raise BoomError("forward exploded\nsecond line")

    handle = catalog.module(2, "o").register_forward_hook(explode)
    try:
        mutation = make_mutation("L2.o[0:8,0:8]", "max", catalog)
        updates = []
        result = session.run(LiveRequest(PROMPT, mutation, GREEDY), updates.append, interval=0)
    finally:
        handle.remove()
    assert result.status is RunStatus.FAILED
    assert result.error == "forward exploded"
    assert result.steps == 3
    assert updates[-1].status is RunStatus.FAILED
    assert_weights_are(lm.model, saved)
    assert no_hooks_left(lm.model)


def test_a_nan_mutation_is_settled_on_the_naive_path_exactly(session):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    mutation = make_mutation("L1.gate[2,3]", "nan", catalog)
    result = session.run(LiveRequest(PROMPT, mutation, GREEDY), lambda _update: None)
    assert result.status is RunStatus.COMPLETED
    assert result.mutant.nonfinite and result.mutant.settled_naively
    prompt = encode_prompt(lm, PROMPT)
    assert result.mutant.tokens == naive_generate(lm, catalog, prompt, mutation, GREEDY).tokens
    assert_weights_are(lm.model, saved)


def test_failure_while_the_weight_is_edited_still_restores_it(session):
    """The naive settling path writes the weight; a failure there must not leave it written."""
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    weight = catalog.weight(1, "gate")

    def explode_when_edited(_module, _args, _output):
        if torch.isnan(weight[2, 3]):
            raise BoomError("failed with the weight edited")

    handle = catalog.module(1, "gate").register_forward_hook(explode_when_edited)
    try:
        mutation = make_mutation("L1.gate[2,3]", "nan", catalog)
        result = session.run(LiveRequest(PROMPT, mutation, GREEDY), lambda _update: None)
    finally:
        handle.remove()
    assert result.status is RunStatus.FAILED
    assert result.error == "failed with the weight edited"
    assert_weights_are(lm.model, saved)


def test_the_site_guard_catches_and_undoes_a_stray_write(session):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    mutation = make_mutation("L0.k[1,1]", "max", catalog)
    weight = catalog.weight(0, "k")

    def stray_write(update):
        if not update.final:
            with torch.no_grad():
                weight[1, 1] = 123.0

    result = session.run(LiveRequest(PROMPT, mutation, GREEDY), stray_write)
    assert result.status is RunStatus.FAILED
    assert "were changed; restored" in result.error
    assert_weights_are(lm.model, saved)


def test_runs_on_one_session_never_overlap(session):
    mutation = make_mutation("L0.down[3,5]", "max", session.catalog)
    active, overlaps = [], []

    def watch(_update):
        active.append(1)
        overlaps.append(len(active) > 1)
        active.pop()

    threads = [
        threading.Thread(
            target=session.run,
            args=(LiveRequest(PROMPT, mutation, GREEDY), watch),
            kwargs={"interval": 0},
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlaps) == 2 * (GREEDY.max_new_tokens + 1)
    assert not any(overlaps)


def test_the_session_cache_loads_a_model_once_even_when_asked_twice_at_once(tiny_model_dir):
    from mutatui.live.cache import SessionCache

    cache = SessionCache()
    spec = str(tiny_model_dir)
    assert cache.loaded(spec) is None
    messages, got = [], []
    threads = [
        threading.Thread(target=lambda: got.append(cache.get(spec, progress=messages.append)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got[0] is got[1] is cache.loaded(spec)
    assert messages.count(f"loading {spec}") == 1
    assert cache.loaded(spec, {"dtype": "float16"}) is None


def test_the_session_cache_reports_a_bad_model_in_one_line(tmp_path):
    from mutatui.errors import MutatuiError
    from mutatui.live.cache import SessionCache

    with pytest.raises(MutatuiError, match="model not found"):
        SessionCache().get(str(tmp_path / "nothing"))
