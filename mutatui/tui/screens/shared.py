"""Actions several screens share: filtering and the writers view."""

from __future__ import annotations

from dataclasses import replace

from textual.binding import Binding
from textual.markup import escape

from mutatui.store.queries import ScreenData
from mutatui.tui.grid_data import Filter, effect_levels


def filter_badge(selection: Filter, data: ScreenData | None) -> str:
    """The active filter as the first thing on a view's status line, so no terminal width
    cuts it (empty when nothing is filtered)."""
    if not selection.active:
        return ""
    return f"[reverse] filter: {escape(selection.describe(data))} [/reverse] "


class FilterActions:
    """Mixin for screens that show phenotypes: `f` filter, `F` clear it, `w` writers."""

    FILTER_BINDINGS = [
        Binding("f", "filter", "Filter", id="filter.open"),
        Binding("F", "clear_filter", "Clear filter", show=False, id="filter.clear"),
        Binding("K", "cycle_kind", "Kind filter", show=False, id="filter.kind"),
        Binding("V", "cycle_severity", "Severity filter", show=False, id="filter.severity"),
        Binding("E", "cycle_effect", "Effect filter", show=False, id="filter.effect"),
        Binding("w", "writers", "Writers", show=False, id="writers.open"),
    ]

    def action_filter(self) -> None:
        data = self.app.data
        if data is None:
            return

        def chosen(selection: Filter | None) -> None:
            if selection is not None:
                self.app.set_filter(selection)

        dialog = self.app.filter_dialog(data)
        dialog.show_filter(self.app.selection)
        self.app.push_screen(dialog, chosen)

    def action_clear_filter(self) -> None:
        self.app.set_filter(Filter())

    def action_cycle_kind(self) -> None:
        """Quick filter: any kind -> max only -> min only -> any."""
        order = (frozenset(), frozenset({"max"}), frozenset({"min"}))
        current = self.app.selection.kinds
        following = order[(order.index(current) + 1) % 3] if current in order else frozenset()
        self.app.set_filter(replace(self.app.selection, kinds=following))

    def action_cycle_severity(self) -> None:
        """Quick filter: phenotypes of any severity -> mild or worse -> ... -> severe -> any."""
        level = (self.app.selection.min_severity + 1) % 4
        self.app.set_filter(replace(self.app.selection, min_severity=level))

    def action_cycle_effect(self) -> None:
        """Quick filter: a minimum effect size, up a decade at each press from the screen's
        lowest colour level (its noise floor, or 1e-4 nats), then none again."""
        data = self.app.data
        if data is None or data.effect is None:
            self.notify("no effect sizes in this screen: nothing to filter by", timeout=2)
            return
        levels = (0.0, *effect_levels(data.noise))
        current = self.app.selection.min_effect
        following = next((level for level in levels if level > current), 0.0)
        self.app.set_filter(replace(self.app.selection, min_effect=following))

    def action_writers(self) -> None:
        self.app.open_writers()

    def system_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand(
            "Filter",
            "Filter phenotypes by kind, severity, style, word, prompt, tag",
            self.action_filter,
        )
        yield SystemCommand("Clear filter", "Show every phenotype again", self.action_clear_filter)
        yield SystemCommand(
            "Writers", "Conversational and poetic mutations by first word", self.action_writers
        )
