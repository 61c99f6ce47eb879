"""Live mode in the app, driven with Textual's Pilot on the tiny model (and once on SmolLM2)."""

import asyncio
import time

import pytest
import torch

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.mutations import make_mutation
from mutatui.live.session import LiveSession, RunStatus
from mutatui.tui.screens.live import LiveApp, LiveScreen

pytestmark = pytest.mark.anyio

PROMPT = "the cat sat"
SIZE = (110, 30)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def weights_of(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def assert_weights_are(model, saved):
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert all(not module._forward_hooks for module in model.modules() if module is not model)


async def until(condition, pilot, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


def slow_down(catalog, seconds=0.02):
    """A real forward hook that makes each step take a while, so a run can be caught mid-way."""
    return catalog.module(0, "q").register_forward_hook(lambda *_args: time.sleep(seconds))


@pytest.fixture
def session(tiny):
    lm, catalog = tiny
    return LiveSession(lm, catalog)


def live_app(model, **options):
    options.setdefault("prompt", PROMPT)
    options.setdefault("decoding", Decoding(max_new_tokens=24))
    screen = LiveScreen(model, **options)
    return LiveApp(screen), screen


def status_text(screen):
    return str(screen.query_one("#live-status").render())


async def test_loads_the_model_in_a_worker_and_runs_a_mutation_exactly(tiny_model_dir):
    app, screen = live_app(str(tiny_model_dir), site="L1.up[0:8,0:8]")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: screen.session is not None, pilot)
        assert "ready" in status_text(screen)
        lm = screen.session.lm
        saved = weights_of(lm.model)
        await pilot.press("x")
        await until(lambda: screen.last_result is not None, pilot)
        result = screen.last_result
        assert result.status is RunStatus.COMPLETED
        mutation = make_mutation("L1.up[0:8,0:8]", "max", screen.session.catalog)
        prompt = encode_prompt(lm, PROMPT)
        assert (
            result.mutant.tokens
            == naive_generate(
                lm, screen.session.catalog, prompt, mutation, Decoding(max_new_tokens=24)
            ).tokens
        )
        assert result.diverge_at is not None
        mutant_pane = screen.query_one("#live-mutant")
        assert "▶" in mutant_pane.plain
        assert mutant_pane.plain.replace("▶", "") == lm.tokenizer.decode(result.mutant.tokens)
        assert f"diverged at token {result.diverge_at}" in status_text(screen)
        assert screen.first_token_latency is not None
        assert_weights_are(lm.model, saved)


async def test_a_failed_load_is_one_clear_line_and_the_app_keeps_running(tmp_path):
    app, screen = live_app(str(tmp_path / "no-such-model"), site="L0.q[0,0]")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: "model not found" in status_text(screen), pilot)
        assert "\n" not in status_text(screen)
        await pilot.press("x")
        assert "is not loaded" in status_text(screen)
        assert app.is_running


async def test_bad_input_is_one_line_and_runs_nothing(session):
    app, screen = live_app(session, site="L9.q[0,0]")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        assert "layer" in status_text(screen) and screen.last_result is None
        assert app.focused is screen.query_one("#live-site")  # to fix it
        screen.query_one("#live-site").value = "L0.q[0,0]"
        screen.query_one("#live-kind").value = "huge"
        app.set_focus(None)
        await pilot.press("r")
        assert "bad mutation kind 'huge'" in status_text(screen)
        assert app.focused is screen.query_one("#live-kind")
        screen.query_one("#live-kind").value = "max"
        screen.query_one("#live-tokens").value = "0"
        app.set_focus(None)
        await pilot.press("r")
        assert "bad max tokens" in status_text(screen)
        assert app.focused is screen.query_one("#live-tokens")
        await pilot.pause()
        assert screen.last_result is None and app.is_running


async def test_escape_cancels_mid_stream_and_the_weights_are_the_originals(session):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    app, screen = live_app(session, site="L1.up[0:8,0:8]", decoding=Decoding(max_new_tokens=200))
    handle = slow_down(catalog)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("x")
            await until(lambda: screen.query_one("#live-mutant").plain, pilot)
            await pilot.press("escape")
            await until(lambda: screen.last_result is not None, pilot)
            result = screen.last_result
            assert result.status is RunStatus.CANCELLED
            assert 0 < result.steps < 200
            assert f"cancelled after {result.steps} tokens" in status_text(screen)
    finally:
        handle.remove()
    assert_weights_are(lm.model, saved)


