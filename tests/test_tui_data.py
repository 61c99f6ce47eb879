"""The explorer's data layer: synthetic screens, in-memory reads, filters, binning, writers,
tags. Counts are checked against SQL on the same file, never against the code under test."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest

from mutatui.engine.sites import Site
from mutatui.store import catalog, queries
from mutatui.store.database import writer_lock
from mutatui.store.effects import ROBUST_MARGIN
from mutatui.store.synthetic import SyntheticSpec, build_synthetic
from mutatui.tui.grid_data import (
    Filter,
    apply_filter,
    fit_zoom,
    layout_for,
    opening,
    overview_counts,
    phenotype_order,
    zoomed,
)
from mutatui.tui.writers_data import writer_groups


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("tui-data") / "screens.db"
    build_synthetic(path, SyntheticSpec(layers=3, seed=3))
    return path


@pytest.fixture(scope="module")
def data(db):
    return queries.load_screen(db, 1)


def sql(db, query, params=()):
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute(query, list(params)).fetchall()


def test_synthetic_is_deterministic(tmp_path):
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    build_synthetic(first, SyntheticSpec(layers=1, seed=5))
    build_synthetic(second, SyntheticSpec(layers=1, seed=5))
    query = "SELECT * FROM results ORDER BY mutation_id, probe_id"
    assert sql(first, query) == sql(second, query)


def test_list_screens_counts_match_sql(db):
    (summary,) = catalog.list_screens(db)
    phenotypic = sql(
        db, "SELECT count(DISTINCT mutation_id) FROM results WHERE screen_id = 1 AND changed"
    )[0][0]
    tested = sql(db, "SELECT count(DISTINCT mutation_id) FROM results WHERE screen_id = 1")[0][0]
    assert (summary.phenotypes, summary.mutations) == (phenotypic, tested)
    assert summary.status == "complete" and summary.probes == 4


def test_filter_counts_match_sql(db, data):
    for selection, where in [
        (Filter(), "changed"),
        (Filter(kinds=frozenset({"min"})), "changed AND m.kind = 'min'"),
        (Filter(min_severity=3), "changed AND severity >= 3"),
        (Filter(styles=frozenset({"poetic"})), "changed AND style = 'poetic'"),
        (Filter(first_word="Oh"), "changed AND first_word = 'Oh'"),
        (Filter(probes=frozenset({1})), "changed AND probe_id = 1"),
        (Filter(malignant=True), "changed AND malignant"),
    ]:
        expected = sql(
            db,
            "SELECT count(DISTINCT r.mutation_id) FROM results r JOIN mutations m"
            f" USING (screen_id, mutation_id) WHERE {where}",
        )[0][0]
        assert int(apply_filter(data, selection).phenotypic.sum()) == expected, selection
    assert expected > 0


def test_overview_counts_match_sql(db, data):
    by_max, by_min = overview_counts(data, apply_filter(data, Filter()))
    rows = sql(
        db,
        "SELECT m.layer, m.matrix, m.kind, count(DISTINCT m.mutation_id) FROM mutations m"
        " JOIN results r USING (screen_id, mutation_id) WHERE r.changed GROUP BY ALL",
    )
    for layer, matrix, kind, count in rows:
        position = data.matrix_position(layer, matrix)
        assert (by_max if kind == "max" else by_min)[position] == count


def brute_cell(data, phenotypes, position, bounds):
    part = data.matrix_slices[position]
    row0, row1, col0, col1 = bounds
    inside = (
        (data.row0[part] >= row0)
        & (data.row0[part] < row1)
        & (data.col0[part] >= col0)
        & (data.col0[part] < col1)
    )
    kept = phenotypes.kept[part] & inside
    hits = phenotypes.phenotypic[part] & inside
    return int(kept.sum()), int(hits.sum())


@pytest.mark.parametrize("rearranged", [False, True])
@pytest.mark.parametrize("level", [0, 1, 5])
def test_layout_lines_match_brute_force(data, rearranged, level):
    phenotypes = apply_filter(data, Filter(kinds=frozenset({"max"})))
    position = data.matrix_position(1, "gate")
    shape = data.matrices[position]
    fit = fit_zoom(shape, (64, 64), 10, 6)
    layout = layout_for(data, phenotypes, position, zoomed(fit, level), rearranged=rearranged)
    assert layout.rows * layout.bin_rows >= shape.rows
    for row in range(layout.rows):
        line = layout.line(row)
        for col in range(layout.cols):
            bounds = layout.cell_bounds(row, col)
            tested, hits = brute_cell(data, phenotypes, position, bounds)
            assert (int(line.tested[col]), int(line.phenotypic[col])) == (tested, hits)
            assert len(layout.members(row, col)) >= tested
    if rearranged:
        totals = layout.row_totals[layout.row_order]
        assert list(totals) == sorted(totals, reverse=True)


def test_site_of_a_position_matches_sql(db, data):
    for position in (0, len(data.mutation_id) // 2, len(data.mutation_id) - 1):
        mutation_id = int(data.mutation_id[position])
        ((layer, matrix, row0, row1, col0, col1),) = sql(
            db,
            "SELECT layer, matrix, row0, row1, col0, col1 FROM mutations"
            " WHERE screen_id = 1 AND mutation_id = ?",
            [mutation_id],
        )
        assert data.site(position) == Site(layer, matrix, row0, row1, col0, col1)
        assert data.site(position).matrix_label == f"L{layer}.{matrix}"


def test_fit_and_zoom_limits(data):
    position = data.matrix_position(0, "down")
    shape = data.matrices[position]
    fit = fit_zoom(shape, (64, 64), 4, 8)
    assert -(-shape.rows // (64 << fit[0])) <= 4 and -(-shape.cols // (64 << fit[1])) <= 8
    assert zoomed(fit, 99) == (0, 0)


def first_word_counts(db, condition: str) -> dict[str, int]:
    """First word -> how many changed results meet `condition` (SQL on the file)."""
    query = f"SELECT first_word, count(*) FROM results WHERE changed AND ({condition}) GROUP BY 1"
    return dict(sql(db, query))


def test_writers_group_by_first_word_and_find_shared_rows(db, data):
    writers = writer_groups(data, apply_filter(data, Filter()))
    expected = first_word_counts(db, "style IN ('conversational', 'poetic')")
    assert {group.word: group.results for group in writers.groups} == expected
    counts = [group.results for group in writers.groups]
    assert counts == sorted(counts, reverse=True)
    # synthetic writers sit on the same rows of the down matrices of layers 0 and 2
    assert any({"L0.down", "L2.down"} <= labels for labels in writers.shared_rows.values())


def test_writers_leave_out_outputs_in_their_baselines_own_style(db, data):
    """A probe whose baseline answer is conversational (a letter) has no conversational
    writers, only poetic ones, and none opening as the letter does ("Dear"), as in `mutatui
    analyze`."""
    letter = "Dear Sam, I hope you are well. Would you like to have lunch with me on Friday?"
    probes = [replace(p, baseline_text=letter) if p.probe_id == 0 else p for p in data.probes]
    writers = writer_groups(replace(data, probes=probes), apply_filter(data, Filter()))
    expected = first_word_counts(
        db,
        "(style = 'poetic' OR (style = 'conversational' AND probe_id <> 0))"
        " AND NOT (probe_id = 0 AND lower(first_word) = 'dear')",
    )
    assert {group.word: group.results for group in writers.groups} == expected
    query = "SELECT count(*) FROM results WHERE probe_id = 0 AND style = 'conversational'"
    assert sql(db, query)[0][0] > 0  # the letter probe had conversational outputs to leave out


def test_n_visits_the_largest_effect_first_then_the_most_severe(data):
    """Within a matrix: effect size descending (not recorded last), then severity; matrix by
    matrix in the screen's order."""
    effect = np.random.default_rng(0).lognormal(-8, 2, len(data.mutation_id))
    effect[::7] = np.nan
    with_effects = replace(data, effect=effect)
    phenotypes = apply_filter(with_effects, Filter())
    order = phenotype_order(with_effects, phenotypes)
    assert set(order) == set(np.flatnonzero(phenotypes.kept & phenotypes.phenotypic))
    matrices = data.matrix_index[order]
    assert (np.diff(matrices) >= 0).all()
    for matrix in np.unique(matrices):
        mine = order[matrices == matrix]
        shown = np.nan_to_num(effect[mine], nan=-np.inf)
        assert (shown[:-1] >= shown[1:]).all()
        ties = shown[:-1] == shown[1:]  # the unrecorded ones: most severe first among them
        worst = phenotypes.worst[mine]
        assert (worst[:-1][ties] >= worst[1:][ties]).all()
        assert np.isinf(shown).any() and np.isfinite(shown[0])
    without = phenotype_order(data, apply_filter(data, Filter()))
    assert (np.diff(apply_filter(data, Filter()).worst[without][:5]) <= 0).all()


