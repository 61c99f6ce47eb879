"""The screen store on real DuckDB files: schema versions, batches, the writer lock, merge,
export and summaries. (End-to-end screens with a model are in test_screen_run.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pytest

from mutatui import cli
from mutatui.errors import MutatuiError
from mutatui.store import catalog, queries
from mutatui.store import export as exporting
from mutatui.store import merge as merging
from mutatui.store import screens as store
from mutatui.store.database import (
    attach_read_only,
    check_readable,
    connect,
    copy_database,
    initialize,
    lock_path,
    wal_path,
    writer_alive,
    writer_lock,
)
from mutatui.store.schema import SCHEMA_VERSION

PROBES = [
    {
        "probe_id": 0,
        "name": "fly",
        "kind": "text",
        "style": "describe",
        "prompt": "The life cycle of Drosophila:",
        "baseline_text": "Eggs, larvae",
        "baseline_tokens": [5, 6, 7],
    },
    {
        "probe_id": 1,
        "name": "choice",
        "kind": "choice",
        "prompt": "default",
        "baseline_score": 3,
        "questions": 5,
    },
]
MATRICES = [
    {
        "layer": 0,
        "matrix": "q",
        "module_path": "model.layers.0.self_attn.q_proj",
        "rows": 8,
        "cols": 8,
        "min": -1.0,
        "max": 1.0,
    }
]


def new_screen(name="s", shard=None, planned=10, spec_hash="h1") -> store.NewScreen:
    return store.NewScreen(
        name=name,
        model="tiny",
        spec='{"model": "tiny"}',
        spec_hash=spec_hash,
        decoding="greedy",
        max_new_tokens=8,
        shard=shard,
        planned_mutations=planned,
    )


def batch(ids):
    mutations = [[i, 0, "q", i % 8, i % 8 + 1, 0, 1, "max", 1.0] for i in ids]
    results = []
    for i in ids:
        changed = i % 3 == 0
        results.append(
            {
                "mutation_id": i,
                "probe_id": 0,
                "changed": changed,
                "diverge_at": 1 if changed else None,
                "text": f"mutant {i}" if changed else None,
                "severity": 2 if changed else 0,
            }
        )
        results.append(
            {
                "mutation_id": i,
                "probe_id": 1,
                "changed": False,
                "choice_score": 3,
                "choice_delta": 0,
            }
        )
    return mutations, results


def rows(path, query):
    with connect(path, read_only=True) as connection:
        return connection.execute(query).fetchall()


def test_new_database_gets_the_schema_version(tmp_path):
    db = tmp_path / "a.db"
    initialize(db)
    check_readable(db)
    assert rows(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


def _set_version(db, value):
    initialize(db)
    with connect(db, read_only=False) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [value])


def test_newer_schema_version_is_refused(tmp_path):
    db = tmp_path / "new.db"
    _set_version(db, str(SCHEMA_VERSION + 1))
    for action in (initialize, check_readable):
        with pytest.raises(MutatuiError, match=r"newer than this mutatui .*upgrade mutatui"):
            action(db)


def test_version_zero_is_refused_with_the_reason(tmp_path):
    db = tmp_path / "old.db"
    _set_version(db, "0")
    for action in (initialize, check_readable):  # one rule for readers and writers
        with pytest.raises(MutatuiError, match="schema version 0; this mutatui reads and writes"):
            action(db)


def test_unknown_version_is_refused_with_the_reason(tmp_path):
    db = tmp_path / "odd.db"
    _set_version(db, "v-one")
    with pytest.raises(MutatuiError, match="unknown schema version 'v-one'"):
        check_readable(db)


def test_foreign_duckdb_file_is_not_taken_over(tmp_path):
    db = tmp_path / "other.db"
    connection = duckdb.connect(str(db))
    connection.execute("CREATE TABLE sales (x INTEGER)")
    connection.close()
    with pytest.raises(MutatuiError, match="not a mutatui database"):
        initialize(db)


def test_batches_commit_mutations_and_results_together(tmp_path):
    db = tmp_path / "s.db"
    screen_id = store.create_screen(db, new_screen(), PROBES, MATRICES)
    assert store.resume_point(db, screen_id) == 0
    store.write_batch(db, screen_id, *batch(range(4)), 0.5)
    store.write_batch(db, screen_id, *batch(range(4, 6)), 0.25)
    assert store.resume_point(db, screen_id) == 6
    assert store.phenotype_count(db, screen_id) == 2  # ids 0 and 3
    assert rows(db, "SELECT count(*) FROM results") == [(12,)]
    assert rows(db, "SELECT elapsed_seconds FROM screens") == [(0.75,)]
    # text only for changed outputs
    assert rows(db, "SELECT count(*) FROM results WHERE text IS NOT NULL") == [(2,)]
    stored = store.load_probes(db, screen_id)
    assert stored[0]["baseline_tokens"] == [5, 6, 7] and stored[1]["baseline_score"] == 3
    # a failing batch leaves nothing behind: a duplicate id aborts the whole transaction
    with pytest.raises(duckdb.Error):
        store.write_batch(db, screen_id, *batch([6, 7, 5]), 1.0)
    assert store.resume_point(db, screen_id) == 6
    assert rows(db, "SELECT count(*) FROM results") == [(12,)]


def test_a_second_screen_with_the_same_name_is_refused(tmp_path):
    db = tmp_path / "s.db"
    store.create_screen(db, new_screen(), PROBES, MATRICES)
    with pytest.raises(MutatuiError, match="already has a screen named 's'; use --resume"):
        store.create_screen(db, new_screen(), PROBES, MATRICES)


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from mutatui.store.database import writer_lock
    with writer_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


def test_writer_lock_refuses_a_second_writer_and_dies_with_its_process(tmp_path):
    db = tmp_path / "s.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert writer_alive(db)
        assert store.live_status(db, "running") == "running"
        refused = pytest.raises(MutatuiError, match=f"another screen is writing .*pid {holder.pid}")
        with refused, writer_lock(db):
            pass
        link = tmp_path / "link.db"
        link.symlink_to(db)  # another name of the same file takes the same lock
        refused = pytest.raises(MutatuiError, match=f"another screen is writing .*pid {holder.pid}")
        with refused, writer_lock(link):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(db).exists()
    assert not writer_alive(db)
    assert store.live_status(db, "running") == "interrupted"
    with writer_lock(db):
        assert writer_alive(db)
    assert not lock_path(db).exists()  # its holder removes it


# a screen's writer between batches: the file held open for writing, then let go
HOLD_OPEN = textwrap.dedent(
    """
    import sys, time, duckdb
    connection = duckdb.connect(sys.argv[1])
    print("held", flush=True)
    time.sleep(1.5)
    connection.close()
    time.sleep(60)
    """
)


def test_merge_waits_for_a_writer_holding_its_input(tmp_path):
    source = _shard_db(tmp_path / "running.db", None, [1, 2, 3], status="running")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(source)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        reader = duckdb.connect()
        with pytest.raises(duckdb.Error):  # what a plain ATTACH meets now
            reader.execute(f"ATTACH '{source}' AS s (READ_ONLY)")
        attach_read_only(reader, source, "s")  # merge's attach: retried until the writer lets go
        assert reader.execute("SELECT count(*) FROM s.mutations").fetchone() == (3,)
        reader.close()
        assert merging.merge(tmp_path / "out.db", [source]) == [("s", 3)]
    finally:
        holder.kill()
        holder.wait()


# a writer that dies after committing, before DuckDB folds its log into the file
DIE_BEFORE_CHECKPOINT = """
import os, sys, duckdb
connection = duckdb.connect(sys.argv[1])
connection.execute("PRAGMA disable_checkpoint_on_shutdown")
connection.execute("SET wal_autocheckpoint = '1GB'")
connection.execute("UPDATE screens SET status = 'interrupted'")
os._exit(0)
"""


def test_a_copy_holds_what_a_killed_writer_left_in_its_log(tmp_path):
    db = _shard_db(tmp_path / "s.db", None, [1, 2, 3])
    subprocess.run([sys.executable, "-c", DIE_BEFORE_CHECKPOINT, str(db)], check=True)
    assert wal_path(db).exists()
    copy = tmp_path / "copy.db"
    copy_database(db, copy)
    assert not wal_path(copy).exists()
    assert rows(copy, "SELECT status FROM screens") == [("interrupted",)]
    assert _dump(copy) == _dump(db)
    assert wal_path(db).exists()  # the source is left as it was


def _shard_db(path, shard, ids, status="complete", planned=None, tokens=(5, 6, 7)):
    probes = [dict(PROBES[0], baseline_tokens=list(tokens)), PROBES[1]]
    screen_id = store.create_screen(
        path, new_screen(shard=shard, planned=planned or len(ids)), probes, MATRICES
    )
    store.write_batch(path, screen_id, *batch(ids), 1.0)
    store.set_status(path, screen_id, status)
    return path


def _dump(path):
    return {
        "mutations": rows(path, "SELECT * EXCLUDE (screen_id) FROM mutations ORDER BY mutation_id"),
        "results": rows(
            path, "SELECT * EXCLUDE (screen_id) FROM results ORDER BY mutation_id, probe_id"
        ),
    }


def test_merge_of_shards_equals_the_whole_and_never_duplicates(tmp_path):
    whole = _shard_db(tmp_path / "whole.db", None, list(range(10)))
    one = _shard_db(tmp_path / "one.db", "1/2", [0, 1, 2, 6, 7])
    running = _shard_db(tmp_path / "running.db", "2/2", [3, 4, 5], status="running", planned=5)
    two = _shard_db(tmp_path / "two.db", "2/2", [3, 4, 5, 8, 9])
    out = tmp_path / "out.db"
    assert merging.merge(out, [one]) == [("s", 5)]
    assert rows(out, "SELECT shard, status, planned_mutations FROM screens") == [
        ("1/2", "interrupted", 5)
    ]
    assert merging.merge(out, [running, one]) == [("s", 3)]
    # every part is in, but the second was still running: the merged screen is not complete
    assert rows(out, "SELECT shard, status, planned_mutations FROM screens") == [
        (None, "interrupted", 10)
    ]
    # merged again once it finished, it is
    assert merging.merge(out, [two]) == [("s", 2)]
    assert _dump(out) == _dump(whole)
    assert rows(out, "SELECT status FROM screens") == [("complete",)]
    # merging again adds nothing
    assert merging.merge(out, [one, two]) == [("s", 0)]
    assert _dump(out) == _dump(whole)
    # nor time: the first merge of each part counted its one second of screening
    assert rows(out, "SELECT elapsed_seconds FROM screens") == [(2.0,)]
    # physical order follows mutation_id, so per-matrix reads stay contiguous
    ids = [r[0] for r in rows(out, "SELECT mutation_id FROM mutations")]
    assert ids == sorted(ids)


def test_merge_complete_shards_gives_a_complete_screen(tmp_path, capsys):
    one = _shard_db(tmp_path / "one.db", "1/2", [0, 1])
    two = _shard_db(tmp_path / "two.db", "2/2", [2, 3])
    out = tmp_path / "out.db"
    merging.merge(out, [one, two])
    assert rows(out, "SELECT shard, status FROM screens") == [(None, "complete")]
    # also when the parts come one merge at a time
    one_by_one = tmp_path / "one_by_one.db"
    merging.merge(one_by_one, [one])
    assert rows(one_by_one, "SELECT shard, status FROM screens") == [("1/2", "interrupted")]
    # the explorer says it holds only some of the spec's parts
    (listed,) = catalog.list_screens(one_by_one)
    assert listed.state == "interrupted, 1 of 2 parts (1)"
    # and so does `mutatui info`, whose share is of the parts' plan, not the spec's
    assert cli.main(["info", str(one_by_one)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "1 of 2 parts (1)" in shown and "2 of 2 planned in these parts (100.0%)" in shown
    assert queries.load_screen(one_by_one, listed.screen_id).summary.state == listed.state
    merging.merge(one_by_one, [two])
    assert rows(one_by_one, "SELECT shard, status FROM screens") == [(None, "complete")]
    assert catalog.list_screens(one_by_one)[0].state == "complete"


def test_parts_held_are_described_with_runs_shortened_to_ranges():
    assert merging.describe_parts(frozenset({1}), 2) == "1 of 2 parts (1)"
    assert merging.describe_parts(frozenset({3, 1, 2, 7}), 54) == "4 of 54 parts (1-3, 7)"
    assert merging.describe_parts(frozenset({5, 9, 10}), 54) == "3 of 54 parts (5, 9-10)"


def test_merge_refuses_disagreeing_parts(tmp_path):
    one = _shard_db(tmp_path / "one.db", "1/2", [0, 1])
    other_model = _shard_db(tmp_path / "two.db", "2/2", [2, 3], tokens=(9, 9))
    with pytest.raises(MutatuiError, match="disagree on probes or baselines"):
        merging.merge(tmp_path / "out.db", [one, other_model])
    other_spec = tmp_path / "spec.db"
    store.create_screen(other_spec, new_screen(spec_hash="h2"), PROBES, MATRICES)
    out = tmp_path / "out2.db"
    merging.merge(out, [one])
    with pytest.raises(MutatuiError, match="different spec; merge refused"):
        merging.merge(out, [other_spec])
    with pytest.raises(MutatuiError, match="is the output"):
        merging.merge(out, [out])


def test_merge_refuses_what_it_cannot_account_for(tmp_path):
    """A part sharing some but not all of its parts with the output: its plan and time cannot
    be split by part, so nothing is merged."""
    one = _shard_db(tmp_path / "one.db", "1/3", [0, 1])
    one_two = _shard_db(tmp_path / "one_two.db", "1,2/3", [0, 1, 2, 3])
    out = tmp_path / "out.db"
    merging.merge(out, [one])
    before = _dump(out)
    with pytest.raises(MutatuiError, match="holds some parts that are merged already"):
        merging.merge(out, [one_two])
    with pytest.raises(MutatuiError, match="holds some parts that are merged already"):
        merging.merge(tmp_path / "fresh.db", [one, one_two])
    whole = _shard_db(tmp_path / "whole.db", None, [0, 1, 2, 3, 4, 5])
    with pytest.raises(MutatuiError, match="holds some parts that are merged already"):
        merging.merge(out, [whole])
    assert _dump(out) == before
    assert rows(out, "SELECT shard, planned_mutations FROM screens") == [("1/3", 2)]
    # a complete whole run holds every part: merging a part into it adds nothing
    assert merging.merge(whole, [one]) == [("s", 0)]
    assert rows(whole, "SELECT shard, status, elapsed_seconds FROM screens") == [
        (None, "complete", 1.0)
    ]


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_export_reads_back(tmp_path, file_format):
    db = _shard_db(tmp_path / "s.db", None, list(range(6)))
    out = tmp_path / f"results.{file_format}"
    assert exporting.export_table(db, "results", file_format, out) == 12
    reader = "read_parquet" if file_format == "parquet" else "read_csv_auto"
    back = duckdb.sql(f"SELECT count(*), count(text) FROM {reader}(?)", params=[str(out)])
    assert back.fetchall() == [(12, 2)]
    with pytest.raises(MutatuiError, match="unknown table 'secrets'"):
        exporting.export_table(db, "secrets", file_format, out)


def test_summary_counts(tmp_path):
    db = _shard_db(tmp_path / "s.db", None, list(range(6)), planned=12, status="running")
    (summary,) = store.summarize(db)
    assert summary.done == 6
    assert summary.phenotypes == 2
    assert summary.severity == (4, 0, 2, 0)
    assert summary.status == "interrupted"  # 'running' but nobody holds the lock
    assert summary.screen.planned_mutations == 12


def test_a_database_in_a_missing_folder_is_one_line(tmp_path):
    with (
        pytest.raises(MutatuiError, match=r"cannot write .*missing.*No such file"),
        writer_lock(tmp_path / "missing" / "s.db"),
    ):
        pass


def test_a_stop_signal_inside_a_query_is_a_stop_not_an_error():
    """DuckDB turns the KeyboardInterrupt a signal raises inside a query into a RuntimeError
    ('Query interrupted'); `process.interruption` (which `connect` applies) makes it the stop
    again, so the command ends with its one stop line (`mutatui effects` under SIGTERM printed
    a traceback)."""
    import os
    import signal
    import threading

    from mutatui import process

    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    with process.handling_stops(), pytest.raises(RuntimeError, match="interrupted") as cut:
        timer.start()
        duckdb.connect().execute(
            "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"
        ).fetchall()
    timer.join()
    stop = process.interruption(cut.value)
    assert isinstance(stop, process.Stopped) and stop.signum == signal.SIGTERM
    assert process.interruption(RuntimeError("another failure")) is None
