"""The paper's quantities on fixture screens with planted patterns, where the answer is known."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import FixtureScreen, markdown_tables

from mutatui.analysis.lines import dense_lines, sensitive_tiles
from mutatui.analysis.report import analyze
from mutatui.analysis.stats import (
    axis_clustering,
    complementarity,
    curveball,
    kind_balance,
    one_sided,
    rates,
    rearranged_asymmetry,
    rearranged_order,
    shared_lines,
)
from mutatui.analysis.writers import writer_groups, writer_mask
from mutatui.cli import main
from mutatui.commands.analyze import Report
from mutatui.errors import MutatuiError
from mutatui.store.frames import load_sites, load_styled, pick_screen

PERMUTATIONS = 500
SCREENS = Path(__file__).parent.parent / "screens"


def uniform_hits(
    rng: np.random.Generator, rows: int, cols: int, count: int
) -> list[tuple[int, int]]:
    cells = rng.choice(rows * cols, size=count, replace=False)
    return [divmod(int(cell), cols) for cell in cells]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Four layers of q (8x8 tiles), v (2x8), gate (16x8) and down (8x16), with known patterns.

    - L0.q max: tile row 3 entirely sensitive (a planted row cluster); L1.q max: 8 random tiles.
    - L2.q: max phenotypes on rows 0-1, min phenotypes on rows 6-7 (complementary);
      L3.q: max and min on the same rows 4-5 (overlapping).
    - gate: L0 a nested triangle (row i sensitive in cols 0..7-i, shuffled), L1 random.
    - v: column 5 sensitive (min) in every layer.
    - down (16x16): poetic writers on tile row 2 in every layer, first word "oh".
    """
    screen = FixtureScreen()
    for layer in range(4):
        screen.matrix(layer, "q", 8, 8).matrix(layer, "v", 2, 8)
        screen.matrix(layer, "gate", 16, 8).matrix(layer, "down", 16, 16)
    rng = np.random.default_rng(12345)
    for col in range(8):
        screen.hit(0, "q", 3, col, "max", severity=3)
    for row, col in uniform_hits(rng, 8, 8, 8):
        screen.hit(1, "q", row, col, "max")
    for row in (0, 1):
        for col in (0, 2, 4, 6):
            screen.hit(2, "q", row, col, "max")
            screen.hit(2, "q", row + 6, col + 1, "min")
            screen.hit(3, "q", row + 4, col, "max")
            screen.hit(3, "q", row + 4, col + 1, "min")
    row_perm, col_perm = rng.permutation(16), rng.permutation(8)
    for i in range(8):
        for j in range(8 - i):
            screen.hit(0, "gate", int(row_perm[i]), int(col_perm[j]), "max")
    for row, col in uniform_hits(rng, 16, 8, 36):
        screen.hit(1, "gate", row, col, "max")
    for layer in range(4):
        for row in range(2):
            screen.hit(layer, "v", row, 5, "min")
    for layer in range(4):
        screen.hit(layer, "down", 2, 3 + layer, "max", style="poetic", first_word="oh")
        screen.hit(
            layer, "down", 2, 3 + layer, "max", style="poetic", first_word="oh", probe="explain"
        )
    screen.hit(3, "down", 6, 1, "min", style="conversational", first_word="sure", malignant=True)
    screen.hit(
        3, "down", 5, 5, "min", style="descriptive", first_word="oh", severity=2, malignant=True
    )
    path = screen.write(tmp_path_factory.mktemp("analysis") / "planted.db")
    summary = pick_screen(path, None)
    return path, load_sites(path, summary), load_styled(path, summary)


def stratum(result, layer, matrix, kind=None):
    for item in getattr(result, "strata", None) or result.matrices:
        if item.layer == layer and item.matrix == matrix and (kind is None or item.kind == kind):
            return item
    raise AssertionError(f"no stratum L{layer}.{matrix} {kind}")


def test_frame_holds_every_tested_mutation(planted):
    _, frame, _ = planted
    tiles_per_layer = 64 + 16 + 128 + 256
    assert len(frame) == 4 * tiles_per_layer * 2
    assert frame.changed.sum() == 8 + 8 + 16 + 16 + 36 + 36 + 8 + 4 + 2
    assert set(np.unique(frame.row1 - frame.row0)) == {64}


