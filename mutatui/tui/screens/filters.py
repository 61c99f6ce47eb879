"""The filter dialog: kind, severity, style, first word, prompt, tag, malignant, and the
minimum effect size where the screen recorded them."""

from __future__ import annotations

from typing import NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select

from mutatui.store.queries import TRIAGE_TAGS, ScreenData
from mutatui.tui.grid_data import EFFECT_LEVELS, Filter
from mutatui.tui.widgets.tick_box import TickBox

SEVERITIES = (("any", 0), ("mild or worse", 1), ("moderate or worse", 2), ("severe", 3))


class DialogChoices(NamedTuple):
    """What the dialog offers: a dialog is reused while these stay the same."""

    styles: tuple[str, ...]
    probes: tuple[tuple[int, str, str], ...]
    tags: tuple[str, ...]
    words: tuple[str, ...]
    effects: bool


def dialog_options(data: ScreenData) -> DialogChoices:
    """The choices a filter dialog for `data` offers."""
    tags = sorted(set(TRIAGE_TAGS) | {tag for tags in data.tags.values() for tag in tags})
    probes = tuple((probe.probe_id, probe.name, probe.prompt) for probe in data.probes)
    return DialogChoices(
        tuple(data.styles), probes, tuple(tags), tuple(data.words), data.effect is not None
    )


def labelled(label: str, field: Select | Input) -> Horizontal:
    """A dialog row: the field's name, then the field."""
    return Horizontal(Label(label, classes="field-label"), field, classes="row")


class FilterScreen(ModalScreen[Filter | None]):
    """The filter dialog. The app keeps one installed and shows it again with the current
    filter (`show_filter`): a screen that is not installed is removed as it closes, and Textual
    then lays the whole app out again, a frame after the one showing the new filter."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="filter.cancel"),
        Binding("ctrl+s", "apply", "Apply", id="filter.apply"),
        # before the focused field's own Enter (a checkbox toggles on it, a closed dropdown
        # opens); `check_action` leaves Enter to an open dropdown and to the buttons
        Binding("enter", "apply", "Apply", show=False, priority=True, id="filter.enter"),
    ]

    def __init__(self, data: ScreenData, current: Filter) -> None:
        super().__init__()
        self.data = data
        self.options = dialog_options(data)
        self.current = current

    def compose(self) -> ComposeResult:
        current, data = self.current, self.data
        tags = self.options.tags
        with Vertical(id="filter-dialog", classes="dialog"):
            yield Label("[b]Filter phenotypes[/b]  (Tab moves, Enter applies, Esc cancels)")
            with Horizontal(classes="row"):
                yield TickBox("max", "max" in current.kinds, id="kind-max", compact=True)
                yield TickBox("min", "min" in current.kinds, id="kind-min", compact=True)
                yield TickBox("malignant only", current.malignant, id="malignant", compact=True)
                if self.options.effects:
                    yield TickBox("robust only", current.robust, id="robust", compact=True)
            yield labelled(
                "severity",
                Select(
                    [(label, value) for label, value in SEVERITIES],
                    value=current.min_severity,
                    allow_blank=False,
                    id="severity",
                    compact=True,
                ),
            )
            yield labelled(
                "style",
                Select(
                    [(style, style) for style in data.styles],
                    value=next(iter(current.styles)) if current.styles else Select.NULL,
                    prompt="any style",
                    id="style",
                    compact=True,
                ),
            )
            yield labelled(
                "prompt",
                Select(
                    [(f"{p.name}: {p.prompt[:40]}", p.probe_id) for p in data.probes],
                    value=next(iter(current.probes)) if current.probes else Select.NULL,
                    prompt="any prompt",
                    id="probe",
                    compact=True,
                ),
            )
            yield labelled(
                "tag",
                Select(
                    [(tag, tag) for tag in tags],
                    value=current.tag if current.tag else Select.NULL,
                    prompt="any tag",
                    id="tag",
                    compact=True,
                ),
            )
            if self.options.effects:
                yield labelled(
                    "effect",
                    Select(
                        [("any", 0.0)] + [(f"KL >= {level:g}", level) for level in EFFECT_LEVELS],
                        value=current.min_effect,
                        allow_blank=False,
                        id="effect",
                        compact=True,
                    ),
                )
            yield labelled(
                "first word",
                Input(
                    current.first_word or "",
                    placeholder="any",
                    suggester=SuggestFromList(data.words, case_sensitive=True),
                    id="first-word",
                    compact=True,
                ),
            )
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply", compact=True)
                yield Button("Clear all", id="clear", compact=True)

    def show_filter(self, current: Filter) -> None:
        """Set the dialog's fields to `current` (before it is shown again)."""
        self.current = current
        if not self.is_mounted:
            return  # compose reads self.current
        for kind in ("max", "min"):
            self.query_one(f"#kind-{kind}", TickBox).value = kind in current.kinds
        self.query_one("#malignant", TickBox).value = current.malignant
        self.query_one("#severity", Select).value = current.min_severity
        for selector, chosen in (
            ("#style", next(iter(current.styles), None)),
            ("#probe", next(iter(current.probes), None)),
            ("#tag", current.tag),
        ):
            self.query_one(selector, Select).value = Select.NULL if chosen is None else chosen
        self.query_one("#first-word", Input).value = current.first_word or ""
        if self.options.effects:
            self.query_one("#effect", Select).value = current.min_effect
            self.query_one("#robust", TickBox).value = current.robust
        self.query_one("#kind-max", TickBox).focus()

    def _value(self, selector: str):
        value = self.query_one(selector, Select).value
        return None if value in (Select.NULL, None) else value

    def selection(self) -> Filter:
        kinds = frozenset(
            kind for kind in ("max", "min") if self.query_one(f"#kind-{kind}", TickBox).value
        )
        style, probe, tag = self._value("#style"), self._value("#probe"), self._value("#tag")
        word = self.query_one("#first-word", Input).value.strip()
        return Filter(
            kinds=kinds,
            min_severity=int(self._value("#severity") or 0),
            styles=frozenset([style]) if style else frozenset(),
            first_word=word or None,
            probes=frozenset([probe]) if probe is not None else frozenset(),
            tag=tag,
            malignant=self.query_one("#malignant", TickBox).value,
            min_effect=float(self._value("#effect") or 0.0) if self.options.effects else 0.0,
            robust=self.options.effects and self.query_one("#robust", TickBox).value,
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply" and self.is_mounted:
            if isinstance(self.focused, Button):
                return False
            if any(select.expanded for select in self.query(Select)):
                return False
        return True

    def action_apply(self) -> None:
        self.dismiss(self.selection())

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self) -> None:
        self.action_apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(Filter() if event.button.id == "clear" else self.selection())
