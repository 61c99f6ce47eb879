"""Screens on Ray: local clusters of two CPU workers and the tiny model, real DuckDB files.

A worker process killed mid-part is restarted and its parts retried; a driver killed with
SIGKILL resumes with `--ray --resume`; either way the database ends up equal to an
uninterrupted run without Ray. The base install neither needs nor imports Ray.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from tiny_models import tiny_spec

from mutatui.engine.decoding import Decoding
from mutatui.errors import MutatuiError
from mutatui.screening.probes import TextProbe
from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.screening.samplers import Tiles
from mutatui.screening.spec import ScreenSpec
from mutatui.store.database import connect

pytestmark = pytest.mark.ray

PROBE = TextProbe("p1", "The life cycle of Drosophila:", "describe")
PARTS = 4  # 256 mutations: four parts of one 64-id chunk each
NEW_TOKENS = 64
"""Long enough that a part takes several times as long to compute (about a second) as the
driver takes to commit one: the kill tests need a worker, or the driver, caught mid-part, and
with 6 tokens a worker sometimes finished its next part while the driver wrote the last."""


@pytest.fixture(scope="module")
def spec(tiny_model_dir, questions_file) -> ScreenSpec:
    return tiny_spec(
        tiny_model_dir,
        questions_file,
        name="tiny-ray",
        probes=(PROBE,),
        choice_only_changed=True,
        layers=(1,),
        matrices=("q", "k", "v"),
        sites=Tiles(4, 4),
        decoding=Decoding(max_new_tokens=NEW_TOKENS),
    )


def dump(path: Path) -> dict:
    """Everything a screen recorded that must not depend on how it was run.

    Cosines are kept apart: the sentence-embedding model's float32 sums round differently with
    another number of torch threads (a worker has one), in the last bit, so `same` compares
    them to 1e-6 and every other value exactly."""
    with connect(path, read_only=True) as connection:
        recorded = {
            table: connection.execute(
                f"SELECT * EXCLUDE (screen_id{extra}) FROM {table} ORDER BY {order}"
            ).fetchall()
            for table, extra, order in (
                ("probes", "", "probe_id"),
                ("matrices", "", "layer, matrix"),
                ("mutations", "", "mutation_id"),
                ("results", ", cosine", "mutation_id, probe_id"),
            )
        }
        recorded["cosines"] = [
            row[0]
            for row in connection.execute(
                "SELECT cosine FROM results ORDER BY mutation_id, probe_id"
            ).fetchall()
        ]
    return recorded


def same(first: dict, second: dict) -> bool:
    def close(a: float | None, b: float | None) -> bool:
        return a == b or (a is not None and b is not None and abs(a - b) < 1e-6)

    cosines = zip(first["cosines"], second["cosines"], strict=True)
    rest = [{k: v for k, v in d.items() if k != "cosines"} for d in (first, second)]
    return rest[0] == rest[1] and all(close(a, b) for a, b in cosines)


def ledger_rows(path: Path) -> list[tuple]:
    with connect(path, read_only=True) as connection:
        return connection.execute(
            "SELECT part, parts, mutations, done FROM screen_parts ORDER BY part"
        ).fetchall()


@pytest.fixture(scope="module")
def uninterrupted(tiny, spec, tmp_path_factory) -> Path:
    """The same spec run in process, without Ray, from start to end."""
    lm, _ = tiny
    db = tmp_path_factory.mktemp("whole") / "whole.db"
    report = run_screen(spec, ScreenRun(db, batch_size=8), lambda model: lm)
    assert report.status == "complete" and report.done == PARTS * 64
    return db


@pytest.fixture(scope="module")
def killed_worker_run(spec, uninterrupted, tmp_path_factory) -> tuple[Path, list]:
    """A Ray screen on a local cluster of two CPU workers; right after the first part is
    committed by a worker still computing another part, that worker's process is killed with
    SIGKILL. (A worker that has already returned all its parts would die holding nothing.)"""
    from mutatui.scale.ray_runner import RayRun, run_screen_on_ray

    db = tmp_path_factory.mktemp("ray") / "ray.db"
    events = []

    def kill_once(event) -> None:
        events.append(event)
        if event.running and not any(e.kind == "killed" for e in events):
            os.kill(event.info.pid, signal.SIGKILL)
            events.append(replace(event, kind="killed"))

    report = run_screen_on_ray(
        spec, ScreenRun(db, batch_size=8), RayRun(workers=2, parts=PARTS), on_event=kill_once
    )
    assert report.status == "complete"
    assert (report.done, report.planned) == (PARTS * 64, PARTS * 64)
    return db, events


def test_killed_worker_is_retried_and_the_result_equals_a_run_without_ray(
    killed_worker_run, uninterrupted
):
    db, events = killed_worker_run
    kinds = [event.kind for event in events]
    assert "killed" in kinds, "no worker committed a part while still computing another"
    killed = events[kinds.index("killed")]
    died = [e for e in events if e.kind == "died" and e.worker == killed.worker]
    assert died and died[0].requeued, "the killed worker held no part"
    # requeued: parts it held and had not committed (it may have been handed a new one between
    # the event listing its running parts and the kill landing)
    before_death = {e.part for e in events[: events.index(died[0])] if e.kind == "part"}
    assert not set(died[0].requeued) & before_death
    after = events[events.index(died[0]) :]
    retried = [e for e in after if e.kind == "part" and e.part in died[0].requeued]
    assert retried, "the requeued part was never committed"
    committed = [e.part for e in events if e.kind == "part"]
    assert sorted(committed) == list(range(1, PARTS + 1))  # every part committed once
    assert ledger_rows(db) == [(k, PARTS, 64, True) for k in range(1, PARTS + 1)]
    assert same(dump(db), dump(uninterrupted))
    with connect(db, read_only=True) as connection:
        assert connection.execute("SELECT status FROM screens").fetchall() == [("complete",)]
        workers = connection.execute("SELECT DISTINCT worker FROM screen_parts").fetchall()
    assert len(workers) >= 2  # both workers computed parts


def test_a_ray_screen_refuses_a_resume_without_ray(killed_worker_run, spec, tiny, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copy(killed_worker_run[0], db)
    lm, _ = tiny
    with pytest.raises(MutatuiError, match="was started on Ray; resume it with --ray"):
        run_screen(spec, ScreenRun(db, resume=True), lambda model: lm)


def test_resuming_a_finished_ray_screen_starts_no_worker(killed_worker_run, tmp_path):
    from mutatui.scale.ray_runner import RayRun, run_screen_on_ray

    db = tmp_path / "copy.db"
    shutil.copy(killed_worker_run[0], db)
    before = dump(db)
    with connect(db, read_only=False) as connection:
        connection.execute("UPDATE screens SET status = 'running'")
    report = run_screen_on_ray(None, ScreenRun(db, resume=True), RayRun(address="nowhere:1"))
    assert (report.status, report.done, report.planned) == ("complete", PARTS * 64, PARTS * 64)
    assert dump(db) == before


def test_ray_resume_of_a_screen_started_without_ray_is_refused(uninterrupted, spec, tmp_path):
    from mutatui.scale.ray_runner import RayRun, run_screen_on_ray

    db = tmp_path / "copy.db"
    shutil.copy(uninterrupted, db)
    with pytest.raises(MutatuiError, match="started without --ray; resume it without --ray"):
        run_screen_on_ray(spec, ScreenRun(db, resume=True), RayRun(workers=1))


def test_default_parts_balance_work():
    from mutatui.scale.ray_runner import default_parts

    assert default_parts(100_000, 2) == 196  # about 512 mutations each
    assert default_parts(5_000, 4) == 16  # at least four per worker
    assert default_parts(130, 8) == 3  # never smaller than one 64-id chunk
    assert default_parts(1, 1) == 1


# -- the CLI as real processes -------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mutatui", *args]


def screen_args(db: Path, model_dir: Path, questions_file: Path) -> list[str]:
    return [
        "screen",
        "--db",
        str(db),
        "--name",
        "tiny-ray",
        "--model",
        str(model_dir),
        "--probe",
        f"{PROBE.style}={PROBE.prompt}",
        "--choice",
        str(questions_file),
        "--choice-only-changed",
        "--layers",
        "1",
        "--matrices",
        "q,k,v",
        "--sites",
        "tiles:4",
        "--max-new-tokens",
        str(NEW_TOKENS),
        "--batch-size",
        "8",
    ]


def parts_done(db: Path) -> int:
    try:
        with connect(db, read_only=True, wait=5) as connection:
            return connection.execute("SELECT count(*) FROM screen_parts WHERE done").fetchall()[0][
                0
            ]
    except Exception:
        return 0


HEAD = """
import signal, sys, time
import ray

