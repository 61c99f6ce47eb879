"""`mutatui restyle`: stored style labels recomputed from stored text and flags, on a real
DuckDB file; only the labels that the current rules give differently change."""

from __future__ import annotations

from test_store_screens import MATRICES, PROBES, new_screen

from mutatui.cli import main
from mutatui.store import screens as store
from mutatui.store.database import connect, writer_lock

LOOP = "The life cycle of a creature named\n\nThe life cycle of a creature named\n\n" * 3
POEM = "Tiny wings unfold\nin the warm fruit's heart\na life begins softly\nlike a whispered dream"
PROSE = "The fly lays its eggs on rotting fruit, and the larvae hatch a day later."
OUTCOMES = [
    # (text, repetitive, stored style): a near-loop once labelled poetic, a degenerate output
    # whatever its text, and two that keep their label
    (LOOP, False, "poetic"),
    (POEM, True, "poetic"),
    (POEM, False, "poetic"),
    (PROSE, False, "descriptive"),
]


def screened(path) -> int:
    screen_id = store.create_screen(path, new_screen(planned=len(OUTCOMES)), PROBES, MATRICES)
    mutations = [[i, 0, "q", i, i + 1, 0, 1, "max", 1.0] for i in range(len(OUTCOMES))]
    results = [
        {
            "mutation_id": i,
            "probe_id": 0,
            "changed": True,
            "diverge_at": 0,
            "text": text,
            "repetitive": repetitive,
            "style": style,
            "severity": 2,
        }
        for i, (text, repetitive, style) in enumerate(OUTCOMES)
    ]
    results.append({"mutation_id": 0, "probe_id": 1, "changed": False, "choice_score": 3})
    store.write_batch(path, screen_id, mutations, results, 1.0)
    return screen_id


def styles(path) -> list[str | None]:
    with connect(path, read_only=True) as connection:
        rows = connection.execute(
            "SELECT style FROM results ORDER BY mutation_id, probe_id"
        ).fetchall()
    return [style for (style,) in rows]


def test_restyle_relabels_only_what_the_rules_now_say_differently(tmp_path, capsys):
    db = tmp_path / "old.db"
    screened(db)
    before = styles(db)
    assert main(["restyle", str(db), "--dry-run"]) == 0
    assert "s: would relabel 2 of 4 changed outcomes (poetic -> other 2)" in capsys.readouterr().err
    assert styles(db) == before
    assert main(["restyle", str(db)]) == 0
    assert "s: relabelled 2 of 4" in capsys.readouterr().err
    assert styles(db) == ["other", None, "other", "poetic", "descriptive"]
    assert main(["restyle", str(db), "--screen", "s"]) == 0
    assert "s: relabelled 0 of 4 changed outcomes\n" in capsys.readouterr().err


def test_restyle_refuses_a_database_a_screen_is_writing(tmp_path, capsys):
    db = tmp_path / "busy.db"
    screened(db)
    with writer_lock(db):
        assert main(["restyle", str(db)]) == 2
    assert "another screen is writing" in capsys.readouterr().err
    assert styles(db)[0] == "poetic"


def test_bad_screen_or_path_is_one_line(tmp_path, capsys):
    db = tmp_path / "one.db"
    screened(db)
    assert main(["restyle", str(db), "--screen", "nope"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mutatui: no screen named 'nope' in {db}; screens: s"
    )
    assert main(["restyle", str(tmp_path / "missing.db")]) == 2
    assert "no such database" in capsys.readouterr().err
