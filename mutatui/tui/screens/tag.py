"""Triage: tag a mutation (writer, poetic, conversational, interesting, junk or free text)
with an optional note. The app writes it to the database at once."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList

from mutatui.store.queries import TRIAGE_TAGS


class TagScreen(ModalScreen[tuple[str, str | None] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="tag.cancel")]

    def __init__(self, site: str, existing: dict[str, str | None]) -> None:
        super().__init__()
        self.site = site
        self.existing = existing

    def compose(self) -> ComposeResult:
        with Vertical(id="tag-dialog", classes="dialog"):
            yield Label(f"[b]Tag {self.site}[/b]  (Enter picks; Tab: own tag, note)")
            if self.existing:
                current = ", ".join(
                    tag + (f" ({note})" if note else "") for tag, note in self.existing.items()
                )
                yield Label(f"already: {escape(current)}", classes="hint")
            yield OptionList(*TRIAGE_TAGS, id="tag-choices")
            yield Input(placeholder="or a tag of your own", id="tag-free", compact=True)
            yield Input(placeholder="note (optional)", id="tag-note", compact=True)

    def _note(self) -> str | None:
        return self.query_one("#tag-note", Input).value.strip() or None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss((TRIAGE_TAGS[event.option_index], self._note()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        free = self.query_one("#tag-free", Input).value.strip()
        if free:
            self.dismiss((free, self._note()))
        elif event.input.id == "tag-free":
            self.query_one("#tag-note", Input).focus()
        else:
            option_list = self.query_one(OptionList)
            index = option_list.highlighted
            self.dismiss((TRIAGE_TAGS[index or 0], self._note()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class UntagScreen(ModalScreen[str | None]):
    """Pick one of a mutation's tags to remove."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="untag.cancel")]

    def __init__(self, site: str, tags: list[str]) -> None:
        super().__init__()
        self.site = site
        self.tags = tags

    def compose(self) -> ComposeResult:
        with Vertical(id="untag-dialog", classes="dialog"):
            yield Label(f"[b]Remove a tag from {self.site}[/b]  (Enter removes, Esc cancels)")
            yield OptionList(*(Text(tag) for tag in self.tags), id="untag-choices")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.tags[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
