"""`?`: every key of the screen underneath (with its id, for remapping) and of the app."""

from __future__ import annotations

from dataclasses import replace

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from mutatui.tui.keymap import keymap_path

GLYPHS = """[b]Grid cells[/b]: ' ' untested, '.' tested without a phenotype, '+' max phenotype,
'-' min phenotype, '#' both, 'o' another kind. Colour: phenotype density of the cell (s: worst
severity instead; c: max red / min blue / both magenta). Bars: phenotypes per row (left) and
per column (top). r sorts rows and columns by phenotype count (the paper's rearranged view)."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        self.rows = self.key_rows()
        table = Table(title="Keys", expand=True, box=None)
        table.add_column("key", style="bold")
        table.add_column("does")
        table.add_column("id (for keys.toml)", style="dim")
        for row in self.rows:
            table.add_row(*row)
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static(table, id="help-keys")
            yield Static(GLYPHS, id="help-glyphs")
            yield Static(
                f'Remap keys in {keymap_path()}: a [keys] table of id = "key,key"',
                classes="hint",
            )

    def key_rows(self) -> list[tuple[str, str, str]]:
        """(keys, what they do, binding id) for the focused widget, its screen and the app,
        with the user's remapping applied."""
        screens = self.app.screen_stack
        underneath = screens[-2] if len(screens) > 1 else None
        nodes = [self.app]
        if underneath is not None:
            focused = underneath.focused
            nodes = [*(focused.ancestors_with_self if focused else [underneath]), self.app]
        keymap = self.app._keymap
        rows, seen = [], set()
        for node in nodes:
            for bindings in node._bindings.key_to_bindings.values():
                for binding in bindings:
                    key = (binding.id, binding.action)
                    if key in seen or binding.system:
                        continue
                    seen.add(key)
                    shown = keymap.get(binding.id) if binding.id else None
                    keys = shown or ",".join(
                        self.app.get_key_display(replace(b, key_display=None))
                        for same in node._bindings.key_to_bindings.values()
                        for b in same
                        if (b.id, b.action) == key
                    )
                    rows.append((keys, binding.description or binding.action, binding.id or ""))
        return rows
