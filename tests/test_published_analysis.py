"""`mutatui analyze` on published screens (the paper's claims on its own tables, and what they
cannot answer) and stripes on every screen, with super weights where their coordinates are
known: held to small copies of the paper's files (`paper_fixtures`), planted screens
(`analysis_fixtures`) and the bundled screens."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from analysis_fixtures import FixtureScreen
from paper_fixtures import write_paper

from mutatui.analysis.depth import band_label, depth_band, relative_depth
from mutatui.analysis.published import analyze_published
from mutatui.analysis.published_styles import grade_published_styles
from mutatui.analysis.report import analyze
from mutatui.analysis.stripes import majority_chance
from mutatui.cli import main
from mutatui.store.frames import pick_screen
from mutatui.store.guided import SuperweightResult, save_superweights

BUNDLED = Path(__file__).resolve().parents[1] / "screens.db"
SUPER_COLUMN = 7310 // 64
"""The tile column of Mistral-7B-v0.1's super weight (L1.down[2070, 7310]), Zephyr's base."""
RESIDUAL_TILE = 2070 // 64
"""The tile column of v matrices over residual channel 2070."""


def zephyr_tiles() -> list[tuple]:
    """Table 2 rows: a whole column of L1.down min tiles through the super weight, 40 of 64
    tiles of another column (a stripe), 30 of a third (not one), 10 of 16 tiles of L2.v's
    column over the super weight's residual channel (a stripe elsewhere on its channel)."""
    rows = [("1.mlp.down", "min", row, SUPER_COLUMN, 3, "Y", 0.2) for row in range(64)]
    rows += [("1.mlp.down", "min", row, 20, 5, "N", 0.4) for row in range(40)]
    rows += [("1.mlp.down", "min", row, 21, 5, "N", 0.4) for row in range(1, 31)]
    rows += [("2.attn.v", "max", row, RESIDUAL_TILE, 6, "N", 0.5) for row in range(10)]
    return rows


def llama_tiles() -> list[tuple]:
    """41 L5.gate max tiles, one per tile row and per tile column: spread, not clustered."""
    return [("5.mlp.gate", "max", 2 * row, row, 8, "N", 0.9) for row in range(41)]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("paper")
    write_paper(folder / "files", tiles={"Zephyr": zephyr_tiles(), "Llama2-7b": llama_tiles()})
    db = folder / "paper.db"
    assert main(["import-paper", str(folder / "files"), "--db", str(db)]) == 0
    return db