async def test_quitting_mid_stream_leaves_the_weights_the_originals(session):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    app, screen = live_app(
        session, site="L1.gate[2,3]", kind="nan", decoding=Decoding(max_new_tokens=200)
    )
    handle = slow_down(catalog)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await until(lambda: screen.query_one("#live-mutant").plain, pilot)
            await app.action_quit()
        assert session.wait_idle(timeout=30)
    finally:
        handle.remove()
    assert_weights_are(lm.model, saved)


async def test_a_failing_run_shows_the_error_and_restores_the_weights(session):
    lm, catalog = session.lm, session.catalog
    saved = weights_of(lm.model)
    weight = catalog.weight(1, "gate")

    def explode_when_edited(*_args):
        if torch.isnan(weight[2, 3]):
            raise RuntimeError("exploded on the naive path")

    handle = catalog.module(1, "gate").register_forward_hook(explode_when_edited)
    try:
        app, screen = live_app(session, site="L1.gate[2,3]", kind="nan")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await until(lambda: screen.last_result is not None, pilot)
            assert screen.last_result.status is RunStatus.FAILED
            assert "failed: exploded on the naive path" in status_text(screen)
            assert app.is_running
    finally:
        handle.remove()
    assert_weights_are(lm.model, saved)


async def test_a_new_run_replaces_the_one_in_flight(session):
    app, screen = live_app(session, site="L1.up[0:8,0:8]", decoding=Decoding(max_new_tokens=200))
    handle = slow_down(session.catalog)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("x")
            await until(lambda: screen.query_one("#live-mutant").plain, pilot)
            screen.query_one("#live-tokens").value = "5"
            await pilot.press("n")
            await until(lambda: screen.last_result is not None, pilot)
            await app.workers.wait_for_complete()
            await pilot.pause()
            result = screen.last_result
            assert result.request.mutation.kind.value == "min"
            assert result.status is RunStatus.COMPLETED and result.steps == 5
            assert screen.query_one("#live-mutant").border_title.endswith("=min")
    finally:
        handle.remove()


async def test_form_keys_prompts_tokens_and_value(session):
    prompts = ["one prompt", "another prompt"]
    app, screen = live_app(session, site="L0.q[0,0]", prompts=prompts, prompt=None)
    async with app.run_test(size=SIZE) as pilot:
        prompt = screen.query_one("#live-prompt")
        assert prompt.value == "one prompt"
        await pilot.press("p")
        assert prompt.value == "another prompt"
        await pilot.press("p")
        assert prompt.value == "one prompt"
        await pilot.press("right_square_bracket")
        assert screen.query_one("#live-tokens").value == "40"
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert screen.query_one("#live-tokens").value == "1"
        await pilot.press("v")
        assert app.focused is screen.query_one("#live-kind")
        await pilot.press("2", ".", "5", "enter")
        await until(lambda: screen.last_result is not None, pilot)
        assert screen.last_result.request.mutation.value == 2.5
        assert app.focused is None
        await pilot.press("s")
        assert app.focused is screen.query_one("#live-site")
        await pilot.press("escape")
        assert app.focused is None


async def test_tab_leaves_the_boxes_so_letters_are_keys_again(session):
    """Tab goes site, kind, prompt, tokens, then the panes (Shift+Tab back): typed letters go
    into a box while it has the focus, and are the screen's keys once Tab has left the boxes
    (the boxes alone cycled, so the next `z` became the site "z")."""
    app, screen = live_app(session, site="L0.q[0,0]")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: screen.session is not None, pilot)
        site = screen.query_one("#live-site")
        await pilot.press("tab")
        assert app.focused is site
        site.value = ""
        await pilot.press(*"L0.k[1,1]")
        assert site.value == "L0.k[1,1]"
        order = [app.focused.id]
        for _ in range(4):
            await pilot.press("tab")
            order.append(app.focused.id)
        assert order == ["live-site", "live-kind", "live-prompt", "live-tokens", "live-baseline"]
        await pilot.press("shift+tab")
        assert app.focused.id == "live-tokens"
        await pilot.press("tab", "z")  # on a pane: z runs the zero mutation
        await until(lambda: screen.last_result is not None, pilot)
        assert site.value == "L0.k[1,1]"
        assert str(screen.last_result.request.mutation.site) == "L0.k[1,1]"
        assert screen.last_result.request.mutation.kind.value == "zero"