def test_rates_per_type_and_layer_count_by_hand(planted):
    _, frame, _ = planted
    by_type = {(row.key, row.kind): row for row in rates(frame, "matrix")}
    assert [key for key, _ in by_type][:4] == ["q", "q", "v", "v"]
    q_max = by_type[("q", "max")]
    assert (q_max.tested, q_max.changed, q_max.severe) == (256, 8 + 8 + 8 + 8, 8)
    assert q_max.rate == pytest.approx(32 / 256)
    assert by_type[("v", "min")].changed == 8
    assert by_type[("v", "max")].changed == 0
    assert (by_type[("down", "min")].changed, by_type[("down", "min")].malignant) == (2, 2)
    by_layer = {(row.key, row.kind): row for row in rates(frame, "layer")}
    assert by_layer[("0", "max")].changed == 8 + 36 + 1
    assert by_layer[("0", "max")].tested == 64 + 16 + 128 + 256


def test_kind_balance_separates_mixed_and_one_sided_matrices(planted):
    _, frame, _ = planted
    balance = kind_balance(frame)
    shares = {(layer, matrix): share for layer, matrix, share, _ in balance.shares}
    assert set(shares) == {(0, "q"), (1, "q"), (2, "q"), (3, "q"), (0, "gate"), (1, "gate")}
    assert shares[(0, "q")] == 1.0
    assert shares[(2, "q")] == pytest.approx(0.5)
    assert (balance.mixed, balance.max_only, balance.min_only) == (2, 4, 0)
    assert balance.unclassified == 16 - 6
    sides = one_sided(balance)
    assert sides["min"] == [] and len(sides["max"]) == 4
    assert "L0.q" in sides["max"] and "L2.q" not in sides["max"]


def test_planted_row_cluster_is_significant_and_random_is_not(planted):
    _, frame, _ = planted
    rows = axis_clustering(frame, "row", permutations=PERMUTATIONS)
    cluster = stratum(rows, 0, "q", "max")
    assert cluster.result.observed == 64.0
    assert cluster.result.p < 0.01
    assert stratum(rows, 1, "q", "max").result.p > 0.05
    assert stratum(rows, 1, "gate", "max").result.p > 0.05
    columns = axis_clustering(frame, "col", permutations=PERMUTATIONS)
    assert stratum(columns, 0, "q", "max").result.p == 1.0
    assert rows.combined.p < 0.01


def test_severe_clustering_uses_only_severe_phenotypes(planted):
    _, frame, _ = planted
    severe = axis_clustering(frame, "row", min_severity=3, permutations=PERMUTATIONS)
    assert [(s.layer, s.matrix, s.kind) for s in severe.strata] == [(0, "q", "max")]
    assert severe.strata[0].result.p < 0.01


def test_complementary_rows_have_low_overlap_and_shared_rows_do_not(planted):
    _, frame, _ = planted
    rows = complementarity(frame, "row", permutations=PERMUTATIONS)
    apart = stratum(rows, 2, "q")
    assert (apart.max_lines, apart.min_lines, apart.shared_lines) == (2, 2, 0)
    assert apart.result.observed == 0.0
    assert apart.result.p < 0.05
    together = stratum(rows, 3, "q")
    assert together.result.observed == 1.0
    assert together.result.p == 1.0


def test_rearranged_gate_triangle_beats_random_maps(planted):
    _, frame, _ = planted
    gate = rearranged_asymmetry(frame, "gate", permutations=PERMUTATIONS)
    triangle = next(t for t in gate.layers if t.layer == 0)
    random = next(t for t in gate.layers if t.layer == 1)
    assert triangle.phenotypes == 36
    assert triangle.corner.p < 0.01
    assert random.corner.p > 0.05
    assert random.corner_fixed.p > 0.05 and random.diagonal_fixed.p > 0.05
    # A perfectly nested map is the only one with its marginals: the fixed null is degenerate.
    assert triangle.corner_fixed.null_sd == 0 and triangle.corner_fixed.p == 1.0
    grid, row_lines, _ = rearranged_order(
        frame.subset((frame.layer == 0) & (frame.matrix == "gate"))
    )
    assert grid.sum() == 36
    assert list(grid.sum(axis=1)[:8]) == [8, 7, 6, 5, 4, 3, 2, 1]
    assert row_lines[0] == planted_first_row()