def test_tags_are_saved_at_once_and_filterable(tmp_path):
    path = tmp_path / "tags.db"
    build_synthetic(path, SyntheticSpec(layers=1, seed=1))
    data = queries.load_screen(path, 1)
    mutation_id = int(data.mutation_id[5])
    queries.add_tag(path, 1, mutation_id, "writer", "sounds like a letter")
    queries.add_tag(path, 1, mutation_id, "writer", "changed my mind")
    reloaded = queries.load_screen(path, 1)
    assert reloaded.tags == {5: {"writer": "changed my mind"}}
    assert queries.mutation_detail(path, 1, mutation_id).tags == {"writer": "changed my mind"}
    kept = apply_filter(reloaded, Filter(tag="writer")).kept
    assert np.flatnonzero(kept).tolist() == [5]
    queries.remove_tag(path, 1, mutation_id, "writer")
    assert queries.load_screen(path, 1).tags == {}


def test_mutation_detail_has_texts_of_changed_results_only(db, data):
    position = int(data.phenotype_mutation[0])
    detail = queries.mutation_detail(db, 1, int(data.mutation_id[position]))
    assert any(result.changed for result in detail.results)
    for result in detail.results:
        if result.probe.kind == "text":
            assert (result.text is not None) == result.changed


def test_running_screen_counts_untested_mutations(tmp_path):
    path = tmp_path / "running.db"
    build_synthetic(path, SyntheticSpec(layers=1, status="running", written=0.5))
    data = queries.load_screen(path, 1)
    assert 0 < len(data.mutation_id) == data.written < data.summary.planned
    # no process holds the writer lock: shown as interrupted
    assert queries.screen_progress(path, 1) == ("interrupted", data.written)
    assert data.summary.status == catalog.list_screens(path)[0].status == "interrupted"
    with writer_lock(path):
        assert queries.screen_progress(path, 1) == ("running", data.written)
        assert catalog.list_screens(path)[0].status == "running"


