"""Screens end to end on the tiny model and real DuckDB files: the runner, the CLI as a real
subprocess killed with SIGKILL and resumed, a second writer refused, a reader watching results
appear, shards merged back into the whole, export and info."""

from __future__ import annotations

import json
import lzma
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from processes import default_stop_signals
from tiny_models import LLAMA, TINY_PROBES, build_tiny_model, tiny_spec

from mutatui.errors import MutatuiError
from mutatui.screening.plan import Shard
from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.store.database import connect, lock_path


def loader(tiny):
    lm, _ = tiny

    def load(model: str):
        return lm

    return load


def dump(path) -> dict:
    """Everything a screen recorded that must not depend on how it was run."""
    with connect(path, read_only=True) as connection:
        return {
            "probes": connection.execute(
                "SELECT * EXCLUDE (screen_id) FROM probes ORDER BY probe_id"
            ).fetchall(),
            "matrices": connection.execute(
                "SELECT * EXCLUDE (screen_id) FROM matrices ORDER BY layer, matrix"
            ).fetchall(),
            "mutations": connection.execute(
                "SELECT * EXCLUDE (screen_id) FROM mutations ORDER BY mutation_id"
            ).fetchall(),
            "results": connection.execute(
                "SELECT * EXCLUDE (screen_id) FROM results ORDER BY mutation_id, probe_id"
            ).fetchall(),
        }


@pytest.fixture(scope="module")
def whole(tiny, tiny_model_dir, questions_file, tmp_path_factory) -> Path:
    """One uninterrupted run of the tiny spec, in process."""
    db = tmp_path_factory.mktemp("whole") / "whole.db"
    spec = tiny_spec(tiny_model_dir, questions_file)
    report = run_screen(spec, ScreenRun(db, batch_size=8), loader(tiny))
    assert report.status == "complete"
    return db


def test_whole_run_records_every_mutation_and_probe(whole, tiny, tiny_model_dir, questions_file):
    _, catalog = tiny
    spec = tiny_spec(tiny_model_dir, questions_file)
    plan = spec.plan(catalog)
    recorded = dump(whole)
    assert len(recorded["mutations"]) == len(plan)
    assert [r[0] for r in recorded["mutations"]] == list(range(len(plan)))
    assert len(recorded["results"]) == len(plan) * 3  # two text probes and the choice probe
    with connect(whole, read_only=True) as connection:
        status, planned = connection.execute(
            "SELECT status, planned_mutations FROM screens"
        ).fetchall()[0]
        text_only_when_changed = connection.execute(
            "SELECT count(*) FROM results WHERE probe_id < 2 AND (changed != (text IS NOT NULL))"
        ).fetchall()[0][0]
        changed = connection.execute(
            "SELECT count(DISTINCT mutation_id) FROM results WHERE changed"
        ).fetchall()[0][0]
    assert (status, planned) == ("complete", len(plan))
    assert text_only_when_changed == 0
    assert changed > 0  # the tiny model is sensitive enough for phenotypes


def test_results_match_what_the_mutation_does_alone(whole, tiny, tiny_model_dir, questions_file):
    """Spot-check stored outcomes against the naive path (edit, generate, restore)."""
    from mutatui.engine.decoding import decode_tokens, encode_prompt, naive_generate
    from mutatui.engine.questions import naive_choices
    from mutatui.screening.choice import load_questions, score

    lm, catalog = tiny
    spec = tiny_spec(tiny_model_dir, questions_file)
    plan = spec.plan(catalog)
    questions = load_questions(questions_file)
    with connect(whole, read_only=True) as connection:
        rows = connection.execute(
            "SELECT mutation_id, probe_id, changed, text, choice_score FROM results "
            "WHERE mutation_id % 37 = 0 ORDER BY mutation_id, probe_id"
        ).fetchall()
    for mutation_id, probe_id, changed, text, choice_score in rows:
        mutation = plan.mutation_at(mutation_id)
        if probe_id == 2:
            answers = naive_choices(lm, catalog, questions, mutation)
            assert choice_score == score(questions, answers)
            continue
        prompt = encode_prompt(lm, TINY_PROBES[probe_id].prompt)
        baseline = naive_generate(lm, catalog, prompt, None, spec.decoding)
        mutant = naive_generate(lm, catalog, prompt, mutation, spec.decoding)
        assert changed == (mutant.tokens != baseline.tokens)
        if changed:
            assert text == decode_tokens(lm, mutant.tokens)