def test_curveball_keeps_row_and_column_counts():
    rng = np.random.default_rng(7)
    grid = rng.random((12, 9)) < 0.3
    samples = curveball(grid, np.random.default_rng(1), 200, 60)
    assert (samples.sum(axis=2) == grid.sum(axis=1)).all()
    assert (samples.sum(axis=1) == grid.sum(axis=0)).all()
    distinct = {sample.tobytes() for sample in samples}
    assert len(distinct) > 150 and grid.tobytes() not in distinct


def planted_first_row() -> int:
    rng = np.random.default_rng(12345)
    uniform_hits(rng, 8, 8, 8)
    return int(rng.permutation(16)[0])


def test_v_column_across_layers_and_writer_rows_across_matrices(planted):
    _, frame, styled = planted
    extents = frame.extents()
    v = frame.subset(frame.matrix == "v")
    columns = shared_lines(v, v.changed, "col", extents, permutations=PERMUTATIONS)
    assert columns.flagged == 8
    assert columns.pairs.observed == 8 * 7 / 2 - 4  # pairs in different layers
    assert columns.pairs.p < 0.01
    assert columns.top_lines[0] == (512, 5, 4)
    writers = writer_mask(frame, styled)
    assert writers.sum() == 5
    rows = shared_lines(frame, writers, "row", extents, permutations=PERMUTATIONS)
    assert rows.pairs.observed == 6
    assert rows.shared_fraction == 0.8
    assert rows.pairs.p < 0.01
    assert rows.top_lines == [(1024, 2, 4)]


def test_writer_rate_per_matrix_type_counts_the_planted_writers(planted):
    path, _, _ = planted
    shape = analyze(path, permutations=10).shapes[0]
    writers = {(r.key, r.kind): (r.tested, r.changed, r.malignant) for r in shape.writers_by_type}
    assert writers.pop(("down", "max")) == (4 * 16 * 16, 4, 0)  # the "oh" row, one per layer
    # the malignant "sure" writer; the malignant descriptive "oh" beside it is no writer
    assert writers.pop(("down", "min")) == (4 * 16 * 16, 1, 1)
    assert {key: found for key, (_, found, _) in writers.items()} == {
        (matrix, kind): 0 for matrix in ("q", "v", "gate") for kind in ("max", "min")
    }


def test_writer_groups_rank_rare_first_words(planted):
    _, frame, styled = planted
    groups = writer_groups(styled, frame.probes)
    assert groups.baseline_first_words == {"describe": "the", "explain": "photosynthesis"}
    assert groups.writer_mutations == 5
    assert groups.writer_outcomes == 9
    assert [(g.word, g.outcomes, g.mutations, g.matrices) for g in groups.groups] == [
        ("oh", 8, 4, 4),
        ("sure", 1, 1, 1),
    ]
    assert groups.groups[0].poetic == 8
    assert groups.groups[0].changed_share == pytest.approx(9 / len(styled))


def test_tagged_writers_count_as_writers(tmp_path):
    screen = FixtureScreen(name="tagged")
    screen.matrix(0, "down", 2, 2)
    screen.hit(0, "down", 1, 1, "max", first_word="hello")
    screen.tags.append((0, "down", 1, 1, "max", "writer"))
    path = screen.write(tmp_path / "tagged.db")
    summary = pick_screen(path, "tagged")
    styled = load_styled(path, summary)
    assert writer_groups(styled, load_sites(path, summary).probes).groups[0].word == "hello"