def stop(*_):
    ray.shutdown()
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
context = ray.init(
    num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20
)
print(context.address_info["gcs_address"], flush=True)
while True:
    time.sleep(1)
"""
"""A running two-CPU cluster for drivers to connect to; SIGTERM shuts it down cleanly."""


@pytest.fixture(scope="module")
def cluster_address():
    head = subprocess.Popen([sys.executable, "-c", HEAD], stdout=subprocess.PIPE, text=True)
    try:
        address = head.stdout.readline().strip()
        assert address, "the Ray head did not start"
        yield address
    finally:
        head.terminate()
        head.wait(timeout=60)


def test_killed_driver_resumes_on_ray(
    uninterrupted, cluster_address, tiny_model_dir, questions_file, tmp_path
):
    """SIGKILL the `mutatui screen --ray ADDRESS` process after two parts, resume it with
    `--ray ADDRESS --resume`: the database equals the uninterrupted run without Ray."""
    db = tmp_path / "driver.db"
    args = [
        *screen_args(db, tiny_model_dir, questions_file),
        "--ray",
        cluster_address,
        "--ray-workers",
        "2",
        "--ray-parts",
        str(PARTS),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(cli(*args), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while parts_done(db) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the Ray screen made no progress"
        time.sleep(0.05)
    assert process.poll() is None, f"finished before the kill: {process.stderr.read()}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = parts_done(db)
    assert 2 <= done_before < PARTS
    resumed = subprocess.run(cli(*args, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Ray worker 0 started on" in resumed.stderr
    assert f"{PARTS * 64}/{PARTS * 64} mutations" in resumed.stderr
    assert ledger_rows(db) == [(k, PARTS, 64, True) for k in range(1, PARTS + 1)]
    assert same(dump(db), dump(uninterrupted))


NO_RAY = "import sys; sys.modules['ray'] = None; from mutatui.cli import main; sys.exit(main())"
"""Runs the CLI with `import ray` failing, as in an install without the extra."""


def test_without_ray_a_screen_runs_and_ray_is_one_clear_line(
    tiny_model_dir, questions_file, tmp_path
):
    args = [*screen_args(tmp_path / "plain.db", tiny_model_dir, questions_file), "--quiet"]
    plain = subprocess.run(
        [sys.executable, "-c", NO_RAY, *args, "--kinds", "max", "--matrices", "q"],
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0, plain.stderr
    wanted = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_RAY,
            *screen_args(tmp_path / "r.db", tiny_model_dir, questions_file),
            "--ray",
        ],
        capture_output=True,
        text=True,
    )
    assert wanted.returncode == 2
    assert wanted.stderr.strip() == (
        "mutatui: --ray needs Ray, an optional extra: pip install 'mutatui[ray]'"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ray-workers", "2"], "--ray-workers only apply with --ray"),
        (["--ray", "--ray-parts", "0"], "--ray-parts must be at least 1, got 0"),
        (["--ray", "--shard", "1/2"], "--ray splits the spec into parts itself; drop --shard"),
        (
            ["--ray", "127.0.0.1:1"],
            "cannot reach the Ray cluster at 127.0.0.1:1: Connection refused",
        ),
        (
            ["--ray", "--device", "cuda:1"],
            "--device cuda:1 does not apply with --ray: each worker uses the one GPU Ray gives "
            "it; valid: auto, cuda, cpu",
        ),
    ],
)
def test_bad_ray_options_are_one_line(
    flags, message, tiny_model_dir, questions_file, tmp_path, capsys
):
    from mutatui.cli import main

    args = screen_args(tmp_path / "bad.db", tiny_model_dir, questions_file)
    assert main([*args, *flags]) == 2
    assert capsys.readouterr().err.strip() == f"mutatui: {message}"