def test_shards_merged_equal_the_whole(whole, tiny, tiny_model_dir, questions_file, tmp_path):
    from mutatui.store.merge import merge

    spec = tiny_spec(tiny_model_dir, questions_file)
    parts = []
    for k in (1, 2, 3):
        db = tmp_path / f"part{k}.db"
        run_screen(spec, ScreenRun(db, shard=Shard(k, 3), batch_size=8), loader(tiny))
        parts.append(db)
    out = tmp_path / "merged.db"
    merge(out, parts)
    assert dump(out) == dump(whole)
    with connect(out, read_only=True) as connection:
        assert connection.execute("SELECT shard, status FROM screens").fetchall() == [
            (None, "complete")
        ]


class RecordedProgress:
    """What a run told its progress display."""

    def __init__(self) -> None:
        self.started: tuple = ()
        self.advances: list[tuple[int, int, float | None]] = []
        self.notes: list[str] = []
        self.steps: list[tuple[str, int, int]] = []

    def start(self, total, done, phenotypes, work=None) -> None:
        self.started = (total, done, phenotypes, work)

    def advance(self, mutations, phenotypes, work=None) -> None:
        self.advances.append((mutations, phenotypes, work))

    def stop(self) -> None:
        pass

    def note(self, message: str) -> None:
        self.notes.append(message)

    def step(self, what: str, done: int, total: int) -> None:
        self.steps.append((what, done, total))


def test_progress_weighs_mutations_by_the_layers_they_run(
    tiny, tiny_model_dir, questions_file, tmp_path
):
    """Layer 0's batches weigh more than layer 2's (3 layers plus the fixed share against 1),
    and the work reported adds up to the plan's total."""
    spec = tiny_spec(tiny_model_dir, questions_file, choice=None)
    progress = RecordedProgress()
    run_screen(spec, ScreenRun(tmp_path / "p.db", batch_size=8), loader(tiny), progress)
    total, done, _, (total_work, done_work) = progress.started
    assert (done, done_work) == (0, 0)
    assert sum(m for m, _, _ in progress.advances) == total
    assert sum(w for _, _, w in progress.advances) == pytest.approx(total_work)
    per_mutation = [w / m for m, _, w in progress.advances]
    assert per_mutation[0] == pytest.approx(3 + 0.6) and per_mutation[-1] == pytest.approx(1.6)
    # the start-up said where it was before the first batch, to its end
    preparing = [(done, total) for what, done, total in progress.steps if "preparing" in what]
    assert preparing == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_choice_only_on_changed_mutations(tiny, tiny_model_dir, questions_file, tmp_path):
    db = tmp_path / "bundled.db"
    spec = tiny_spec(tiny_model_dir, questions_file, choice_only_changed=True, layers=(2,))
    run_screen(spec, ScreenRun(db, batch_size=8), loader(tiny))
    with connect(db, read_only=True) as connection:
        asked = connection.execute(
            "SELECT mutation_id FROM results WHERE probe_id = 2 ORDER BY mutation_id"
        ).fetchall()
        changed = connection.execute(
            "SELECT DISTINCT mutation_id FROM results WHERE probe_id < 2 AND changed "
            "ORDER BY mutation_id"
        ).fetchall()
    assert asked == changed and asked