def test_a_mutant_opening_as_its_baseline_is_no_writer_in_analyze_and_the_explorer(tmp_path):
    """One definition of a writer (`screening.style.writer_outcomes`): a conversational
    output that opens as the baseline does ("The ...") has no first-word group, and the
    writers view groups exactly what `mutatui analyze` does."""
    from mutatui.store import queries
    from mutatui.tui.grid_data import Filter, apply_filter
    from mutatui.tui.writers_data import writer_groups as explorer_groups

    screen = FixtureScreen(name="openings", probes={"describe": "The frog lays eggs."})
    screen.matrix(0, "down", 2, 2)
    screen.hit(0, "down", 0, 0, "max", style="conversational", first_word="the")
    screen.hit(0, "down", 0, 1, "max", style="conversational", first_word="oh")
    screen.hit(0, "down", 1, 0, "min", style="poetic", first_word="oh")
    screen.hit(0, "down", 1, 1, "min", style="descriptive", first_word="frogs")
    path = screen.write(tmp_path / "openings.db")
    summary = pick_screen(path, "openings")
    frame, styled = load_sites(path, summary), load_styled(path, summary)
    groups = writer_groups(styled, frame.probes)
    assert {group.word: group.outcomes for group in groups.groups} == {"oh": 2}
    assert (groups.writer_outcomes, groups.writer_mutations) == (2, 2)
    data = queries.load_screen(path, summary.screen_id)
    shown = explorer_groups(data, apply_filter(data, Filter()))
    assert {group.word.lower(): group.results for group in shown.groups} == {"oh": 2}


def test_a_writer_takes_a_style_its_probes_baseline_does_not_have(tmp_path):
    """An email's baseline is conversational already: its mutants that stay conversational
    are no writers, one turned poetic is; the descriptive probe's conversational mutant is."""
    email = "Dear Sam, I hope you are well. Would you like to have lunch with me on Friday?"
    probes = {"describe": "The frog lays eggs in water.", "email": email}
    screen = FixtureScreen(name="styles", probes=probes)
    screen.matrix(0, "down", 2, 2)
    screen.hit(0, "down", 0, 0, "max", probe="email", style="conversational", first_word="hi")
    screen.hit(0, "down", 0, 1, "max", probe="email", style="poetic", first_word="roses")
    screen.hit(0, "down", 1, 0, "min", probe="describe", style="conversational", first_word="oh")
    path = screen.write(tmp_path / "styles.db")
    summary = pick_screen(path, "styles")
    frame, styled = load_sites(path, summary), load_styled(path, summary)
    groups = writer_groups(styled, frame.probes)
    assert {group.word: group.outcomes for group in groups.groups} == {"oh": 1, "roses": 1}
    assert (groups.writer_outcomes, groups.writer_mutations) == (2, 2)
    assert groups.baseline_first_words == {"describe": "the", "email": "dear"}
    writers = writer_mask(frame, styled)
    sites = zip(frame.row0[writers].tolist(), frame.col0[writers].tolist(), strict=True)
    assert sorted(sites) == [(0, 64), (64, 0)]


def test_analysis_is_deterministic_and_seeded(planted):
    path, _, _ = planted
    first = analyze(path, permutations=200, seed=3).to_dict()
    again = analyze(path, permutations=200, seed=3).to_dict()
    other = analyze(path, permutations=200, seed=4).to_dict()
    assert json.dumps(first, default=str) == json.dumps(again, default=str)
    assert json.dumps(first, default=str) != json.dumps(other, default=str)
    shape, shape_other = first["shapes"][0], other["shapes"][0]
    assert shape["shape"] == (64, 64)
    cluster, cluster_other = (
        shape["clustering"][0]["strata"][0],
        shape_other["clustering"][0]["strata"][0],
    )
    assert cluster["result"]["observed"] == cluster_other["result"]["observed"]
    assert cluster["result"]["null_mean"] != cluster_other["result"]["null_mean"]


