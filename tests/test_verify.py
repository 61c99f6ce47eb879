"""`mutatui verify`: a recorded screen rerun on the naive path, on the tiny model and real DuckDB
files; a tampered record is caught."""

from __future__ import annotations

import pytest
from tiny_models import tiny_spec

from mutatui.cli import main
from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.store.database import connect


@pytest.fixture(scope="module")
def screened(tiny, tiny_model_dir, questions_file, tmp_path_factory):
    """A tiny screen of q and down in layers 0 and 2 (8x8 tiles), two text probes and a
    choice probe, recorded by the fast engine."""
    folder = tmp_path_factory.mktemp("verify")
    spec = tiny_spec(tiny_model_dir, questions_file)
    db = folder / "tiny.db"
    assert run_screen(spec, ScreenRun(db, batch_size=8), lambda _: tiny[0]).status == "complete"
    return db


def changed_mutation(db) -> tuple[int, int]:
    """(mutation_id, probe_id) of the last recorded text outcome that changed, short of the
    last mutation (the test tampers with the one after it too)."""
    with connect(db, read_only=True) as connection:
        return connection.execute(
            "SELECT mutation_id, probe_id FROM results WHERE changed AND probe_id = 0 AND "
            "mutation_id < (SELECT max(mutation_id) FROM mutations) ORDER BY mutation_id DESC LIMIT 1"
        ).fetchone()


def test_every_recorded_outcome_holds_on_the_naive_path(screened, capsys):
    assert main(["verify", str(screened), "--sample", "1000"]) == 0
    captured = capsys.readouterr()
    with connect(screened, read_only=True) as connection:
        total = connection.execute("SELECT count(*) FROM mutations").fetchone()[0]
        changed = connection.execute("SELECT count(*) FROM results WHERE changed").fetchone()[0]
    assert changed > 0  # the comparison covers changed outputs, not only silent ones
    with connect(screened, read_only=True) as connection:
        (effects,) = connection.execute("SELECT count(*) FROM effects").fetchone()
    assert effects > 0  # and the effect sizes
    assert f"tiny: {total} of {total} sampled mutations" in captured.out
    assert captured.err.count(": same") == total


def test_a_tampered_record_is_caught(screened, tmp_path, capsys):
    db = tmp_path / "tampered.db"
    db.write_bytes(screened.read_bytes())
    mutation_id, probe_id = changed_mutation(db)
    with connect(db, read_only=False) as connection:
        connection.execute(
            "UPDATE results SET text = text || ' (edited)' WHERE mutation_id = ? AND probe_id = ?",
            [mutation_id, probe_id],
        )
        connection.execute(
            "UPDATE results SET choice_score = choice_score + 1 WHERE mutation_id = ? "
            "AND probe_id = 2",
            [mutation_id],
        )
        connection.execute(
            "UPDATE mutations SET value = value * 2 WHERE mutation_id = ?", [mutation_id + 1]
        )
    # every mutation from the tampered one on: the two tampered fail, the rest still hold
    from_id = ["--from-id", str(mutation_id)]
    assert main(["verify", str(db), "--sample", "1000", *from_id]) == 1
    out = capsys.readouterr().out
    assert "probe p1: the recorded text differs from the naive path's" in out
    assert "choice: recorded score" in out
    assert "value: recorded" in out
    with connect(db, read_only=True) as connection:
        (total,) = connection.execute(
            "SELECT count(*) FROM mutations WHERE mutation_id >= ?", [mutation_id]
        ).fetchone()
    assert total > 2
    assert f"tiny: {total - 2} of {total} sampled mutations" in out


def test_a_tampered_effect_size_is_caught(screened, tmp_path, capsys):
    db = tmp_path / "tampered.db"
    db.write_bytes(screened.read_bytes())
    with connect(db, read_only=False) as connection:
        (last,) = connection.execute("SELECT max(mutation_id) FROM effects").fetchone()
        connection.execute(
            "UPDATE effects SET kl_all = kl_all * 1.5 + 1e-3 WHERE mutation_id = ? AND "
            "probe_id = 1",
            [last],
        )
    assert main(["verify", str(db), "--from-id", str(last)]) == 1
    out = capsys.readouterr().out
    assert "probe p2: recorded kl_all" in out and "naive path" in out
    assert "tiny: 0 of 1 sampled mutations" in out


def test_from_id_samples_only_later_mutations(screened, capsys):
    with connect(screened, read_only=True) as connection:
        last = connection.execute("SELECT max(mutation_id) FROM mutations").fetchone()[0]
    assert main(["verify", str(screened), "--sample", "1000", "--from-id", str(last - 2)]) == 0
    captured = capsys.readouterr()
    assert "tiny: 3 of 3 sampled mutations" in captured.out
    assert captured.err.count(": same") == 3


def test_bad_input_is_one_line(screened, tmp_path, capsys):
    for args in (
        ["verify", str(screened), "--sample", "0"],
        ["verify", str(screened), "--from-id", "-1"],
        ["verify", str(screened), "--from-id", "100000"],
        ["verify", str(screened), "--screen", "nope"],
        ["verify", str(tmp_path / "missing.db")],
    ):
        assert main(args) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("mutatui: "), error


def test_a_bfloat16_screen_is_verified_in_bfloat16_without_being_told(tmp_path, capsys):
    """Verified in what it was computed in (its engine record), not the CPU's float32 default:
    native bfloat16 here (pinned: unpinned, a machine whose kernels keep the lockstep decoder
    from running computes it in float32 arithmetic)."""
    from tiny_models import FAMILY_CONFIGS, build_tiny_model

    folder = build_tiny_model(tmp_path / "olmo2", FAMILY_CONFIGS["olmo2"], scale=8)
    db = str(tmp_path / "bf16.db")
    args = ["screen", "--model", str(folder), "--db", db, "--dtype", "bfloat16", "--layers", "0"]
    args += ["--sites", "random:3", "--choice", "none", "--probe", "p=the cat sat on the mat"]
    assert main([*args, "--max-new-tokens", "12", "--arithmetic", "native"]) == 0
    capsys.readouterr()
    assert main(["verify", db, "--sample", "100"]) == 0
    captured = capsys.readouterr()
    assert "verifying in bfloat16 on cpu" in captured.err
    assert "give the recorded outcome" in captured.out and ": differs" not in captured.err
    assert main(["verify", db, "--sample", "2", "--dtype", "float32"]) == 1  # told otherwise
    told = capsys.readouterr()
    assert "verifying in float32 on cpu" in told.err
    assert "not comparable" in told.out or ": differs" in told.err