@pytest.mark.smollm2
async def test_smollm2_live_run_in_the_app(smollm2):
    lm, catalog = smollm2
    session = LiveSession(lm, catalog)
    saved = weights_of(lm.model)
    decoding = Decoding(max_new_tokens=16)
    app, screen = live_app(
        session,
        site="L0.down[0:64,0:64]",
        prompt="The life cycle of Drosophila:",
        decoding=decoding,
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await until(lambda: screen.last_result is not None, pilot, timeout=120)
        result = screen.last_result
        assert result.status is RunStatus.COMPLETED
        prompt = encode_prompt(lm, "The life cycle of Drosophila:")
        mutation = make_mutation("L0.down[0:64,0:64]", "max", catalog)
        assert (
            result.mutant.tokens == naive_generate(lm, catalog, prompt, mutation, decoding).tokens
        )
        assert result.baseline.tokens == naive_generate(lm, catalog, prompt, None, decoding).tokens
        assert screen.query_one("#live-baseline").plain.startswith(
            lm.tokenizer.decode(result.baseline.tokens[:3])
        )
    await asyncio.sleep(0)
    assert_weights_are(lm.model, saved)


async def test_runs_in_the_app_are_saved_graded_into_a_live_screen(session, tmp_path):
    from mutatui.store.live import read_live_runs

    db = tmp_path / "live.db"
    app, screen = live_app(session, site="L1.up[0:8,0:8]", db_path=db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await until(lambda: screen.last_saved is not None, pilot, timeout=120)
        assert screen.last_saved.run_id == 0
        [run] = read_live_runs(db)
        assert (run.site, run.kind, run.status, run.mutation_id) == (
            "L1.up[0:8,0:8]",
            "max",
            "completed",
            0,
        )
        assert run.mutant_text == screen.query_one("#live-mutant").plain.replace("▶", "")


async def test_mutatui_live_opens_the_explorer_in_live_mode_and_runs_show_in_the_grid(
    tiny_model_dir, tmp_path
):
    from mutatui.cli import build_parser
    from mutatui.commands.live import build_app
    from mutatui.tui.screens.matrix import MatrixScreen
    from mutatui.tui.screens.overview import OverviewScreen

    db = tmp_path / "live.db"
    arguments = ["live", "--model", str(tiny_model_dir), "--db", str(db)]
    args = build_parser().parse_args(
        [*arguments, "--site", "L1.up[0:8,0:8]", "--max-new-tokens", "12"]
    )
    app = build_app(args)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, LiveScreen), pilot)
        live = app.screen
        await until(lambda: live.session is not None, pilot)
        # no key: with --site the run starts as soon as the model is ready
        await until(lambda: live.last_saved is not None, pilot, timeout=120)
        await pilot.press("escape")  # back to the explorer: the live screen is listed
        await pilot.press("ctrl+r")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, OverviewScreen) and app.data is not None, pilot)
        assert app.data.summary.kind == "live" and app.data.summary.mutations == 1
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, MatrixScreen), pilot)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        site = str(app.screen.cell_site())
        await pilot.press("x")  # live mode on the cursor's site, the model already loaded
        await until(lambda: isinstance(app.screen, LiveScreen), pilot)
        assert app.screen is not live and app.screen.session is live.session
        assert app.screen.query_one("#live-site").value == site


def test_mutatui_live_rejects_bad_input_in_one_line(tmp_path, capsys):
    from mutatui.cli import main

    db = str(tmp_path / "live.db")
    assert main(["live", "--model", "smollm2", "--db", db, "--site", "L1.up(3)"]) == 2
    assert capsys.readouterr().err.startswith("mutatui: bad site 'L1.up(3)'")
    assert main(["live", "--model", "smollm2", "--db", db, "--kind", "biggest"]) == 2
    assert "bad mutation kind 'biggest'" in capsys.readouterr().err
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    assert main(["live", "--model", "smollm2", "--db", str(not_a_db)]) == 2
    assert "not a mutatui database" in capsys.readouterr().err


