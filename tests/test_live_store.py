"""Live runs saved as part of a live screen, and read back (also by the explorer's reads)."""

import dataclasses

import duckdb
import pytest

from mutatui.engine.sites import parse_site
from mutatui.errors import MutatuiError
from mutatui.store import catalog, queries
from mutatui.store.database import connect, initialize
from mutatui.store.live import (
    LIVE_KIND,
    LiveRunRecord,
    LiveScreenKey,
    MatrixRow,
    live_runs_at,
    read_live_runs,
    save_live_run,
)

KEY = LiveScreenKey(model="tiny", decoding="greedy", max_new_tokens=24)
MATRICES = (
    MatrixRow(0, "q", "self_attn.q_proj", 32, 32, -1.0, 1.0),
    MatrixRow(1, "down", "mlp.down_proj", 32, 64, -2.0, 2.0),
)
GRADED = {
    "changed": True,
    "diverge_at": 3,
    "edit_distance": 0.5,
    "cosine": 0.42,
    "text": "Oh my, flies!",
    "first_word": "oh",
    "empty": False,
    "repetitive": False,
    "garbage": False,
    "nonfinite": False,
    "severity": 3,
    "malignant": False,
    "style": "conversational",
    "settled_naively": False,
}


def record(**changes) -> LiveRunRecord:
    base = LiveRunRecord(
        key=KEY,
        matrices=MATRICES,
        site=parse_site("L1.down[5,7]"),
        kind="max",
        value=2.0,
        prompt="The life cycle of Drosophila:",
        status="completed",
        steps=24,
        baseline_text="The life cycle has four stages.",
        mutant_text="Oh my, flies!",
        diverge_at=3,
        first_token_seconds=0.12,
        tokens_per_second=30.0,
        elapsed_seconds=0.9,
        style="describe",
        baseline_tokens=[5, 6, 7, 8],
        graded=GRADED,
    )
    return dataclasses.replace(base, **changes)


def cancelled(**changes) -> LiveRunRecord:
    partial = {"status": "cancelled", "steps": 2, "mutant_text": "Oh", "baseline_tokens": None}
    return record(**{**partial, "graded": None, **changes})


def fetch(path, sql, *parameters):
    with connect(path, read_only=True) as connection:
        return connection.execute(sql, list(parameters)).fetchall()


def test_a_completed_run_is_a_graded_result_of_a_live_screen(tmp_path):
    db = tmp_path / "live.db"
    saved = save_live_run(db, record())
    assert (saved.run_id, saved.mutation_id, saved.probe_id) == (0, 0, 0)
    [screen] = fetch(db, "SELECT kind, name, model, decoding, max_new_tokens, status FROM screens")
    assert screen == (LIVE_KIND, KEY.name, "tiny", "greedy", 24, "complete")
    assert fetch(db, "SELECT layer, matrix, rows, cols FROM matrices ORDER BY layer") == [
        (0, "q", 32, 32),
        (1, "down", 32, 64),
    ]
    assert fetch(db, "SELECT prompt, style, baseline_text, baseline_tokens FROM probes") == [
        (
            "The life cycle of Drosophila:",
            "describe",
            "The life cycle has four stages.",
            [5, 6, 7, 8],
        )
    ]
    assert fetch(
        db, "SELECT layer, matrix, row0, row1, col0, col1, kind, value FROM mutations"
    ) == [(1, "down", 5, 6, 7, 8, "max", 2.0)]
    [result] = fetch(db, "SELECT changed, diverge_at, cosine, text, severity, style FROM results")
    assert result == (True, 3, 0.42, "Oh my, flies!", 3, "conversational")
    [run] = read_live_runs(db)
    assert (run.site, run.kind, run.status, run.mutation_id, run.probe_id) == (
        "L1.down[5,7]",
        "max",
        "completed",
        0,
        0,
    )
    assert (run.mutant_text, run.first_token_seconds, run.tokens_per_second) == (
        "Oh my, flies!",
        0.12,
        30.0,
    )


