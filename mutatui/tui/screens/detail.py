"""The mutations in one cell; for the selected one, every prompt's baseline and mutant side by
side with the divergence highlighted, its grade, flags and metrics, and its tags."""

from __future__ import annotations

import math

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from mutatui.engine.text import token_spans
from mutatui.exact.noise import NoiseFloor, shown_effect
from mutatui.store import queries
from mutatui.store.effects import ROBUST_MARGIN
from mutatui.store.live import LiveRunRow, live_runs_at
from mutatui.store.queries import KINDS, MutationDetail, ResultDetail
from mutatui.tui.widgets.cell_summary import SEVERITY_NAMES
from mutatui.tui.widgets.key_bar import KeyBar
from mutatui.tui.widgets.side_by_side import SideBySide


def effect_text(result: ResultDetail, noise: NoiseFloor | None) -> str:
    """The effect sizes of a text result, where the screen recorded them; a KL at or under the
    screen's noise floor is none, and the NLL change within the controls' own is none."""
    if result.effect is None:
        return ""
    delta, prefix, whole, margin = result.effect
    parts = []
    if whole is not None:
        to_divergence = "" if prefix is None else f" (to divergence {shown_effect(prefix, noise)})"
        parts.append(f"KL {shown_effect(whole, noise)}{to_divergence}")
    if delta is not None:
        within = abs(delta) <= (noise.nll if noise is not None else 0.0)
        parts.append("NLL change none" if within else f"NLL {delta:+.3g}")
    if margin is not None:
        fragile = " [b]fragile[/b]" if margin < ROBUST_MARGIN else ""
        parts.append(f"baseline margin {margin:.2f} there{fragile}")
    return ", ".join(parts)


def fragile_steps(result: ResultDetail) -> list[int]:
    """The baseline steps whose margin (top-1 minus top-2 logit) is small: fragile."""
    return [step for step, margin in enumerate(result.margins) if margin < ROBUST_MARGIN]


SHOWN_LIVE_RUNS = 3
"""The newest live runs of a site named in the detail (the count says how many in all)."""


def live_runs_line(runs: list[LiveRunRow]) -> str:
    """The live runs made of this site (from `x`, saved where the explorer saves them)."""
    if not runs:
        return ""
    newest = runs[-SHOWN_LIVE_RUNS:][::-1]
    said = "; ".join(f"{run.kind} {live_outcome(run)}" for run in newest)
    return f"live runs of this site: {len(runs)}, newest first: {escape(said)}"


def live_outcome(run: LiveRunRow) -> str:
    if run.status != "completed":
        return run.status
    if run.diverge_at is None:
        return f"unchanged over {run.steps} tokens"
    return f"changed at token {run.diverge_at}"


def grade_line(result: ResultDetail, noise: NoiseFloor | None = None) -> str:
    probe = result.probe
    head = f"[b]{escape(probe.name)}[/b] [dim]{escape(probe.prompt[:60])}[/dim]"
    effect = effect_text(result, noise)
    fragile = fragile_steps(result)
    tail = f"  [dim]fragile steps: {', '.join(map(str, fragile))}[/dim]" if fragile else ""
    if not result.changed:
        return f"{head}  silent" + (f", {effect}" if effect else "") + tail
    parts = [f"[b]{SEVERITY_NAMES[result.severity]}[/b]"]
    if result.malignant:
        parts.append("[b red]malignant[/b red]")
    if result.style:
        parts.append(result.style)
    if result.first_word:
        parts.append(escape(f"first word {result.first_word!r}"))
    if result.cosine is not None:
        parts.append(f"cosine {result.cosine:.2f}")
    if result.edit_distance is not None:
        parts.append(f"edit {result.edit_distance:.2f}")
    if result.diverge_at is not None:
        parts.append(f"diverges at token {result.diverge_at}")
    if effect:
        parts.append(effect)
    if result.choice_score is not None:
        parts.append(f"score {result.choice_score}/{probe.questions} ({result.choice_delta:+d})")
    parts.extend(result.flags)
    return f"{head}  " + ", ".join(parts) + tail


def tags_cell(tags: dict[str, str | None]) -> Text:
    """A mutation's tag names for the table, as typed (plain text, never markup)."""
    return Text(", ".join(tags))


class DetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Grid", id="detail.back"),
        Binding("t", "tag", "Tag", id="detail.tag"),
        Binding("T", "untag", "Remove tag", show=False, id="detail.untag"),
        Binding("y", "copy_site", "Copy site", id="detail.copy_site"),
        Binding("Y", "copy_output", "Copy output", id="detail.copy_output"),
    ]

    def __init__(self, positions: list[int]) -> None:
        super().__init__()
        self.positions = positions
        self.detail: MutationDetail | None = None
        self._spans_by_probe: dict[int, list[tuple[int, int]]] = {}
        """Each probe's baseline tokens as character spans (the same for every mutation)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="detail-mutations", cursor_type="row")
        yield Static("", id="detail-head", classes="status")
        live = Static("", id="detail-live", classes="status")
        live.display = False  # shown when the site has live runs
        yield live
        yield VerticalScroll(id="detail-results")
        yield KeyBar()

    def on_mount(self) -> None:
        data, phenotypes = self.app.data, self.app.phenotypes
        table = self.query_one(DataTable)
        table.add_columns("site", "kind", "phenotypes", "worst", "tags")
        for position in self.positions:
            table.add_row(
                str(data.site(position)),
                KINDS[int(data.kind[position])],
                str(int(phenotypes.count[position])),
                SEVERITY_NAMES[int(phenotypes.worst[position])],
                tags_cell(data.tags.get(position, {})),
                key=str(position),
            )
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        position = self.positions[event.cursor_row]
        data = self.app.data
        self.load_detail(data.summary.screen_id, int(data.mutation_id[position]))

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load_detail(self, screen_id: int, mutation_id: int) -> None:
        detail = queries.mutation_detail(self.app.screen_db, screen_id, mutation_id)
        beside = self.app.tags_beside
        if beside is not None:  # the opened file's tags live beside it
            detail.tags.update(queries.tags_of(beside, screen_id).get(mutation_id, {}))
        spans = {
            result.probe.probe_id: self._fragile_spans(result)
            for result in detail.results
            if fragile_steps(result)
        }
        live = live_runs_at(self.app.live_db, self.app.data.summary.model, detail.site)
        self.app.call_from_thread(self.show_detail, detail, spans, live)

    def _fragile_spans(self, result: ResultDetail) -> list[tuple[int, int]]:
        """Character spans of the baseline's fragile tokens, by the screen's tokenizer (none
        when it is not on this machine: the grade line lists the steps all the same). A probe's
        baseline is the same for every mutation, so it is decoded once per probe."""
        probe_id = result.probe.probe_id
        if probe_id not in self._spans_by_probe:
            tokenizer = self.app.tokenizer_of(self.app.data.summary.model)
            self._spans_by_probe[probe_id] = (
                [] if tokenizer is None else token_spans(tokenizer, result.baseline_tokens)
            )
        spans = self._spans_by_probe[probe_id]
        return [spans[step] for step in fragile_steps(result) if step < len(spans)]

    def show_detail(
        self,
        detail: MutationDetail,
        fragile: dict[int, list[tuple[int, int]]] | None = None,
        live: list[LiveRunRow] | None = None,
    ) -> None:
        self.detail = detail
        live_line = self.query_one("#detail-live", Static)
        live_line.display = bool(live)
        live_line.update(live_runs_line(live or []))
        tags = ", ".join(tag + (f" ({note})" if note else "") for tag, note in detail.tags.items())
        value = (
            "(a published tile: the table gives no value)"
            if math.isnan(detail.value)
            else f"= {detail.value:.4g}"
        )
        self.query_one("#detail-head", Static).update(
            f"[b]{escape(str(detail.site))}[/b] {detail.kind} {value}"
            + (f"   tags: {escape(tags)}" if tags else "")
            + "   [dim]left: baseline, right: mutant[/dim]"
        )
        container = self.query_one("#detail-results", VerticalScroll)
        container.remove_children()
        widgets = []
        for result in detail.results:
            widgets.append(Static(grade_line(result, self.app.data.noise), classes="grade"))
            if result.probe.kind == "text":
                baseline = result.probe.baseline_text or ""
                mutant = result.text if result.changed and result.text is not None else baseline
                spans = (fragile or {}).get(result.probe.probe_id, ())
                widgets.append(SideBySide(baseline, mutant, changed=result.changed, fragile=spans))
        container.mount_all(widgets)

    def action_copy_site(self) -> None:
        if self.detail:
            text = str(self.detail.site)
            self.app.copy_to_clipboard(text)
            self.notify(f"copied {text}", timeout=1.5, markup=False)

    def action_copy_output(self) -> None:
        if self.detail:
            texts = [r.text for r in self.detail.results if r.changed and r.text]
            if texts:
                self.app.copy_to_clipboard(texts[0])
                self.notify("copied the mutant's output", timeout=1.5)

    def action_tag(self) -> None:
        from mutatui.tui.screens.tag import TagScreen

        detail = self.detail
        if detail is None:
            return

        def chosen(choice: tuple[str, str | None] | None) -> None:
            if choice:
                self.app.save_tag(detail.mutation_id, *choice)

        self.app.push_screen(TagScreen(str(detail.site), detail.tags), chosen)

    def action_untag(self) -> None:
        from mutatui.tui.screens.tag import UntagScreen

        detail = self.detail
        if detail is None or not detail.tags:
            self.notify("no tags on this mutation", timeout=1.5)
            return

        def chosen(tag: str | None) -> None:
            if tag:
                self.app.remove_tag(detail.mutation_id, tag)

        self.app.push_screen(UntagScreen(str(detail.site), list(detail.tags)), chosen)

    def tag_saved(self, mutation_id: int) -> None:
        """Called by the app once a tag is in the database."""
        table = self.query_one(DataTable)
        data = self.app.data
        position = data.index_of(mutation_id)
        if position is None or position not in self.positions:
            return
        tags = data.tags.get(position, {})
        table.update_cell(
            str(position), table.ordered_columns[4].key, tags_cell(tags), update_width=True
        )
        self.load_detail(data.summary.screen_id, mutation_id)
