"""Live mode inside the explorer: a mixin for its App class, light to import (no torch).

`class ExplorerApp(LiveLauncher, App)` gains:
- the `live_here` action (bound to a key by the app): a `LiveScreen` on the site under the
  cursor of the current screen (`live_choices()` asks which site when a grid cell holds several;
  else `cell_site()`), with the open screen's model
  (unless `live_model`, `--model`, names another), text prompts and decoding. The model loads once,
  in the background (the grid stays usable), and is kept for the next time;
- `live_start`: a `LiveScreen` shown at start-up over the explorer (`mutatui live`);
- a saved live run reloads the open screen when it is the live screen the run went into;
- `quit` asks first while a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App

    from mutatui.tui.screens.live import LiveScreen


class LiveLauncher:
    live_model: str | None = None
    live_load_options: dict | None = None
    live_start: LiveScreen | None = None
    holds_model: bool = False
    """A live screen of this app has had its model ready: quitting would drop it."""

    def _open_data(self):
        return getattr(self, "data", None)

    def on_mount(self) -> None:
        app: App = self  # type: ignore[assignment]
        if self.live_start is not None:
            app.call_later(app.push_screen, self.live_start)

    def open_live(self, site: str = "") -> None:
        from mutatui.tui.screens.live import LiveScreen

        app: App = self  # type: ignore[assignment]
        data = self._open_data()
        model = self.live_model or (data.summary.model if data is not None else None)
        if model is None:
            app.notify("open a screen first, or start with --model M", title="live", timeout=4)
            return
        prompts = [p.prompt for p in data.probes if p.kind == "text"] if data is not None else []
        app.push_screen(
            LiveScreen(
                model,
                db_path=getattr(self, "live_db", None),
                site=site,
                prompts=prompts,
                load_options=self.live_load_options,
                **self._screen_decoding(),
            )
        )

    def _screen_decoding(self) -> dict:
        """The open screen's decoding, so that a live run reproduces its results ({} if none)."""
        from mutatui.engine.decoding import Decoding
        from mutatui.errors import MutatuiError
        from mutatui.store.live import screen_decoding

        data, db_path = self._open_data(), getattr(self, "screen_db", None)
        if data is None or db_path is None:
            return {}
        try:
            found = screen_decoding(db_path, data.summary.screen_id)
            if found is None:
                return {}
            decoding = Decoding(found.mode, found.temperature, found.seed, found.max_new_tokens)
        except MutatuiError:
            return {}
        return {"decoding": decoding, "chat": found.chat}

    def action_live_here(self) -> None:
        """Open live mode on the site under the cursor (of any screen that has one)."""
        from mutatui.tui.screens.live import LiveScreen

        app: App = self  # type: ignore[assignment]
        if isinstance(app.screen, LiveScreen):
            return
        choices = getattr(app.screen, "live_choices", None)
        if choices is not None:
            from mutatui.tui.screens.live_site import LiveSiteScreen

            offered = choices()
            if len(offered) == 1:
                self.open_live(offered[0][1])
            else:
                app.push_screen(LiveSiteScreen(offered), self._open_chosen)
            return
        cell_site = getattr(app.screen, "cell_site", None)
        site = cell_site() if cell_site is not None else None
        self.open_live(str(site) if site is not None else "")

    def _open_chosen(self, site: str | None) -> None:
        if site is not None:
            self.open_live(site)

    def on_live_screen_run_saved(self, message: LiveScreen.RunSaved) -> None:
        data = self._open_data()
        same_file = message.db_path == getattr(self, "screen_db", None)
        if same_file and data is not None and data.summary.screen_id == message.screen_id:
            self.load_screen(message.screen_id)  # type: ignore[attr-defined]

    def action_quit(self) -> None:
        """Quit, asking first while a model is loaded: reloading a 7B model takes minutes."""
        app: App = self  # type: ignore[assignment]
        if not self.holds_model:
            app.exit()
            return
        from mutatui.tui.screens.confirm import ConfirmScreen

        if isinstance(app.screen, ConfirmScreen):
            return
        app.push_screen(
            ConfirmScreen("A model is loaded (a run may be streaming): quit? y / n", again="q"),
            self._quit_if,
        )

    def live_model_ready(self) -> None:
        """Called by a live screen once its model is loaded."""
        self.holds_model = True

    def _quit_if(self, yes: bool | None) -> None:
        if yes:
            self.exit()  # type: ignore[attr-defined]