def test_min_severity_counts_only_graver_phenotypes(planted, capsys):
    """Severity 3 is only the planted L0.q row; severity 2 adds one down mutation."""
    path, _, _ = planted
    severe = analyze(path, min_severity=3, permutations=100).shapes[0]
    assert (severe.phenotypes, severe.severe) == (8, 8)
    assert [c.min_severity for c in severe.clustering] == [0, 0]  # every phenotype is severe
    row_cluster = stratum(severe.clustering[0], 0, "q", "max")
    assert row_cluster.result.observed == 64.0 and row_cluster.result.p < 0.01
    moderate = analyze(path, min_severity=2, permutations=100).shapes[0]
    assert moderate.phenotypes == 9
    assert [c.min_severity for c in moderate.clustering] == [0, 0, 3, 3]
    assert main(["analyze", str(path), "--min-severity", "3", "--permutations", "100"]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert "phenotype: a changed text output graded severe (text probes only);" in printed


def test_markdown_report_holds_the_numbers_of_the_analysis(planted, capsys):
    path, _, _ = planted
    assert main(["analyze", str(path), "--markdown", "--permutations", "100"]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "━" not in text
    assert "\n### sites 64x64: 3712 tested" in text
    # the planted V column and writer row, with the rows and columns each 64-wide line covers
    assert "most shared V columns: col 5 (320:384) of 512 in 4 matrices" in text
    assert "most shared writer rows: row 2 (128:192) of 1024 in 4 matrices" in text
    tables = markdown_tables(text)
    assert set(tables) == {
        "phenotype rate per matrix type",
        "phenotype rate per layer",
        "phenotype rate per relative depth (fifths of the stack)",
        "writer rate per matrix type",
        "permutation tests (screen-wide: summed z over strata)",
        "writer groups by first word",
        "stripes with the most phenotypes",
    }
    for rows in tables.values():
        assert len({len(row) for row in rows}) == 1  # no cell split by a stray pipe
    by_type = tables["phenotype rate per matrix type"]
    assert by_type[0][:3] == ["matrix", "max tested", "max rate"]
    shape = analyze(path, permutations=100).shapes[0]
    expected = {(r.key, r.kind): r for r in shape.by_type}
    for matrix, max_tested, max_rate, *_ in by_type[1:]:
        assert (int(max_tested), max_rate) == (
            expected[matrix, "max"].tested,
            f"{expected[matrix, 'max'].rate:.1%}",
        )
    assert tables["writer groups by first word"][1][0] == "`oh`"
    report = Report.markdown_output()
    assert report.verbatim("a|b*") == "`a\\|b*`" and report.verbatim("x`y") == "``x`y``"
    assert Report.terminal().verbatim("a|b*") == "a|b*"
    shown = report.table("a title")
    shown.add_column("a")
    shown.add_row("1")
    report.show(shown)
    assert shown.title == "a title"  # printing it as Markdown leaves the table as it was
    assert markdown_tables(capsys.readouterr().out) == {"a title": [["a"], ["1"]]}
    with pytest.raises(SystemExit) as refused:
        main(["analyze", str(path), "--markdown", "--json"])
    assert refused.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_probe_filter_and_bad_names(planted):
    path, _, _ = planted
    summary = pick_screen(path, None)
    only_explain = load_sites(path, summary, ["explain"])
    assert only_explain.changed.sum() == 4
    with pytest.raises(
        MutatuiError, match="no text probe named 'nope'; text probes: describe, explain"
    ):
        load_sites(path, summary, ["nope"])
    with pytest.raises(MutatuiError, match="no screen named 'nope'"):
        pick_screen(path, "nope")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mutatui", *args], capture_output=True, text=True, timeout=300
    )


def test_analyze_command_prints_tables_and_json(planted):
    path, _, _ = planted
    done = run_cli("analyze", str(path), "--permutations", "200")
    assert done.returncode == 0, done.stderr
    assert "rows: clustering" in done.stdout
    assert "oh" in done.stdout
    as_json = run_cli("analyze", str(path), "--json", "--permutations", "200")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["screen"]["name"] == "fixture"
    assert data["shapes"][0]["tested"] == 2 * 4 * (64 + 16 + 128 + 256)


def test_analyze_command_bad_input_is_one_line(tmp_path, planted, capsys):
    path, _, _ = planted
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    for args in (
        ("analyze", str(tmp_path / "missing.db")),
        ("analyze", str(not_a_db)),
        ("analyze", str(path), "--screen", "nope"),
        ("analyze", str(path), "--probe", "nope"),
        ("analyze", str(path), "--permutations", "3"),
        ("analyze", str(path), "--min-severity", "4"),
    ):
        assert main(list(args)) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("mutatui: "), error


def test_sensitive_tiles_and_dense_lines(planted):
    _, frame, _ = planted
    tiles = sensitive_tiles(frame, 3)
    assert len({(t.site.layer, t.site.matrix) for t in tiles}) == 3
    assert str(tiles[0].site) == "L0.q[192:256,0:64]"  # the severe planted row, first by severity
    assert (tiles[0].phenotypes, tiles[0].severity) == (1, 3)
    extents = frame.extents()
    sites = dense_lines(tiles[:1], extents)
    assert len(sites) == 512 + 512 - 1
    assert {s.row0 for s in sites if s.col0 != 32} == {224}
    assert {s.col0 for s in sites if s.row0 != 224} == {32}
    assert all(s.is_element for s in sites)


def test_sensitive_tiles_break_grade_ties_by_damage(tmp_path):
    """Tiles graded severe for both kinds tie on the grades; the choice assay's lost questions,
    then the text's distance from the baseline, rank them, not their place in the model."""
    screen = FixtureScreen()
    damage = {  # (layer, tile row, tile col): (cosine, choice delta) of both kinds
        (0, 0, 0): (0.2, -3),
        (0, 1, 0): (0.0, -1),
        (1, 1, 1): (0.4, -5),
        (2, 0, 1): (0.1, -5),
    }
    for layer in range(3):
        screen.matrix(layer, "q", 2, 2)
    for (layer, row, col), (cosine, delta) in damage.items():
        for kind in ("max", "min"):
            screen.hit(layer, "q", row, col, kind, severity=3, cosine=cosine)
            screen.choice_deltas[(layer, "q", row, col, kind)] = delta
    path = screen.write(tmp_path / "ties.db")
    frame = load_sites(path, pick_screen(path, None), None)
    assert sorted(set(frame.cosine.round(3).tolist())) == [0.0, 0.1, 0.2, 0.4, 1.0]
    assert sorted(set(frame.choice_delta.tolist())) == [-5, -3, -1, 0]
    tiles = sensitive_tiles(frame, 3)
    assert [str(t.site) for t in tiles] == [
        "L2.q[0:64,64:128]",
        "L1.q[64:128,64:128]",
        "L0.q[0:64,0:64]",
    ]
    assert [(t.severity, t.questions_lost) for t in tiles] == [(6, 10), (6, 10), (6, 6)]
    assert [round(t.dissimilarity, 3) for t in tiles] == [1.8, 1.2, 1.6]


def test_emit_lines_writes_a_spec_the_runner_reads(planted, tmp_path, capsys):
    from mutatui.screening.spec import load_spec_file, spec_from_table

    path, _, _ = planted
    out = tmp_path / "lines.toml"
    args = ["analyze", str(path), "--emit-lines", str(out), "--tiles", "2"]
    assert main([*args, "--lines-template", str(SCREENS / "lines.base.toml")]) == 0
    assert "wrote 3070 element sites" in capsys.readouterr().out
    spec = spec_from_table(load_spec_file(out))
    assert spec.display_name == "elements-lines"
    assert [p.style for p in spec.probes] == ["describe", "explain", "instruct"]
    assert len(spec.sites.sites) == (512 + 512 - 1) + (1024 + 1024 - 1)
    assert main(args) == 2
    assert "needs --lines-template" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "smollm2"\n[sites]\nsampler = "full"\n')
    assert main([*args, "--lines-template", str(bad)]) == 2
    assert "must not have [sites]" in capsys.readouterr().err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("bogus = 1\n" + (SCREENS / "lines.base.toml").read_text())
    refused = tmp_path / "refused.toml"
    refused_args = ["analyze", str(path), "--emit-lines", str(refused), "--tiles", "2"]
    assert main([*refused_args, "--lines-template", str(unknown)]) == 2
    assert "unknown keys bogus" in capsys.readouterr().err
    assert not refused.exists()  # refused before it is written, not by the screen after


@pytest.mark.smollm2
def test_bundled_specs_plan_the_designed_screens(smollm2):
    """tiles-64: every 64x64 tile of all 210 matrices, max and min; elements: 32 per matrix."""
    from mutatui.screening.spec import load_spec_file, spec_from_table

    _, catalog = smollm2
    tiles = spec_from_table(load_spec_file(SCREENS / "tiles.toml"))
    assert len(tiles.select_matrices(catalog)) == 210
    assert len(tiles.plan(catalog)) == 2 * 30 * (81 + 27 + 27 + 81 + 3 * 216)
    assert tiles.choice_only_changed and len(tiles.probes) == 1
    elements = spec_from_table(load_spec_file(SCREENS / "elements.toml"))
    assert len(elements.plan(catalog)) == 2 * 210 * 32
    assert {p.style for p in elements.probes} == {"describe", "explain", "instruct"}


@pytest.fixture(scope="module")
def real_screen(tiny, tiny_model_dir, tmp_path_factory):
    """A real screen of the tiny model by the project's runner: tiles, two text probes, choice."""
    from tiny_models import tiny_spec, write_questions

    from mutatui.screening.probes import TextProbe
    from mutatui.screening.runner import ScreenRun, run_screen

    folder = tmp_path_factory.mktemp("real")
    questions = write_questions(
        folder / "q.jsonl", [{"question": "2 + 2 = ?", "choices": ["3", "4"], "answer": 1}]
    )
    spec = tiny_spec(
        tiny_model_dir,
        questions,
        name="tiny-tiles",
        probes=(
            TextProbe("life", "The life cycle of Drosophila:", "describe"),
            TextProbe("sky", "Why is the sky blue?", "explain"),
        ),
        layers=(0,),
        matrices=("q", "v", "down"),
    )
    lm, _ = tiny
    db = folder / "tiny.db"
    assert run_screen(spec, ScreenRun(db, batch_size=16), lambda _: lm).status == "complete"
    return db


def test_analysis_of_a_real_screen_matches_its_results_table(real_screen, tiny, tmp_path):
    from mutatui.store.database import connect

    _, catalog = tiny
    screened = [m for m in catalog if m.layer == 0 and m.name in ("q", "v", "down")]
    tiles = sum(-(-m.rows // 8) * -(-m.cols // 8) for m in screened)

    summary = pick_screen(real_screen, None)
    frame = load_sites(real_screen, summary)
    with connect(real_screen, read_only=True) as db:
        mutations = db.execute("SELECT count(*) FROM mutations").fetchone()[0]
        changed = db.execute(
            """SELECT count(DISTINCT r.mutation_id) FROM results r JOIN probes p
               USING (screen_id, probe_id) WHERE p.kind = 'text' AND r.changed"""
        ).fetchone()[0]
        sky = db.execute(
            """SELECT count(*) FROM results r JOIN probes p USING (screen_id, probe_id)
               WHERE p.name = 'sky' AND r.changed"""
        ).fetchone()[0]
    assert len(frame) == mutations == 2 * tiles  # max and min
    assert int(frame.changed.sum()) == changed > 0
    assert int(load_sites(real_screen, summary, ["sky"]).changed.sum()) == sky
    result = analyze(real_screen, permutations=50).to_dict()
    assert result["shapes"][0]["tested"] == mutations
    assert result["probes"] == ["life", "sky"]
    assert main(["plot", str(real_screen), str(tmp_path / "figures")]) == 0
    assert len(list((tmp_path / "figures").glob("*.png"))) == 1 + 3 * 3


@pytest.fixture(scope="module")
def lines_db(tmp_path_factory):
    """An element screen of two whole lines of L0.down (8x16): max phenotypes fill row 3, min
    fill column 5; a random sample of 20 other elements with 2 max and 1 min phenotypes; and a
    tile screen. L1.up has a whole row in the lines screen only."""
    path = tmp_path_factory.mktemp("lines") / "lines.db"
    cross = {(0, "down", 3, col) for col in range(16)} | {(0, "down", row, 5) for row in range(8)}
    lines = FixtureScreen(name="lines", tile=1, sites=cross | {(1, "up", 0, c) for c in range(8)})
    lines.matrix(0, "down", 8, 16).matrix(1, "up", 16, 8)
    for col in range(16):
        lines.hit(0, "down", 3, col, "max", severity=3)
    for row in range(8):
        lines.hit(0, "down", row, 5, "min", severity=2)
    sample = {(0, "down", row, col) for row in (0, 1, 6, 7) for col in (0, 2, 8, 11, 14)}
    random = FixtureScreen(name="random", tile=1, sites=sample).matrix(0, "down", 8, 16)
    random.hit(0, "down", 0, 0, "max", severity=3)
    random.hit(0, "down", 7, 14, "max", severity=3)
    random.hit(0, "down", 1, 2, "min", severity=3)
    for screen in (lines, random, FixtureScreen(name="tiles").matrix(0, "q", 2, 2)):
        screen.write(path)
    return path


def test_whole_lines_against_random_elements(lines_db):
    """The planted lines stand out against the random sample; the crossing lines do not."""
    result = analyze(lines_db, "lines", against="random", permutations=PERMUTATIONS).lines
    assert result.against == "random"
    found = {(t.matrix, t.axis, t.line, t.kind): t for t in result.lines}
    assert set(found) == {
        ("down", axis, line, kind)
        for axis, line in (("row", 3), ("col", 5))
        for kind in ("max", "min")
    }
    row_max, col_min = found[("down", "row", 3, "max")], found[("down", "col", 5, "min")]
    assert (row_max.tested, row_max.phenotypes) == (16, 16)
    assert (row_max.against_tested, row_max.against_phenotypes) == (20, 2)
    assert (col_min.tested, col_min.phenotypes, col_min.against_phenotypes) == (8, 8, 1)
    for planted in (row_max, col_min):
        assert planted.test.p <= 2 / (PERMUTATIONS + 1) and planted.test.z > 3
    for crossing in (found[("down", "col", 5, "max")], found[("down", "row", 3, "min")]):
        assert crossing.phenotypes == 1 and crossing.test.p > 0.1
    assert result.overall.z > 3
    severe = analyze(lines_db, "lines", against="random", min_severity=3, permutations=200).lines
    severe_col = next(t for t in severe.lines if (t.axis, t.kind) == ("col", "min"))
    assert (severe_col.phenotypes, severe_col.against_phenotypes) == (0, 1)


def test_lines_against_on_the_command_line(lines_db, capsys):
    args = ["analyze", str(lines_db), "--screen", "lines", "--permutations", "200"]
    assert main([*args, "--against", "random"]) == 0
    out = capsys.readouterr().out
    assert "whole lines against random's elements" in out
    assert "L0.down row 3" in out and "L0.down col 5" in out
    assert main([*args, "--against", "random", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["lines"]["lines"]) == 4
    for against, message in (
        ("nope", "no screen named 'nope'"),
        ("lines", "cannot compare screen 'lines' with itself"),
        ("tiles", "screen 'tiles' has no element sites"),
    ):
        assert main([*args, "--against", against]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error


def test_severity_counts_the_choice_assay_unless_text_only(tmp_path, capsys):
    """A mildly reworded answer whose assay is destroyed is a severe mutation; graded on the
    text alone it is mild."""
    screen = FixtureScreen().matrix(0, "o", 2, 2)
    screen.hit(0, "o", 0, 0, "max", severity=1, cosine=0.9)
    screen.choice_deltas[(0, "o", 0, 0, "max")] = -10
    screen.hit(0, "o", 1, 1, "min", severity=3, cosine=0.1)
    path = screen.write(tmp_path / "choice.db")
    for text_only, severe in ((False, 2), (True, 1)):
        result = analyze(path, min_severity=3, permutations=50, text_severity=text_only)
        assert result.shapes[0].phenotypes == severe, text_only
    args = ["analyze", str(path), "--min-severity", "3", "--permutations", "50"]
    assert main(args) == 0
    assert "(worst of text and choice probes)" in " ".join(capsys.readouterr().out.split())
    assert main([*args, "--text-severity"]) == 0
    assert "(text probes only)" in " ".join(capsys.readouterr().out.split())


def test_info_and_analyze_say_what_their_phenotype_counts_count(tmp_path, capsys):
    """One mutation changes a text output, another only the choice probe's answers: info
    counts both and says how many of each, analyze counts the text one and says so."""
    screen = FixtureScreen(name="counts")
    screen.matrix(0, "down", 2, 2)
    screen.hit(0, "down", 0, 0, "max", first_word="oh")
    screen.choice_deltas[(0, "down", 0, 0, "max")] = 0
    screen.choice_deltas[(0, "down", 1, 1, "min")] = -3
    path = screen.write(tmp_path / "counts.db")
    assert main(["info", str(path)]) == 0
    info = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert (
        "2 mutations changed some probe: 1 a text output (what analyze counts), "
        "1 a choice answer" in info
    )
    assert main(["analyze", str(path)]) == 0
    analyzed = " ".join(capsys.readouterr().out.split())
    assert "phenotype: a changed text output;" in analyzed
    assert "8 tested, 1 phenotypes" in analyzed
