"""`?`: every key of the screen underneath (with its id, for remapping) and of the app."""

from __future__ import annotations

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
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static(self._table(), id="help-keys")
            yield Static(GLYPHS, id="help-glyphs")
            yield Static(
                f'Remap keys in {keymap_path()}: a [keys] table of id = "key,key"',
                classes="hint",
            )

    def _table(self) -> Table:
        table = Table(title="Keys", expand=True, box=None)
        table.add_column("key", style="bold")
        table.add_column("does")
        table.add_column("id (for keys.toml)", style="dim")
        screens = self.app.screen_stack
        underneath = screens[-2] if len(screens) > 1 else None
        seen = set()
        nodes = [self.app]
        if underneath is not None:
            nodes = (
                [*underneath.focused.ancestors_with_self, self.app]
                if underneath.focused
                else [underneath, self.app]
            )
        keymap = self.app._keymap
        for node in nodes:
            for binding in node._bindings.key_to_bindings.values():
                for item in binding:
                    if item.id in seen or item.system:
                        continue
                    seen.add(item.id)
                    key = (
                        keymap.get(item.id, item.key_display or item.key)
                        if item.id
                        else (item.key_display or item.key)
                    )
                    table.add_row(key, item.description or item.action, item.id or "")
        return table
