"""Live mode: mutate one coordinate of a loaded model and watch baseline and mutant stream.

The screen takes a loaded model (a `LiveSession`) or a model spec, which it loads in a thread
worker while the rest of the app stays usable. Keys apply max, min, zero or a typed value to the
site in the site field; both panes stream token by token from one batched pass per step (see
`mutatui.live.session`), with the divergence marked as soon as it happens. Esc cancels. Each run
is saved, graded, into a live screen of the database when the screen has one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from threading import Event

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, LoadingIndicator, Static
from textual.worker import get_current_worker

from mutatui.engine.decoding import Decoding
from mutatui.engine.forms import DROSOPHILA_PROMPT, brief
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation, make_mutation, parse_kind
from mutatui.errors import MutatuiError
from mutatui.live.cache import SESSIONS, SessionCache
from mutatui.live.session import LiveRequest, LiveResult, LiveSession, LiveUpdate, RunStatus
from mutatui.tui.widgets.key_bar import KeyBar
from mutatui.tui.widgets.live_pane import LivePane

DEFAULT_PROMPT = DROSOPHILA_PROMPT
TOKEN_STEP = 16
MAX_TOKENS_LIMIT = 4096


class FieldError(MutatuiError):
    """What is wrong with one field of the live form (`field`: site, kind, prompt, tokens)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


SITE_FIELD_WIDTH = 24
"""The site field's least width in cells."""
FIELD_FRAME = 6
"""Cells an input's border and padding take."""