def test_resume_refuses_another_spec_and_an_existing_name(
    whole, tiny, tiny_model_dir, questions_file
):
    other = tiny_spec(tiny_model_dir, questions_file, kinds=("zero",))
    with pytest.raises(MutatuiError, match="started with a different spec"):
        run_screen(other, ScreenRun(whole, resume=True), loader(tiny))
    with pytest.raises(MutatuiError, match="already has a screen named 'tiny'"):
        run_screen(other, ScreenRun(whole), loader(tiny))


# -- the CLI as a real process -------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mutatui", *args]


def screen_args(db, model_dir, questions_file) -> list[str]:
    return [
        "screen",
        "--db",
        str(db),
        "--name",
        "tiny",
        "--model",
        str(model_dir),
        "--probe",
        "describe=The life cycle of Drosophila:",
        "--probe",
        "explain=Why is the sky blue?",
        "--choice",
        str(questions_file),
        "--layers",
        "0,2",
        "--matrices",
        "q,down",
        "--sites",
        "tiles:8",
        "--max-new-tokens",
        "8",
        "--batch-size",
        "8",
    ]


def committed(db) -> int:
    try:
        with connect(db, read_only=True, wait=5) as connection:
            return connection.execute("SELECT count(*) FROM mutations").fetchall()[0][0]
    except (MutatuiError, duckdb.Error):
        return 0


READER = """
import sys, time
from mutatui.store.database import connect, lock_path
seen = []
deadline = time.monotonic() + 900
while time.monotonic() < deadline:
    try:
        with connect(sys.argv[1], read_only=True) as connection:
            count = connection.execute("SELECT count(*) FROM results").fetchall()[0][0]
    except Exception:
        time.sleep(0.05)
        continue
    if not seen or count != seen[-1]:
        seen.append(count)
        print(count, flush=True)
    if count >= int(sys.argv[2]):
        break
    time.sleep(0.05)
"""