async def test_a_field_error_keeps_the_focus_and_quitting_asks_while_a_model_is_loaded(
    tiny_model_dir, tmp_path
):
    from mutatui.cli import build_parser
    from mutatui.commands.live import build_app
    from mutatui.tui.screens.confirm import ConfirmScreen

    arguments = ["live", "--model", str(tiny_model_dir), "--db", str(tmp_path / "live.db")]
    app = build_app(build_parser().parse_args([*arguments, "--site", "L9.q[0,0]"]))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(app.screen, LiveScreen), pilot)
        live = app.screen
        await until(lambda: "layer 9" in status_text(live), pilot)  # run at once: refused
        site = live.query_one("#live-site")
        assert app.focused is site
        await pilot.press("end", "q")  # a letter typed to fix it is not a key
        assert site.value == "L9.q[0,0]q" and app.is_running
        app.set_focus(None)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)  # the model is loaded: asks
        await pilot.press("n")
        assert app.screen is live and app.is_running
        await pilot.press("q", "q")
        await pilot.pause()
        assert not app.is_running


async def test_mutatui_live_with_a_bad_model_is_one_line(tmp_path, capsys):
    from mutatui.cli import main

    db = tmp_path / "live.db"
    assert main(["live", "--model", str(tmp_path / "nothing"), "--db", str(db)]) == 2
    assert capsys.readouterr().err.startswith("mutatui: model not found")
    assert not db.exists()


async def test_leaving_while_the_model_loads_keeps_loading_and_the_app_says_when_ready(
    tiny_model_dir,
):
    import threading

    from mutatui.live.cache import SessionCache

    class GatedCache(SessionCache):
        """The real cache; the load starts only when the test opens the gate."""

        gate = threading.Event()

        def get(self, *args, **kwargs):
            assert self.gate.wait(timeout=60)
            return super().get(*args, **kwargs)

    sessions = GatedCache()
    screen = LiveScreen(str(tiny_model_dir), sessions=sessions)
    app = LiveApp(screen)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.screen is screen, pilot)
        await pilot.press("escape")  # back, before the model is loaded
        await pilot.pause()
        assert app.screen is not screen and not screen.is_attached
        sessions.gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert sessions.loaded(str(tiny_model_dir)) is not None
        assert any("loaded: x opens live mode" in n.message for n in app._notifications)


async def test_x_in_the_grid_opens_live_mode_on_the_cursor_site_with_the_given_model(
    tiny_model_dir, tmp_path
):
    import json

    from mutatui.store.database import connect
    from mutatui.store.synthetic import SyntheticSpec, build_synthetic
    from mutatui.tui.app import ExplorerApp
    from mutatui.tui.screens.matrix import MatrixScreen
    from mutatui.tui.screens.overview import OverviewScreen

    db = tmp_path / "screens.db"  # a tile screen shaped like the tiny model
    build_synthetic(db, SyntheticSpec(layers=3, hidden=32, intermediate=64, kv=16, site=8, seed=1))
    sampled = {"mode": "sample", "temperature": 0.7, "seed": 5}
    with connect(db, read_only=False) as connection:  # as `mutatui screen` records its decoding
        connection.execute(
            "UPDATE screens SET spec = ?, max_new_tokens = 12",
            [json.dumps({"decoding": sampled, "chat": True})],
        )
    app = ExplorerApp(db)
    app.live_model = str(tiny_model_dir)  # as `mutatui browse DB --model M` sets it
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, OverviewScreen) and app.data is not None, pilot)
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, MatrixScreen), pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("l", "j")
        site = str(app.screen.cell_site())
        await pilot.press("x")
        await until(lambda: isinstance(app.screen, LiveScreen), pilot)
        live = app.screen
        assert live.model_spec == str(tiny_model_dir)
        assert live.query_one("#live-site").value == site
        assert live.prompts == [p.prompt for p in app.data.probes if p.kind == "text"]
        assert live.decoding == Decoding("sample", 0.7, 5, 12)  # the screen's, to reproduce it
        assert live.query_one("#live-tokens").value == "12"
        await until(lambda: live.session is not None, pilot)
        await pilot.press("z")
        await until(lambda: live.last_saved is not None, pilot, timeout=120)
        assert str(live.last_result.request.mutation.site) == site
        assert live.last_result.request.decoding == Decoding("sample", 0.7, 5, 12)