BUNDLED = Path(__file__).resolve().parents[1] / "screens.db"


def test_a_saturated_screen_opens_at_robust_changes_only_with_every_effect_size():
    """tiles-64 of the bundled database (99.6% of tiles change the text)."""
    screen_id = sql(BUNDLED, "SELECT screen_id FROM screens WHERE name = 'tiles-64'")[0][0]
    data = queries.load_screen(BUNDLED, screen_id)
    start = opening(data)
    assert start.selection == Filter(robust=True) and start.colour == "effect"
    (robust,), (tested,) = (
        sql(
            BUNDLED,
            "SELECT count(DISTINCT r.mutation_id) FROM results r JOIN effects e "
            "USING (screen_id, mutation_id, probe_id) "
            "WHERE r.screen_id = ? AND r.changed AND e.diverge_margin >= ?",
            [screen_id, ROBUST_MARGIN],
        )[0],
        sql(BUNDLED, "SELECT count(*) FROM mutations WHERE screen_id = ?", [screen_id])[0],
    )
    assert f"opened at robust changes ({robust / tested:.1%}" in start.why
    without = opening(replace(data, effect=None, phenotype_margin=None))
    assert without.selection == Filter(min_severity=2) and without.colour == "density"
    assert "opened at severity moderate or worse" in without.why
    part_way = data.effect.copy()
    part_way[0] = np.nan  # one mutation still without its effect size
    assert opening(replace(data, effect=part_way)).selection == Filter(min_severity=2)