class LiveScreen(Screen):
    """Baseline and mutant side by side, streamed live. See the module docstring."""

    AUTO_FOCUS = ""

    BINDINGS = [
        Binding("x", "run('max')", "max", id="live.max"),
        Binding("n", "run('min')", "min", id="live.min"),
        Binding("z", "run('zero')", "zero", id="live.zero"),
        Binding("v", "edit_value", "value", id="live.value"),
        Binding("r", "run", "rerun", id="live.rerun"),
        Binding("escape", "cancel", "cancel/back", id="live.cancel"),
        Binding("s", "focus_field('site')", "site", id="live.site"),
        Binding("e", "focus_field('prompt')", "prompt", id="live.prompt"),
        Binding("p", "next_prompt", "next prompt", id="live.next_prompt"),
        Binding(
            "left_square_bracket",
            "tokens(-1)",
            f"-{TOKEN_STEP} tok",
            show=False,
            id="live.fewer_tokens",
        ),
        Binding(
            "right_square_bracket",
            "tokens(1)",
            f"+{TOKEN_STEP} tok",
            show=False,
            id="live.more_tokens",
        ),
        Binding("t", "focus_field('tokens')", "tokens", show=False, id="live.tokens"),
        Binding("c", "copy_mutant", "copy", show=False, id="live.copy"),
    ]

    DEFAULT_CSS = """
    LiveScreen { layout: vertical; }
    LiveScreen #live-model-line { height: 1; }
    LiveScreen #live-model { width: 1fr; height: 1; }
    LiveScreen #live-loading { width: 8; height: 1; }
    LiveScreen #live-form { height: 3; }
    LiveScreen #live-form Label { padding: 1 0 0 1; width: auto; }
    LiveScreen #live-kind { width: 10; }
    LiveScreen #live-prompt { width: 1fr; }
    LiveScreen #live-tokens { width: 8; }
    LiveScreen #live-status { height: 1; padding: 0 1; }
    LiveScreen #live-status.-diverged { color: $warning; text-style: bold; }
    LiveScreen #live-status.-error { color: $error; text-style: bold; }
    LiveScreen #live-panes { height: 1fr; }
    """

    class ModelReady(Message):
        """The model is loaded (bubbles to the app, which may keep the session for later)."""

        def __init__(self, session: LiveSession) -> None:
            super().__init__()
            self.session = session

    class ModelFailed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class SaveFailed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class LoadProgress(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class RunUpdate(Message):
        def __init__(self, run: int, update: LiveUpdate) -> None:
            super().__init__()
            self.run = run
            self.update = update

    class RunFinished(Message):
        def __init__(self, run: int, result: LiveResult) -> None:
            super().__init__()
            self.run = run
            self.result = result

    class RunSaved(Message):
        """A run is in the database (bubbles to the app so the grid can reload)."""

        def __init__(self, db_path: Path, screen_id: int, run_id: int, text: str) -> None:
            super().__init__()
            self.db_path = db_path
            self.screen_id = screen_id
            self.run_id = run_id
            self.text = text

    def __init__(
        self,
        model: LiveSession | LoadedModel | str,
        *,
        db_path: str | Path | None = None,
        site: str = "",
        kind: str = "max",
        prompts: Sequence[str] = (),
        prompt: str | None = None,
        decoding: Decoding | None = None,
        chat: bool = True,
        load_options: dict | None = None,
        sessions: SessionCache = SESSIONS,
        name: str | None = None,
        run_at_start: bool = False,
    ) -> None:
        """`run_at_start`: run the form as soon as the model is ready (`mutatui live --site`)."""
        super().__init__(name=name)
        self.run_at_start = run_at_start
        if isinstance(model, LoadedModel):
            model = LiveSession(model)
        self.sessions = sessions
        self.load_options = load_options or {}
        if isinstance(model, str):
            self.session = sessions.loaded(model, self.load_options)
            self.model_spec = model
        else:
            self.session = model
            self.model_spec = model.lm.name
        self.db_path = Path(db_path) if db_path is not None else None
        self.prompts = list(dict.fromkeys(prompts))
        self.decoding = decoding or Decoding()
        self.chat = chat
        self._form_initial = {
            "site": site,
            "kind": kind,
            "prompt": prompt or next(iter(self.prompts), DEFAULT_PROMPT),
        }
        self._run_id = 0
        self._run_active = False
        self._key_time = 0.0
        self._describe = ""
        self._stop_runs = Event()
        self.first_token_latency: float | None = None
        """Seconds from the run key to the first mutant token painted, for the last run."""
        self.last_result: LiveResult | None = None
        self.last_saved: LiveScreen.RunSaved | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="live-model-line"):
            yield Static(f"model {self.model_spec}", id="live-model", markup=False)
            yield LoadingIndicator(id="live-loading")
        with Horizontal(id="live-form"):
            yield Label("site")
            yield Input(self._form_initial["site"], placeholder="L3.down[12,345]", id="live-site")
            yield Label("kind")
            yield Input(self._form_initial["kind"], placeholder="max", id="live-kind")
            yield Label("prompt")
            yield Input(
                self._form_initial["prompt"],
                id="live-prompt",
                suggester=SuggestFromList(self.prompts, case_sensitive=False)
                if self.prompts
                else None,
            )
            yield Label("tokens")
            yield Input(str(self.decoding.max_new_tokens), id="live-tokens", type="integer")
        yield Static("", id="live-status", markup=False)
        with Horizontal(id="live-panes"):
            yield LivePane("baseline", id="live-baseline", classes="baseline")
            yield LivePane("mutant", id="live-mutant", classes="mutant")
        yield KeyBar()

    def on_mount(self) -> None:
        self._fit_site_field(self.query_one("#live-site", Input).value)
        if self.session is None:
            self._set_status(f"loading {self.model_spec}…")
            self._load_model(self.model_spec)
        else:
            self._model_ready(self.session)

    def on_unmount(self) -> None:
        self._stop_runs.set()

    # Model loading -------------------------------------------------------------------------

    def _load_model(self, spec: str) -> None:
        """Load in a thread worker owned by the app, so that leaving this screen does not stop
        the load: the model lands in the session cache for the next live screen, and the app
        says when it is ready (or why not) if this screen is gone by then."""
        app, sessions, options = self.app, self.sessions, self.load_options

        def tell(message: Message, note: str, severity: str) -> None:
            if self.is_attached:
                self.post_message(message)
            else:
                app.call_from_thread(app.notify, note, title="live", severity=severity)

        def load() -> None:
            try:
                session = sessions.get(
                    spec, options, progress=lambda text: self.post_message(self.LoadProgress(text))
                )
            except Exception as error:  # a broken model folder can raise anything: one line
                text = str(error) if isinstance(error, MutatuiError) else f"{error}"
                if not isinstance(error, MutatuiError):
                    text = f"cannot load model {spec!r}: {text}".splitlines()[0]
                tell(self.ModelFailed(text), text, "error")
                return
            tell(self.ModelReady(session), f"model {spec} loaded: x opens live mode", "information")

        app.run_worker(load, thread=True, group="live-load", exit_on_error=False)

    @on(LoadProgress)
    def _on_load_progress(self, message: LoadProgress) -> None:
        self._set_status(message.text)

    @on(ModelReady)
    def _on_model_ready(self, message: ModelReady) -> None:
        self._model_ready(message.session)

    @on(ModelFailed)
    def _on_model_failed(self, message: ModelFailed) -> None:
        self.query_one("#live-loading").display = False
        self.query_one("#live-model", Static).update(f"model {self.model_spec}: not loaded")
        self._set_status(message.error, error=True)
        self.notify(message.error, title="model", severity="error", timeout=10, markup=False)

    def _model_ready(self, session: LiveSession) -> None:
        self.session = session
        hook = getattr(self.app, "live_model_ready", None)  # the explorer asks before quitting
        if hook is not None:
            hook()
        lm = session.lm
        self.query_one("#live-loading").display = False
        self.query_one("#live-model", Static).update(
            f"model {lm.name} · {lm.device} · {str(lm.dtype).removeprefix('torch.')} · "
            f"{session.catalog.num_layers} layers · {self.decoding.describe()}"
        )
        self._set_status("ready: x max · n min · z zero · v typed value · Esc cancels")
        if self.run_at_start:
            self.run_at_start = False
            self.action_run()

    # Running ---------------------------------------------------------------------------------

    def _field(self, name: str) -> Input:
        return self.query_one(f"#live-{name}", Input)

    def _request(self) -> LiveRequest:
        """The run the form describes, or a one-line MutatuiError saying what to fix."""
        assert self.session is not None
        kind = self._field("kind").value
        try:
            parse_kind(kind)
        except MutatuiError as error:
            raise FieldError("kind", str(error)) from None
        try:
            mutation: Mutation = make_mutation(
                self._field("site").value, kind, self.session.catalog
            )
        except MutatuiError as error:
            raise FieldError("site", str(error)) from None
        prompt = self._field("prompt").value.strip()
        if not prompt:
            raise FieldError(
                "prompt", "the prompt is empty; type one, or p for the screen's prompts"
            )
        tokens_text = self._field("tokens").value.strip()
        if not tokens_text.isdigit() or not 1 <= int(tokens_text) <= MAX_TOKENS_LIMIT:
            raise FieldError(
                "tokens", f"bad max tokens {tokens_text[:20]!r}; valid: 1..{MAX_TOKENS_LIMIT}"
            )
        decoding = replace(self.decoding, max_new_tokens=int(tokens_text))
        return LiveRequest(prompt, mutation, decoding, chat=self.chat)

    def action_run(self, kind: str | None = None) -> None:
        if self.session is None:
            self._set_status(f"the model {self.model_spec} is not loaded", error=True)
            return
        if kind is not None:
            self._field("kind").value = kind
        try:
            request = self._request()
        except FieldError as error:
            self._set_status(brief(str(error)), error=True)
            self._field(error.field).focus()  # to fix it: typed letters go there, not to keys
            return
        self._key_time = time.perf_counter()
        self._run_id += 1
        self._run_active = True
        self.first_token_latency = None
        self.last_result = None
        info = self.session.catalog.get(request.mutation.site.layer, request.mutation.site.matrix)
        self._describe = f"{request.mutation} ({request.mutation.target(info):.5g})"
        for pane in self.query(LivePane):
            pane.clear()
        self.query_one("#live-mutant", LivePane).border_title = f"mutant · {request.mutation}"
        self._set_status(f"{self._describe} · running…")
        self._stream(self._run_id, request)

    @work(thread=True, exclusive=True, group="live-run", exit_on_error=False)
    def _stream(self, run: int, request: LiveRequest) -> None:
        assert self.session is not None
        worker = get_current_worker()
        result = self.session.run(
            request,
            lambda update: self.post_message(self.RunUpdate(run, update)),
            lambda: worker.is_cancelled or self._stop_runs.is_set(),
        )
        self.post_message(self.RunFinished(run, result))

    @on(RunUpdate)
    def _on_run_update(self, message: RunUpdate) -> None:
        if message.run != self._run_id:
            return  # a cancelled run's last words
        update = message.update
        diverged = update.diverge_at is not None
        self.query_one("#live-baseline", LivePane).show(update.baseline, diverged)
        self.query_one("#live-mutant", LivePane).show(update.mutant, diverged)
        if self.first_token_latency is None and update.steps > 0:
            self.call_after_refresh(self._stamp_first_token, message.run)
        if not update.final:
            where = f"diverged at token {update.diverge_at}" if diverged else "identical so far"
            self._set_status(
                f"{self._describe} · {where} · {update.steps} tokens", diverged=diverged
            )

    def _stamp_first_token(self, run: int) -> None:
        if run == self._run_id and self.first_token_latency is None:
            self.first_token_latency = time.perf_counter() - self._key_time

    @on(RunFinished)
    def _on_run_finished(self, message: RunFinished) -> None:
        if message.run != self._run_id:
            return
        self._run_active = False
        result = self.last_result = message.result
        self._set_status(
            self._summary(result),
            diverged=result.diverge_at is not None,
            error=result.status is RunStatus.FAILED,
        )
        if self.db_path is not None and self.session is not None:
            self._save(result)

    def _summary(self, result: LiveResult) -> str:
        parts = [self._describe]
        if result.status is RunStatus.FAILED:
            parts.append(f"failed: {result.error}")
        elif result.diverge_at is None:
            parts.append("silent" if result.status is RunStatus.COMPLETED else "identical so far")
        else:
            parts.append(f"diverged at token {result.diverge_at}")
        if self.first_token_latency is not None:
            parts.append(f"first token {self.first_token_latency:.2f} s")
        if result.tokens_per_second:
            parts.append(f"{result.tokens_per_second:.1f} tok/s")
        if result.baseline.settled_naively or result.mutant.settled_naively:
            parts.append("near tie: settled on the naive path")
        if result.mutant.nonfinite:
            parts.append("non-finite logits")
        if result.status is RunStatus.CANCELLED:
            parts.append(f"cancelled after {result.steps} tokens")
        return " · ".join(parts)

    def action_cancel(self) -> None:
        if self._run_active:
            self.workers.cancel_group(self, "live-run")
            self._set_status(f"{self._describe} · cancelling…")
        elif isinstance(self.focused, Input):
            self.set_focus(None)
        elif len(self.app.screen_stack) > 1:
            self.dismiss()

    # Saving ----------------------------------------------------------------------------------

    @work(thread=True, group="live-save", exit_on_error=False)
    def _save(self, result: LiveResult) -> None:
        from mutatui.live.record import grade_and_save

        assert self.session is not None and self.db_path is not None
        try:
            saved = grade_and_save(self.db_path, self.session, result)
        except MutatuiError as error:
            self.post_message(self.SaveFailed(f"run not saved: {error}"))
            return
        text = f"saved as run {saved.run_id} of '{saved.screen_name}'"
        self.post_message(self.RunSaved(self.db_path, saved.screen_id, saved.run_id, text))

    @on(SaveFailed)
    def _on_save_failed(self, message: SaveFailed) -> None:
        self.notify(message.error, title="live run", severity="error", timeout=10, markup=False)

    @on(RunSaved)
    def _on_run_saved(self, message: RunSaved) -> None:
        self.last_saved = message
        self.notify(message.text, title="live run", timeout=4, markup=False)

    # Form helpers ----------------------------------------------------------------------------

    def action_edit_value(self) -> None:
        kind = self._field("kind")
        if kind.value in ("max", "min", "zero"):
            kind.value = ""
        kind.focus()

    def action_focus_field(self, name: str) -> None:
        self._field(name).focus()

    def action_next_prompt(self) -> None:
        if not self.prompts:
            self._set_status("no prompts offered: type one (e)")
            return
        field = self._field("prompt")
        index = self.prompts.index(field.value) + 1 if field.value in self.prompts else 0
        field.value = self.prompts[index % len(self.prompts)]

    def action_tokens(self, direction: int) -> None:
        field = self._field("tokens")
        current = int(field.value) if field.value.isdigit() else self.decoding.max_new_tokens
        field.value = str(min(MAX_TOKENS_LIMIT, max(1, current + direction * TOKEN_STEP)))

    def action_copy_mutant(self) -> None:
        self.app.copy_to_clipboard(self.query_one("#live-mutant", LivePane).plain)
        self.notify("mutant text copied", timeout=2)

    @on(Input.Changed, "#live-site")
    def _on_site_changed(self, event: Input.Changed) -> None:
        self._fit_site_field(event.value)

    def _fit_site_field(self, site: str) -> None:
        """Wide enough for the whole site (a block's is 27 characters), never narrower than
        the default: the prompt field takes what is left."""
        field = self.query_one("#live-site", Input)
        field.styles.width = max(SITE_FIELD_WIDTH, len(site) + FIELD_FRAME + 1)  # + the cursor

    @on(Input.Submitted)
    def _on_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.set_focus(None)
        self.action_run()

    def _set_status(self, text: str, *, diverged: bool = False, error: bool = False) -> None:
        status = self.query_one("#live-status", Static)
        status.update(text)
        status.set_class(diverged and not error, "-diverged")
        status.set_class(error, "-error")


class LiveApp(App):
    """A minimal app around a `LiveScreen`, for `mutatui live` without the explorer."""

    TITLE = "mutatui live"

    def __init__(self, screen: LiveScreen) -> None:
        super().__init__()
        self._live = screen

    def on_mount(self) -> None:
        self.push_screen(self._live)

    @property
    def live(self) -> LiveScreen:
        return self._live
