"""`mutatui import-paper`: Hu et al.'s supplementary files, as published, into screens of the
kind `published` (held to small copies of the files built here: `paper_fixtures`); broken
copies refused one line per problem with nothing written."""

from __future__ import annotations

import duckdb
import pytest
from paper_fixtures import write_paper

from mutatui.cli import main
from mutatui.store.published import experiment_counts, published_outputs


def rows(db, query, parameters=()):
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute(query, list(parameters)).fetchall()


@pytest.fixture
def imported(tmp_path):
    folder = write_paper(tmp_path / "paper")
    db = tmp_path / "paper.db"
    assert main(["import-paper", str(folder), "--db", str(db)]) == 0
    return db


def test_the_published_screens_carry_the_models_shapes_and_every_published_number(imported, capsys):
    db = imported
    screens = rows(db, "SELECT screen_id, name, kind, model FROM screens ORDER BY screen_id")
    assert [row[1:] for row in screens] == [
        ("hu2024-llama2-7b", "published", "meta-llama/Llama-2-7b-hf"),
        ("hu2024-zephyr", "published", "HuggingFaceH4/zephyr-7b-beta"),
    ]
    shapes = {
        (screen, matrix): (height, width)
        for screen, matrix, height, width in rows(
            db, "SELECT screen_id, matrix, rows, cols FROM matrices WHERE layer = 3"
        )
    }
    assert shapes[(1, "down")] == (4096, 11008) and shapes[(2, "down")] == (4096, 14336)
    assert shapes[(1, "k")] == (4096, 4096) and shapes[(2, "k")] == (1024, 4096)  # 8 kv heads
    assert len(rows(db, "SELECT 1 FROM matrices WHERE screen_id = 1")) == 32 * 7
    # Table 2: the tile of 0.mlp.down (2, 171) is rows 128:192, columns 10944:11008
    tile = rows(
        db,
        "SELECT m.row0, m.row1, m.col0, m.col1, m.kind, r.choice_score, r.destructive, "
        "r.severity FROM mutations m JOIN results r USING (screen_id, mutation_id) "
        "JOIN probes p USING (screen_id, probe_id) WHERE m.screen_id = 1 AND m.matrix = 'down' "
        "AND p.kind = 'choice'",
    )
    assert tile == [(128, 192, 10944, 11008, "max", 2, True, 3)]
    silent = rows(
        db,
        "SELECT r.changed, r.cosine FROM results r JOIN mutations m USING (screen_id, "
        "mutation_id) WHERE r.screen_id = 1 AND r.probe_id = 0 AND m.col0 = 22 * 64",
    )
    assert silent == [(False, None)]  # "standard": silent on Drosophila
    malignant = rows(db, "SELECT count(DISTINCT mutation_id) FROM results WHERE malignant")
    assert malignant == [(4,)]  # destructive and a Drosophila cosine of at most 0.5
    counts = {e.name: e for e in experiment_counts(db, 1)}
    assert list(counts) == ["Python0", "Drosophila", "Mmlu21"]
    assert counts["Drosophila"].nsms[(0, "down")] == 7 and counts["Drosophila"].totals["min"] == 1
    assert counts["Mmlu21"].type == "multiple choice question"
    assert main(["info", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "Hu et al." in shown and "Python0, Drosophila, Mmlu21" in shown


def test_writers_keep_the_authors_labels_and_first_words(imported):
    db = imported
    outputs = {(o.writer, o.source, o.input_index): o for o in published_outputs(db, 2)}
    assert outputs[("B", "table3", 0)].style == "poem"  # green
    assert outputs[("B", "table3", 1)].style == "dialogue"  # yellow
    assert outputs[("C", "table3", 0)].style == "narrative"  # blue
    assert outputs[("C", "table3", 1)].style == "other"  # white
    assert outputs[("B", "table3", 0)].first_word == "staring"
    assert outputs[("standard", "document2a", 1)].first_word == "it"
    assert outputs[("1.down (0,38) minimum", "document2b", 2)].first_word == "staring"
    assert outputs[("1.down (0,38) minimum", "document2b", 1)].text is not None
    writers = dict(
        rows(db, "SELECT writer, mutation_id FROM published_writers WHERE source = 'table3'")
    )
    assert writers["A"] is None  # the standard model
    # Table 3's C is Table 2's 1.mlp.down (0, 133): one mutation, both records
    assert (
        writers["C"]
        == rows(db, "SELECT mutation_id FROM mutations WHERE screen_id = 2 AND col0 = 133 * 64")[0][
            0
        ]
    )
    style = rows(
        db,
        "SELECT r.style, r.first_word FROM results r WHERE r.screen_id = 2 AND r.mutation_id = "
        "? AND r.probe_id = 0",
        [writers["B"]],
    )
    # the results speak mutatui's styles (the writers view reads them); the outputs above keep
    # the authors' words
    assert style == [("poetic", "staring")]


def test_without_texts_only_numbers_labels_and_first_words_are_kept(tmp_path):
    folder = write_paper(tmp_path / "paper")
    db = tmp_path / "lean.db"
    assert main(["import-paper", str(folder), "--db", str(db), "--no-texts"]) == 0
    assert rows(db, "SELECT count(text) FROM published_outputs") == [(0,)]
    assert rows(db, "SELECT count(text) FROM results") == [(0,)]
    assert rows(db, "SELECT count(first_word) FROM published_outputs")[0][0] > 0


@pytest.mark.parametrize(
    ("breaks", "said"),
    [
        ({"drop_sheet": "Zephyr_total_NSMs"}, "no sheet 'Zephyr_total_NSMs'"),
        ({"tile": ("1.attn.k", "max", 16, 3, 0, "Y", 0.3)}, "tile (16, 3) outside 1.k"),
        ({"total": 99}, "Python0: the matrices sum to 15 NSMs, the total is 100"),
        ({"kind": "maxx"}, "type 'maxx' is neither max, min nor zero"),
    ],
)
def test_broken_files_are_refused_one_line_per_problem_with_nothing_written(
    tmp_path, capsys, breaks, said
):
    folder = write_paper(tmp_path / "paper", **breaks)
    db = tmp_path / "broken.db"
    assert main(["import-paper", str(folder), "--db", str(db)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(said in line for line in lines), lines
    assert lines[-1].endswith("nothing was written")
    assert all(len(line) < 400 for line in lines)
    assert not db.exists()


def test_a_second_import_is_refused_unless_replaced_and_a_folder_without_the_files(
    imported, tmp_path, capsys
):
    folder = write_paper(tmp_path / "again")
    assert main(["import-paper", str(folder), "--db", str(imported)]) == 2
    assert "--replace imports it again" in capsys.readouterr().err
    assert main(["import-paper", str(folder), "--db", str(imported), "--replace"]) == 0
    assert rows(imported, "SELECT count(*) FROM screens") == [(2,)]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["import-paper", str(empty), "--db", str(tmp_path / "x.db")]) == 2
    assert "holds none of the supplementary files" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