def rows(db: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute(query).fetchall()


def published_analysis(db: Path, name: str):
    return analyze_published(db, pick_screen(db, name), permutations=200, seed=0)


def claim(result, name: str):
    (found,) = [c for c in result.claims if c.claim == name]
    return found


def test_relative_depth_puts_layers_of_models_of_any_depth_in_fifths():
    assert relative_depth(0, 32) == pytest.approx(1 / 64)
    assert [depth_band(layer, 30) for layer in (0, 5, 6, 29)] == [0, 0, 1, 4]
    assert [depth_band(layer, 32) for layer in (0, 5, 6, 31)] == [0, 0, 1, 4]
    assert band_label(0) == "0-20%" and band_label(4) == "80-100%"


def test_table1_gives_the_nsm_rate_of_every_experiment_by_type_and_depth(published):
    result = published_analysis(published, "hu2024-llama2-7b")
    assert [e.name for e in result.experiments] == ["Python0", "Drosophila", "Mmlu21"]
    drosophila = result.experiments[1]
    by_type = {row.matrix: row for row in drosophila.by_type}
    # the fixture's Llama matrices with NSMs: L0.q 5, L0.down 7, L1.v 3, in every experiment
    assert by_type["q"].tiles == 32 * 64 * 64
    assert by_type["q"].nsms == 5
    assert by_type["q"].rate == pytest.approx(5 / (32 * 64 * 64 * 3))
    assert by_type["down"].tiles == 32 * 64 * 172
    assert by_type["down"].nsms == 7
    assert by_type["k"].nsms == 0
    # no zero NSMs in the fixture's totals: the max-and-min rate is exact
    low, high = by_type["down"].max_min
    assert low == high == pytest.approx(7 / (2 * 32 * 64 * 172))
    first = drosophila.by_depth[0]
    assert (first.band, first.layers, first.nsms) == ("0-20%", "0-5", 15)
    assert sum(band.nsms for band in drosophila.by_depth) == 15
    assert drosophila.rate_by_kind["max"] == pytest.approx(
        14 / sum(r.tiles for r in by_type.values())
    )


def test_the_selection_is_counted_against_every_tile_of_its_type(published):
    result = published_analysis(published, "hu2024-zephyr")
    rows = {(row.matrix, row.kind): row for row in result.selection_rows}
    # three table rows of the fixture plus the planted ones
    assert rows[("down", "min")].listed == 1 + 64 + 40 + 30
    assert rows[("down", "min")].destructive == 1 + 64
    assert rows[("down", "min")].tiles == 32 * 64 * 224
    assert rows[("v", "max")].listed == 10
    assert result.listed == sum(row.listed for row in result.selection_rows)


def test_a_whole_column_is_a_stripe_through_the_super_weight_and_its_channel(published):
    stripes = published_analysis(published, "hu2024-zephyr").stripes
    found = {stripe.label: stripe for stripe in stripes.stripes}
    column = found[f"L1.down min col {SUPER_COLUMN}"]
    assert (column.phenotypes, column.sites, column.channels) == (64, 64, "intermediate 7296-7359")
    assert found["L1.down min col 20"].share == pytest.approx(40 / 64)
    assert "L1.down min col 21" not in found  # 30 of 64: not most
    v_stripe = found[f"L2.v max col {RESIDUAL_TILE}"]
    assert (v_stripe.sites, v_stripe.channels) == (16, "residual 2048-2111")
    assert stripes.expected < 1e-3
    (weight,) = stripes.super_weights
    assert weight.weight.site == "L1.down[2070,7310]"
    assert [s.label for s in weight.own] == [f"L1.down min col {SUPER_COLUMN}"]
    assert [s.label for s in weight.channel] == [f"L2.v max col {RESIDUAL_TILE}"]


def test_clustering_is_found_where_tiles_line_up_and_not_where_they_spread(published):
    zephyr = published_analysis(published, "hu2024-zephyr")
    lined_up = claim(zephyr, "clustering on columns")
    assert lined_up.testable and lined_up.result.p < 0.01 and lined_up.result.z > 10
    llama = published_analysis(published, "hu2024-llama2-7b")
    # one tile per row and per column: fewer squared counts than tiles placed at random
    for axis in ("rows", "columns"):
        spread = claim(llama, f"clustering on {axis}")
        assert spread.result.z < 0 and spread.result.p > 0.5


def test_writers_and_what_the_tables_cannot_answer(published):
    llama = published_analysis(published, "hu2024-llama2-7b")
    writers = claim(llama, "writers share rows")
    assert not writers.testable and "no writers" in writers.data
    zephyr = published_analysis(published, "hu2024-zephyr")
    writers = claim(zephyr, "writers share rows")
    # the fixture's two writers sit in one matrix: no pair across matrices to share a row
    assert writers.testable and writers.result.observed == 0 and writers.result.p == 1
    untestable = [c.claim for c in zephyr.claims if not c.testable]
    assert "max-only and min-only matrices" in untestable
    assert any("other experiments" in name for name in untestable)


def test_the_command_prints_the_published_report_and_refuses_a_computed_screens_options(
    published, capsys
):
    assert (
        main(["analyze", str(published), "--screen", "hu2024-zephyr", "--permutations", "50"]) == 0
    )
    out = capsys.readouterr().out
    assert "Drosophila (description), Table 1" in out
    assert "cannot be tested" in out
    assert "super weight L1.down[2070,7310]" in out
    assert f"L1.down min col {SUPER_COLUMN}" in out
    code = main(["analyze", str(published), "--screen", "hu2024-zephyr", "--min-severity", "3"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-severity cannot apply" in err[0]
    assert main(["analyze", str(published), "--screen", "hu2024-llama2-7b", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["listed"] == 4 + len(llama_tiles())
    assert {c["claim"] for c in document["claims"]} >= {"clustering on rows", "writers share rows"}


def test_a_computed_screen_finds_the_stripe_planted_through_its_own_super_weight(tmp_path):
    db = tmp_path / "screen.db"
    screen = FixtureScreen(name="tiles").matrix(0, "down", 4, 6).matrix(1, "down", 4, 6)
    for col in range(6):
        screen.hit(0, "down", 2, col, "max")  # a whole tile row
    for col in range(3):
        screen.hit(1, "down", 2, col, "max")  # half of one: not most
    screen.write(db)
    save_superweights(
        db,
        model="fixture",
        probe_text="x",
        prompt="x",
        decoding="greedy",
        max_new_tokens=8,
        baseline_perplexity=10.0,
        baseline_text="x",
        results=[
            SuperweightResult(0, 0, "down", 130, 7, 1.0, 1.0, 1.0, 9.0, 0, 500.0, True, 0, "y"),
            SuperweightResult(1, 1, "down", 131, 9, 1.0, 1.0, 1.0, 2.0, 0, 12.0, True, 0, "z"),
        ],
    )
    stripes = analyze(db, "tiles", permutations=20).stripes
    assert [s.label for s in stripes.stripes] == ["L0.down max row 2"]
    assert stripes.stripes[0].channels == "residual 128-191"
    (weight,) = stripes.super_weights  # the second candidate barely moved the perplexity
    assert weight.weight.site == "L0.down[130,7]"
    assert [s.label for s in weight.own] == ["L0.down max row 2"]


def test_majority_chance_is_a_binomial_tail():
    assert majority_chance(4, 0.5) == pytest.approx(5 / 16)
    assert majority_chance(24, 0.0) == 0.0 and majority_chance(24, 1.0) == 1.0
    assert majority_chance(1536, 0.4) < 1e-12


@pytest.mark.skipif(not BUNDLED.exists(), reason="no bundled screens.db")
def test_the_bundled_tile_screen_has_severe_stripes_through_smollm2s_super_weight():
    result = analyze(BUNDLED, "tiles-64", permutations=20, min_severity=3)
    stripes = result.stripes
    # per layer and kind, lines of at least 4 tiles: q and o 9 rows and 9 columns each; k and
    # v 3 rows (their columns hold 3 tiles); gate, up and down 24 + 9
    assert stripes.lines == 30 * 2 * (18 + 3 + 3 + 18 + 3 * 33)
    assert stripes.stripes and all(s.share > 0.5 for s in stripes.stripes)
    (weight,) = stripes.super_weights
    assert weight.weight.site == "L11.down[507,1229]"
    assert weight.own
    assert all(s.layer == 11 and s.matrix == "down" for s in weight.own)
    assert all(s.start <= (507 if s.axis == "row" else 1229) < s.stop for s in weight.own)


def test_restyle_sets_the_grader_against_the_authors_labels_and_writes_nothing(published, capsys):
    before = rows(published, "SELECT mutation_id, probe_id, style FROM results ORDER BY ALL")
    assert main(["restyle", str(published), "--screen", "hu2024-zephyr"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "poem as poetic and dialogue as conversational: 2 of 3" in out
    assert "writer or not (a coloured cell; poetic or conversational): 4 of 6" in out
    assert "first-word groups, ours: 'staring': 2" in out
    graded = grade_published_styles(published, 2, "hu2024-zephyr")
    confusion = graded.agreement.confusion
    # the fixture's cells: a three-line rhyme (poem), a greeting in the second person
    # (dialogue), four words (narrative), a plain sentence and three words (other) and a
    # one-line question the authors coloured as a poem
    assert confusion["poem"] == {"poetic": 1, "conversational": 0, "descriptive": 1, "other": 0}
    assert confusion["dialogue"]["conversational"] == 1
    assert confusion["narrative"]["other"] == 1
    assert confusion["other"] == {"poetic": 0, "conversational": 0, "descriptive": 1, "other": 1}
    standard, *writers = graded.writers
    assert (standard.writer, standard.word, standard.outputs) == ("standard", "it", 3)
    assert {w.writer: w.published for w in writers} == {
        "1.down (0,38) minimum": "staring",
        "1.down (0,133) minimum": "staring",
    }
    assert graded.published_groups == {
        "staring": ["B (1.down (0,38) minimum)", "C (1.down (0,133) minimum)"]
    }
    assert (
        rows(published, "SELECT mutation_id, probe_id, style FROM results ORDER BY ALL") == before
    )
    # every screen: published ones keep their labels, said so
    assert main(["restyle", str(published)]) == 0
    assert "keeps its authors' labels" in capsys.readouterr().err
    assert (
        rows(published, "SELECT mutation_id, probe_id, style FROM results ORDER BY ALL") == before
    )


def test_restyle_needs_the_texts_a_no_texts_import_leaves_out(tmp_path, capsys):
    folder = write_paper(tmp_path / "files")
    db = tmp_path / "numbers.db"
    assert main(["import-paper", str(folder), "--db", str(db), "--no-texts"]) == 0
    capsys.readouterr()
    assert main(["restyle", str(db), "--screen", "hu2024-zephyr"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "without its texts" in line


@pytest.mark.skipif(not BUNDLED.exists(), reason="no bundled screens.db")
def test_the_bundled_tiles_by_relative_depth_and_their_destructive_choices():
    shape = analyze(BUNDLED, "tiles-64", permutations=20).shapes[0]
    # 30 layers in fifths of 6; 864 tiles a layer (SmolLM2's seven matrices), per kind
    assert [row.key for row in shape.by_depth if row.kind == "max"] == [
        "0-20%",
        "20-40%",
        "40-60%",
        "60-80%",
        "80-100%",
    ]
    assert {row.tested for row in shape.by_depth} == {6 * 864}
    destructive = rows(
        BUNDLED,
        "SELECT count(DISTINCT mutation_id) FROM results r JOIN screens s USING (screen_id) "
        "WHERE s.name = 'tiles-64' AND r.destructive",
    )[0][0]
    assert destructive > 0
    assert sum(row.destructive for row in shape.by_type) == destructive
