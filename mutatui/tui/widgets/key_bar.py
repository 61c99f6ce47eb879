"""The key bar: the screen's shown bindings on one line at the bottom, like Textual's Footer.

Textual's Footer mounts one widget per key and remounts them all whenever the bindings change,
which is on every screen switch and focus change; closing a dialog over the matrix grid spent
most of its time there. The key bar draws the same keys as one line of text, redrawn (not
remounted) when the bindings change. A click on a key presses it, as on the Footer.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.screen import Screen
from textual.widget import Widget

PINNED = frozenset({"app.help", "app.quit"})
"""Binding ids the bar never leaves out, however narrow the terminal."""


class KeyBar(Widget):
    """The active screen's bindings that have `show` set, then the command palette's key."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
    }
    KeyBar > .key-bar--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyBar > .key-bar--description {
        color: $footer-description-foreground;
    }
    KeyBar > .key-bar--disabled {
        color: $footer-description-foreground 50%;
    }
    """

    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description", "key-bar--disabled"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._spans: list[tuple[int, int, str]] = []
        """(start, end, key) of each key drawn, for clicks."""

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen:
            self.refresh()

    def shown(self) -> tuple[list[tuple[Binding, bool]], Binding | None]:
        """The bindings to draw, one per action, with whether each is enabled; and the
        command palette's binding, drawn at the right end."""
        seen: set[str] = set()
        keys: list[tuple[Binding, bool]] = []
        palette: Binding | None = None
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.key == self.app.COMMAND_PALETTE_BINDING:
                palette = binding if self.app.ENABLE_COMMAND_PALETTE else None
            elif binding.show and binding.action not in seen:
                seen.add(binding.action)
                keys.append((binding, enabled))
        return keys, palette

    def render(self) -> Text:
        """The keys left to right as they fit, whole keys only; help and quit (`PINNED`) and
        the palette's key always, at the right end. `?` lists the keys left out."""
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        disabled_style = self.get_component_rich_style("key-bar--disabled")
        keys, palette = self.shown()
        pinned = [(b, enabled) for b, enabled in keys if b.id in PINNED]
        others = [(b, enabled) for b, enabled in keys if b.id not in PINNED]

        def drawn(binding: Binding, enabled: bool) -> Text:
            return Text.assemble(
                (f" {self.app.get_key_display(binding)} ", key_style),
                (f"{binding.description} ", description_style if enabled else disabled_style),
            )

        tail: list[tuple[Text, str]] = [(drawn(b, enabled), b.key) for b, enabled in pinned]
        if palette is not None:
            mark = Text.assemble(
                ("▏", description_style),
                (f"{self.app.get_key_display(palette)} ", key_style),
                (f"{palette.description} ", description_style),
            )
            tail.append((mark, palette.key))
        room = max(self.size.width - sum(len(part) for part, _ in tail), 0)
        text = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, str]] = []
        for binding, enabled in others:
            part = drawn(binding, enabled)
            if len(text) + len(part) > room:
                break
            spans.append((len(text), len(text) + len(part), binding.key))
            text.append_text(part)
        text.pad_right(room - len(text))
        for part, key in tail:
            spans.append((len(text), len(text) + len(part), key))
            text.append_text(part)
        self._spans = spans
        return text

    def on_click(self, event: Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key.split(",")[0])
                return