def test_the_explorer_reads_a_live_screen_like_any_screen(tmp_path):
    db = tmp_path / "live.db"
    saved = save_live_run(db, record())
    [summary] = catalog.list_screens(db)
    assert (summary.kind, summary.mutations, summary.phenotypes) == (LIVE_KIND, 1, 1)
    data = queries.load_screen(db, saved.screen_id)
    assert data.matrix_position(1, "down") is not None
    detail = queries.mutation_detail(db, saved.screen_id, saved.mutation_id)
    assert "Oh my, flies!" in repr(detail)


def test_running_a_mutation_again_replaces_its_result_and_logs_both_runs(tmp_path):
    db = tmp_path / "live.db"
    first = save_live_run(db, record())
    again = save_live_run(db, record(graded={**GRADED, "severity": 2}))
    other_prompt = save_live_run(db, record(prompt="Describe a sunset."))
    other_kind = save_live_run(db, record(kind="min", value=-2.0))
    assert again.mutation_id == first.mutation_id and again.probe_id == first.probe_id
    assert again.run_id == first.run_id + 1
    assert other_prompt.probe_id == 1 and other_prompt.mutation_id == first.mutation_id
    assert other_kind.mutation_id == 1
    assert fetch(db, "SELECT mutation_id, probe_id, severity FROM results ORDER BY ALL") == [
        (0, 0, 2),
        (0, 1, 3),
        (1, 0, 3),
    ]
    assert fetch(db, "SELECT planned_mutations FROM screens") == [(2,)]
    assert [run.run_id for run in read_live_runs(db)] == [0, 1, 2, 3]


def test_cancelled_and_failed_runs_are_logged_but_not_graded(tmp_path):
    db = tmp_path / "live.db"
    save_live_run(db, cancelled())
    save_live_run(db, cancelled(status="failed", error="exploded"))
    assert fetch(db, "SELECT count(*) FROM results") == [(0,)]
    assert fetch(db, "SELECT count(*) FROM mutations") == [(0,)]
    runs = read_live_runs(db)
    assert [(run.status, run.mutation_id, run.error) for run in runs] == [
        ("cancelled", None, None),
        ("failed", None, "exploded"),
    ]
    assert runs[0].mutant_text == "Oh"


def test_each_decoding_and_length_has_its_own_live_screen(tmp_path):
    db = tmp_path / "live.db"
    one = save_live_run(db, record())
    two = save_live_run(db, record(key=dataclasses.replace(KEY, max_new_tokens=48)))
    three = save_live_run(
        db, record(key=dataclasses.replace(KEY, decoding="sample(T=0.7, seed=0)"))
    )
    assert len({one.screen_id, two.screen_id, three.screen_id}) == 3
    assert [run.screen_id for run in read_live_runs(db, two.screen_id)] == [two.screen_id]


def test_the_live_runs_of_one_site_across_live_screens_of_its_model(tmp_path):
    db = tmp_path / "live.db"
    site = parse_site("L1.down[5,7]")
    assert live_runs_at(db, "tiny", site) == []  # no file yet
    save_live_run(db, record())
    save_live_run(db, cancelled(kind="min"))
    save_live_run(db, record(key=dataclasses.replace(KEY, max_new_tokens=48), diverge_at=None))
    save_live_run(db, record(site=parse_site("L1.down[5,8]")))  # another site
    save_live_run(db, record(site=parse_site("L1.down[5:6,7:9]")))  # a block holding it
    save_live_run(db, record(key=dataclasses.replace(KEY, model="other")))  # another model
    runs = live_runs_at(db, "tiny", site)
    assert [(run.kind, run.status, run.diverge_at) for run in runs] == [
        ("max", "completed", 3),
        ("min", "cancelled", 3),
        ("max", "completed", None),
    ]
    assert {run.site for run in runs} == {str(site)}
    assert live_runs_at(db, "nobody", site) == []


def test_live_runs_go_into_a_database_that_holds_screens(tmp_path):
    db = tmp_path / "screens.db"
    initialize(db)
    with connect(db, read_only=False) as connection:
        connection.execute(
            "INSERT INTO screens (screen_id, name, model, spec, spec_hash, decoding, max_new_tokens, status) "
            "VALUES (1, ?, 'tiny', '{}', 'x', 'greedy', 24, 'complete')",
            [KEY.name],
        )
    with pytest.raises(MutatuiError, match="is not a live screen"):
        save_live_run(db, record())
    saved = save_live_run(db, record(key=dataclasses.replace(KEY, model="other")))
    assert saved.screen_id == 2


