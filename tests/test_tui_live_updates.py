"""The explorer sees results appear while another process writes the database, and the
`browse` command refuses bad paths with one line."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest
from textual.widgets import DataTable

from mutatui.cli import main
from mutatui.store import queries
from mutatui.store.synthetic import SyntheticSpec, build_synthetic
from mutatui.tui.app import ExplorerApp
from mutatui.tui.widgets.matrix_grid import MatrixGrid

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_results_written_by_another_process_appear_in_the_grid(tmp_path):
    path = tmp_path / "running.db"
    build_synthetic(path, SyntheticSpec(layers=2, seed=4, status="running", written=0.3))
    app = ExplorerApp(path, poll_seconds=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("j", "enter")  # layer 1 is not written yet
        await pilot.pause()
        grid = app.screen.query_one(MatrixGrid)
        assert app.data.summary.status == "interrupted"  # no writer yet
        assert int(grid.layout_data.kept.sum()) == 0
        first_results = app.data.written
        writer = subprocess.Popen(
            [
                *(sys.executable, "-m", "mutatui.store.synthetic", str(path)),
                *("--resume", "--batches", "4", "--pause", "0.3"),
            ],
        )
        seen = {first_results}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            await pilot.pause(0.1)
            seen.add(app.data.written)
            if writer.poll() is not None and app.data.summary.status == "complete":
                break
        assert writer.wait(timeout=60) == 0
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.data.summary.status == "complete"
        with duckdb.connect(str(path), read_only=True) as connection:
            total = connection.execute("SELECT count(*) FROM mutations").fetchone()[0]
        assert app.data.written == total > first_results
        assert len(seen) >= 3  # saw intermediate batches, not only the end
        # the grid on screen was redrawn from the new data
        expected = queries.load_screen(path, 1)
        part = expected.matrix_slices[app.screen.position]
        assert int(grid.layout_data.kept.sum()) == int((expected.tested[part] > 0).sum()) > 0


async def test_the_screen_list_follows_a_running_screen(tmp_path):
    path = tmp_path / "running.db"
    build_synthetic(path, SyntheticSpec(layers=2, seed=4, status="running", written=0.3))
    build_synthetic(path, SyntheticSpec(name="newer", layers=1, seed=2))
    app = ExplorerApp(path, poll_seconds=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        names = [summary.name for summary in app.screen.summaries]
        row = names.index("synthetic")
        assert row == 1  # below the newer screen: the cursor has to stay on it
        table = app.screen.query_one(DataTable)
        await pilot.press(*(["down"] * row))  # the cursor stays there while rows reload
        running = app.screen.summaries[row]
        assert running.state == "interrupted" and running.mutations < running.planned
        writer = subprocess.Popen(
            [
                *(sys.executable, "-m", "mutatui.store.synthetic", str(path)),
                *("--resume", "--batches", "3", "--pause", "0.3"),
            ],
        )
        counts = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            await pilot.pause(0.1)
            counts.add(app.screen.summaries[row].mutations)
            if writer.poll() is not None and app.screen.summaries[row].state == "complete":
                break
        assert writer.wait(timeout=60) == 0
        assert app.screen.summaries[row].state == "complete"
        assert len(counts) >= 3  # the batches between, not only the end
        assert table.cursor_row == row
        assert str(table.get_row_at(row)[1]) == "complete"


def test_browse_missing_path_is_one_line(tmp_path, capsys):
    assert main(["browse", str(tmp_path / "nope.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such database" in err


def test_browse_non_mutatui_file_is_one_line(tmp_path, capsys):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    assert main(["browse", str(text_file)]) == 2
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    assert main(["browse", str(other)]) == 2
    assert main(["browse", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert "not a mutatui database" in lines[0] and "not a mutatui database" in lines[1]
    assert "directory" in lines[2]


def test_no_arguments_opens_screens_db_or_says_it_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "screens.db" in err


def test_browse_starts_without_importing_torch(tmp_path):
    """The explorer's start does not pay for the model commands' imports."""
    code = (
        "import sys\n"
        "from mutatui.cli import main\n"
        f"status = main(['browse', {str(tmp_path / 'nope.db')!r}])\n"
        "print(status, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["2", "False", "False"]
    assert "no such database" in done.stderr