def test_killed_screen_resumes_to_the_uninterrupted_result(
    whole, tiny_model_dir, questions_file, tmp_path
):
    db = tmp_path / "killed.db"
    args = screen_args(db, tiny_model_dir, questions_file)
    total = len(dump(whole)["mutations"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for round_number in (0, 1):
        run_args = args if round_number == 0 else [*args, "--resume"]
        # the second kill comes two batches after the resume, far from the end (a kill that
        # lands after the last batch would find the screen complete)
        kill_after = 3 * 8 if round_number == 0 else committed(db) + 2 * 8
        assert kill_after < total // 2
        process = subprocess.Popen(
            cli(*run_args, "--quiet"),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_stop_signals,
        )
        reader = None
        if round_number == 0:
            reader = subprocess.Popen(
                [sys.executable, "-c", READER, str(db), str(kill_after * 3)],
                stdout=subprocess.PIPE,
                text=True,
            )
        deadline = time.monotonic() + 180
        while committed(db) < kill_after and process.poll() is None:
            assert time.monotonic() < deadline, "the screen made no progress"
            time.sleep(0.02)
        if round_number == 0:
            # a second screen on the same database is refused while the first one runs (held
            # still meanwhile, so that it does not run to the end while the second starts up)
            process.send_signal(signal.SIGSTOP)
            second = subprocess.run(
                cli(*args, "--resume", "--quiet"), env=env, capture_output=True, text=True
            )
            process.send_signal(signal.SIGCONT)
            assert second.returncode == 2
            assert "another screen is writing" in second.stderr
        assert process.poll() is None, f"finished before the kill: {process.stderr.read()}"
        process.send_signal(signal.SIGKILL)
        process.wait()
        if reader is not None:
            seen = [int(line) for line in reader.communicate(timeout=900)[0].split()]
            assert len(seen) >= 2 and seen == sorted(seen), seen
        with connect(db, read_only=True) as connection:
            (status,) = connection.execute("SELECT status FROM screens").fetchall()[0]
        assert status == "running"  # as the killed process left it
        info = subprocess.run(
            cli("info", str(db), "--json"), env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(info.stdout)["status"] == "interrupted"
    finished = subprocess.run(
        cli(*args, "--resume", "--quiet"), env=env, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    assert dump(db) == dump(whole)
    info = subprocess.run(
        cli("info", str(db), "--json"), env=env, capture_output=True, text=True, check=True
    )
    summary = json.loads(info.stdout)
    assert summary["status"] == "complete" and summary["done"] == total


STOPS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def test_stop_signals_at_random_moments_lose_and_duplicate_nothing(
    whole, tiny_model_dir, questions_file, tmp_path
):
    """SIGTERM, SIGHUP and SIGINT, each at a random batch: the process says so in one line and
    exits with the signal's status, the screen is marked interrupted, the lock is released, and
    the resumes end exactly where an uninterrupted run does."""
    db = tmp_path / "stopped.db"
    args = screen_args(db, tiny_model_dir, questions_file)
    total = len(dump(whole)["mutations"])
    moments = random.Random(7)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for number, stop in enumerate(STOPS):
        run_args = args if number == 0 else [*args, "--resume"]
        stop_after = committed(db) + 8 * moments.randint(1, 3)
        assert stop_after < total
        process = subprocess.Popen(
            cli(*run_args, "--quiet"),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_stop_signals,
        )
        deadline = time.monotonic() + 180
        while committed(db) < stop_after and process.poll() is None:
            assert time.monotonic() < deadline, "the screen made no progress"
            time.sleep(0.01)
        assert process.poll() is None, f"finished before the signal: {process.stderr.read()}"
        process.send_signal(stop)
        stderr = process.communicate(timeout=120)[1]
        assert process.returncode == 128 + stop, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        assert "stopped" in lines[0] and "--resume" in lines[0] and stop.name in lines[0]
        assert f": {committed(db)} of {total} mutations are committed in {db}" in lines[0]
        with connect(db, read_only=True) as connection:
            (status,) = connection.execute("SELECT status FROM screens").fetchall()[0]
        assert status == "interrupted"
        assert not lock_path(db).exists()
    finished = subprocess.run(
        cli(*args, "--resume", "--quiet"), env=env, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    assert dump(db) == dump(whole)


WIDE = {
    **LLAMA,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "num_hidden_layers": 4,
}
"""A random model wide enough that one batch of many mutations takes seconds on a CPU."""


def test_a_hangup_ends_a_screen_mid_batch(tmp_path):
    """SIGHUP sent while a long batch is being graded ends the process then, not after the
    batch (SIGTERM and SIGINT take the same path): no batch is committed after the signal (the
    one in flight is dropped and redone on resume), the exit status is the signal's, and one
    line says what is kept."""
    stop = signal.SIGHUP
    model = build_tiny_model(tmp_path / "wide", WIDE, scale=4.0)
    db = tmp_path / "mid.db"
    args = [
        "screen", "--db", str(db), "--name", "mid", "--model", str(model),
        "--probe", "describe=The life cycle of Drosophila:", "--choice", "none",
        "--layers", "0", "--matrices", "q,k,v,o", "--sites", "random:200",
        "--kinds", "max", "--max-new-tokens", "120", "--batch-size", "200",
    ]  # fmt: skip
    process = subprocess.Popen(
        cli(*args, "--quiet"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_stop_signals,
    )
    deadline = time.monotonic() + 300
    while not has_screen(db) and process.poll() is None:  # the screen row: batches begin
        assert time.monotonic() < deadline, "the screen never began"
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read()
    time.sleep(0.5)
    at_signal = committed(db)
    process.send_signal(stop)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 128 + stop, stderr
    assert committed(db) == at_signal < 800, "a batch was committed after the signal"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and stop.name in lines[0] and "--resume" in lines[0], stderr


def has_screen(db) -> bool:
    try:
        with connect(db, read_only=True, wait=5) as connection:
            return bool(connection.execute("SELECT count(*) FROM screens").fetchall()[0][0])
    except (MutatuiError, duckdb.Error):
        return False


FULL_DISK = """
import json, os, subprocess, sys, time
mount, outside, *screen = sys.argv[1:]
sys.path.insert(0, os.path.dirname(outside))
from mutatui.store.database import connect

db = os.path.join(mount, "s.db")
mutatui = [sys.executable, "-m", "mutatui"]
screen = [*mutatui, *[db if a == "DB" else a for a in screen]]


def committed():
    try:
        with connect(db, read_only=True, wait=5) as connection:
            return connection.execute("SELECT count(*) FROM mutations").fetchall()[0][0]
    except Exception:
        return 0


def run(args):
    done = subprocess.run(args, capture_output=True, text=True)
    return [done.returncode, done.stderr]


process = subprocess.Popen([*screen, "--quiet"], stderr=subprocess.PIPE, text=True)
while committed() < 16 and process.poll() is None:
    time.sleep(0.01)
filler = os.path.join(mount, "filler")


def fill():
    # every page the disk has left (the steps before may have freed some)
    with open(filler, "ab", buffering=0) as file:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    file.write(bytes(size))
            except OSError:
                pass


fill()  # under the running screen
report = {"screen": [process.wait(), process.stderr.read()], "kept": committed()}
fill()
report["resumed_full"] = run([*screen, "--resume", "--quiet"])
fill()
report["export"] = run([*mutatui, "export", db, "--table", "results", mount + "/r.csv"])
fill()
report["merge"] = run([*mutatui, "merge", mount + "/merged.db", db])
os.remove(filler)
report["resumed"] = run([*screen, "--resume", "--quiet"])
with open(outside, "wb") as copy, open(db, "rb") as source:
    copy.write(source.read())
print(json.dumps(report))
"""


def small_file_system(size: str) -> list[str] | None:
    """A command prefix that runs its command with a fresh tmpfs of `size` mounted at the
    command's first argument, in a mount namespace of its own; None where that is not allowed."""
    probe = ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp && true"]
    try:
        allowed = subprocess.run(probe, capture_output=True).returncode == 0
    except FileNotFoundError:
        allowed = False
    if not allowed:
        return None
    script = f'mount -t tmpfs -o size={size} tmpfs "$1" && shift && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, "sh"]


def test_a_full_disk_stops_a_screen_with_one_line_and_resume_finishes_it(
    whole, tiny_model_dir, questions_file, tmp_path
):
    prefix = small_file_system("24m")
    if prefix is None:
        pytest.skip("no mount namespaces here to make a small file system in")
    mount = tmp_path / "disk"
    mount.mkdir()
    outside = tmp_path / "after.db"
    args = screen_args("DB", tiny_model_dir, questions_file)
    done = subprocess.run(
        [*prefix, str(mount), sys.executable, "-c", FULL_DISK, str(mount), str(outside), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for step in ("screen", "resumed_full", "export", "merge"):
        status, stderr = report[step]
        lines = stderr.strip().splitlines()
        assert status == 2 and len(lines) == 1 and "Traceback" not in stderr, (step, stderr[-3000:])
        assert "No space left on device" in lines[0], (step, stderr)
    assert report["kept"] >= 16  # the batches committed before the disk filled
    assert report["resumed"][0] == 0, report["resumed"][1]
    assert dump(outside) == dump(whole)


def test_cli_bad_spec_is_one_line(tiny_model_dir, tmp_path):
    result = subprocess.run(
        cli(
            "screen",
            "--db",
            str(tmp_path / "x.db"),
            "--model",
            str(tiny_model_dir),
            "--sites",
            "hex:3",
        ),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown sampler 'hex'" in result.stderr


def test_cli_progress_lines_and_quiet(tiny_model_dir, questions_file, tmp_path):
    narrow = ["--layers", "2", "--matrices", "q"]
    args = [*screen_args(tmp_path / "p.db", tiny_model_dir, questions_file), *narrow]
    shown = subprocess.run(cli(*args), capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "mutatui: screen 0/" in shown.stderr  # progress lines when stderr is not a terminal
    assert "phenotypes" in shown.stderr and "mut/s" in shown.stderr
    quiet_args = [*screen_args(tmp_path / "q.db", tiny_model_dir, questions_file), *narrow]
    quiet = subprocess.run(cli(*quiet_args, "--quiet"), capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_cli_export_and_info(whole, tmp_path):
    out = tmp_path / "export"
    done = subprocess.run(
        cli("export", str(whole), "--format", "csv", str(out)), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    with connect(whole, read_only=True) as connection:
        stored = connection.execute("SELECT count(*) FROM results").fetchall()[0][0]
    read = duckdb.sql("SELECT count(*) FROM read_csv_auto(?)", params=[str(out / "results.csv")])
    assert read.fetchall()[0][0] == stored
    one = tmp_path / "mutations.parquet"
    subprocess.run(
        cli("export", str(whole), "--table", "mutations", str(one)), check=True, capture_output=True
    )
    assert duckdb.sql("SELECT count(*) FROM read_parquet(?)", params=[str(one)]).fetchall()[0][0]
    info = subprocess.run(cli("info", str(whole)), capture_output=True, text=True)
    assert info.returncode == 0
    assert "tiny [complete]" in info.stdout and "phenotypes" in info.stdout
    missing = subprocess.run(cli("info", str(tmp_path / "none.db")), capture_output=True, text=True)
    assert missing.returncode == 2 and "no such database" in missing.stderr


def test_resume_refuses_when_the_probes_are_no_longer_the_same(whole, tiny, tmp_path):
    """A resume whose model or question rendering changed would mix two different screens."""
    import shutil

    copy = tmp_path / "copy.db"
    shutil.copy(whole, copy)
    with connect(copy, read_only=False) as connection:
        connection.execute("UPDATE probes SET prompt = prompt || ' (edited)' WHERE kind = 'choice'")
        connection.execute("UPDATE screens SET status = 'interrupted'")
    with pytest.raises(MutatuiError, match="other baselines than when the screen began"):
        run_screen(None, ScreenRun(copy, resume=True), loader(tiny))


PARTS_SCRIPT = Path(__file__).parent.parent / "scripts" / "screen_in_parts.py"


def tiny_spec_file(path: Path, model_dir: Path, questions_file: Path) -> Path:
    """`tiny_models.tiny_spec` as a TOML spec file."""
    probes = "".join(
        f'[[probes]]\nname = "{p.name}"\nstyle = "{p.style}"\nprompt = "{p.prompt}"\n\n'
        for p in TINY_PROBES
    )
    path.write_text(
        f'name = "tiny"\nmodel = "{model_dir}"\nlayers = [0, 2]\nmatrices = ["q", "down"]\n'
        f'kinds = ["max", "min"]\nmax_new_tokens = 8\n\n[sites]\nsampler = "tiles"\n'
        f'size = [8, 8]\n\n{probes}[choice]\nquestions = "{questions_file}"\n'
    )
    return path


def test_a_spec_run_in_parts_killed_and_resumed_equals_the_whole(
    whole, tiny_model_dir, questions_file, tmp_path
):
    spec = tiny_spec_file(tmp_path / "tiny.toml", tiny_model_dir, questions_file)
    parts, db = tmp_path / "parts", tmp_path / "built.db"
    folder = parts / "tiny"
    where = ["--dir", str(parts), "--db", str(db)]
    command = [sys.executable, str(PARTS_SCRIPT), "run", str(spec), "--parts", "3", *where]
    command += ["--batch-size", "8", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE)
    second = folder / "2-of-3.partial.db"
    deadline = time.monotonic() + 300
    while process.poll() is None:
        assert time.monotonic() < deadline, "the parts made no progress"
        time.sleep(0.05)
        if not second.exists():
            continue
        # look while the script and its screen are held still, so they cannot run on to the
        # end of part 2 between the look and the kill
        os.killpg(process.pid, signal.SIGSTOP)
        if committed(second) >= 8:
            break
        os.killpg(process.pid, signal.SIGCONT)
    assert process.poll() is None, f"finished before the kill: {process.stderr.read()}"
    assert committed(second) < 64  # part 2 is under way, not done
    os.killpg(process.pid, signal.SIGKILL)  # the script and its running screen
    process.wait()
    assert sorted(p.name for p in folder.glob("*.xz")) == ["1-of-3.db.xz"]
    assert second.exists()
    assert not db.exists()

    # `snapshot` copies the unfinished part only, to where a new checkout would resume it
    copies = tmp_path / "copies"
    snapshot = [sys.executable, str(PARTS_SCRIPT), "snapshot", "--dir", str(parts)]
    listed = subprocess.run([*snapshot, "--to", str(copies)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    copy = copies / "tiny" / "2-of-3.partial.db"
    assert listed.stdout.splitlines() == [f"{second}\t{copy}"]
    assert [p.relative_to(copies) for p in copies.rglob("*") if p.is_file()] == [
        copy.relative_to(copies)
    ]
    assert dump(copy) == dump(second) and committed(copy) == committed(second)

    # `merge` shows the build so far: the finished part only
    merge = [sys.executable, str(PARTS_SCRIPT), "merge", *where]
    subprocess.run(merge, env=env, check=True, capture_output=True)
    with connect(db, read_only=True) as connection:
        assert connection.execute("SELECT shard, status FROM screens").fetchall() == [
            ("1/3", "interrupted")
        ]

    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming part 2/3" in resumed.stderr
    assert sorted(p.name for p in folder.iterdir()) == [f"{k}-of-3.db.xz" for k in (1, 2, 3)]
    assert dump(db) == dump(whole)
    with connect(db, read_only=True) as connection:
        assert connection.execute("SELECT shard, status FROM screens").fetchall() == [
            (None, "complete")
        ]
    again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "already holds all of 'tiny'" in again.stderr
    assert subprocess.run(merge, env=env, capture_output=True).returncode == 0
    assert dump(db) == dump(whole)

    # a part that completed but was not stored (killed in between) is taken as it is
    with lzma.open(folder / "3-of-3.db.xz") as stored:
        (folder / "3-of-3.partial.db").write_bytes(stored.read())
    (folder / "3-of-3.db.xz").unlink()
    elsewhere = [*command[: command.index("--db")], "--db", str(tmp_path / "elsewhere.db")]
    taken = subprocess.run([*elsewhere, "--batch-size", "8"], env=env, capture_output=True)
    assert taken.returncode == 0, taken.stderr
    assert b"running part" not in taken.stderr and b"resuming part" not in taken.stderr
    assert sorted(p.name for p in folder.iterdir()) == [f"{k}-of-3.db.xz" for k in (1, 2, 3)]
    assert dump(tmp_path / "elsewhere.db") == dump(whole)


def test_parts_refuse_a_database_holding_an_unfinished_whole_run(
    whole, tiny_model_dir, questions_file, tmp_path
):
    spec = tiny_spec_file(tmp_path / "tiny.toml", tiny_model_dir, questions_file)
    db = tmp_path / "unfinished.db"
    db.write_bytes(whole.read_bytes())
    with connect(db, read_only=False) as connection:
        connection.execute("UPDATE screens SET status = 'interrupted'")
    command = [sys.executable, str(PARTS_SCRIPT), "run", str(spec), "--parts", "3"]
    result = subprocess.run(
        [*command, "--dir", str(tmp_path / "parts"), "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"mutatui: {db} holds an unfinished run of 'tiny' not made of parts; resume it with "
        f"`mutatui screen --db {db} --resume`, or give another --db"
    ]
    assert not (tmp_path / "parts").exists()