def test_bad_records_and_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(MutatuiError, match="unknown result columns"):
        save_live_run(tmp_path / "a.db", record(graded={**GRADED, "bogus": 1}))
    foreign = tmp_path / "foreign.db"
    with duckdb.connect(str(foreign)) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(MutatuiError, match="not a mutatui database"):
        save_live_run(foreign, record())


def test_a_real_run_is_graded_like_a_screen_result_and_saved(tiny, tmp_path):
    from mutatui.engine.decoding import Decoding
    from mutatui.engine.mutations import make_mutation
    from mutatui.live.record import grade_and_save
    from mutatui.live.session import LiveRequest, LiveSession
    from mutatui.screening.grading import grade_text

    lm, catalog = tiny
    session = LiveSession(lm, catalog)
    db = tmp_path / "live.db"
    decoding = Decoding(max_new_tokens=16)
    changing = make_mutation("L1.up[0:8,0:8]", "max", catalog)
    silent = make_mutation("L0.q[0,0]", "zero", catalog)
    results = {}
    for name, mutation in (("changing", changing), ("silent", silent)):
        results[name] = session.run(LiveRequest("the cat sat", mutation, decoding), lambda _u: None)
        grade_and_save(db, session, results[name])
    cancelled_run = session.run(
        LiveRequest("the cat sat", changing, decoding), lambda _u: None, cancelled=lambda: True
    )
    grade_and_save(db, session, cancelled_run)

    changing_result = results["changing"]
    assert changing_result.diverge_at is not None
    silent_result = results["silent"]
    assert silent_result.diverge_at is None, "the test needs a silent mutation"
    rows = fetch(
        db,
        "SELECT m.kind, r.changed, r.diverge_at, r.cosine, r.text, r.severity, r.style "
        "FROM results r JOIN mutations m USING (screen_id, mutation_id) ORDER BY mutation_id",
    )
    baseline_text = lm.tokenizer.decode(changing_result.baseline.tokens)
    mutant_text = lm.tokenizer.decode(changing_result.mutant.tokens)
    expected = grade_text(
        changing_result.baseline.tokens,
        baseline_text,
        changing_result.mutant.tokens,
        mutant_text,
        stopped=changing_result.mutant.stopped,
        nonfinite=False,
        cosine=rows[0][3],
    )
    assert rows[0][:3] == ("max", True, changing_result.diverge_at)
    assert rows[0][3] is not None and -1.0 <= rows[0][3] <= 1.0
    assert rows[0][4:] == (mutant_text, expected.severity, expected.style)
    assert rows[1] == ("zero", False, None, None, None, 0, None)
    assert fetch(db, "SELECT baseline_text, baseline_tokens FROM probes") == [
        (baseline_text, changing_result.baseline.tokens)
    ]
    assert [run.status for run in read_live_runs(db)] == ["completed", "completed", "cancelled"]
    assert read_live_runs(db)[2].steps == 1


def test_a_screens_decoding_is_read_from_its_spec(tmp_path):
    import json

    from mutatui.store.live import ScreenDecoding, screen_decoding

    db = tmp_path / "screens.db"
    live = save_live_run(db, record())
    with connect(db, read_only=False) as connection:
        connection.execute(
            "INSERT INTO screens (screen_id, name, model, spec, spec_hash, decoding, max_new_tokens, status) "
            "VALUES (7, 'tiles', 'tiny', ?, 'x', 'sample(T=0.5, seed=3)', 32, 'complete')",
            [
                json.dumps(
                    {"decoding": {"mode": "sample", "temperature": 0.5, "seed": 3}, "chat": False}
                )
            ],
        )
    assert screen_decoding(db, 7) == ScreenDecoding("sample", 0.5, 3, 32, False)
    assert screen_decoding(db, live.screen_id) is None  # live screens: the defaults
    assert screen_decoding(db, 99) is None
