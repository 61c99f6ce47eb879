"""scripts/findings.py: the material of docs/findings.md, made by the project's own CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from analysis_fixtures import FixtureScreen, markdown_tables

SCRIPT = Path(__file__).parent.parent / "scripts" / "findings.py"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> Path:
    """tiles-64 (two layers of q and gate: a severe row in L0.q max, one mild gate tile) and
    elements-random (six elements of L0.q, one moderate); no elements-lines yet."""
    path = tmp_path_factory.mktemp("findings") / "screens.db"
    tiles = FixtureScreen(name="tiles-64")
    for layer in range(2):
        tiles.matrix(layer, "q", 4, 4).matrix(layer, "gate", 8, 4)
    for col in range(4):
        tiles.hit(0, "q", 1, col, "max", severity=3)
    tiles.hit(1, "gate", 2, 3, "min", severity=1)
    sites = {(0, "q", row, col) for row in (0, 5, 9) for col in (1, 7)}
    elements = FixtureScreen(name="elements-random", tile=1, sites=sites).matrix(0, "q", 16, 16)
    elements.hit(0, "q", 5, 7, "max", severity=2)
    tiles.write(path)
    elements.write(path)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def rates(report: Path, matrix: str) -> tuple[str, str]:
    """(max rate, min rate) of a matrix type in a report's table of rates per type."""
    table = markdown_tables(report.read_text())["phenotype rate per matrix type"]
    header, *rows = table
    (row,) = [row for row in rows if row[0] == matrix]
    return row[header.index("max rate")], row[header.index("min rate")]


def test_findings_hold_each_screens_analysis_and_figures(bundled, tmp_path):
    out = tmp_path / "findings"
    done = run(str(bundled), str(out))
    assert done.returncode == 0, done.stderr
    index = (out / "index.md").read_text()
    assert "`tiles-64`: complete, 192 mutations tested, 5 changed some probe" in index
    assert "- elements-lines: skipped, elements-lines not in" in index
    # any change counts the mild gate tile; severe keeps only the planted row (4 of 16 x 2)
    assert rates(out / "tiles-64.md", "gate") == ("0.0%", "1.6%")
    assert rates(out / "tiles-64-severe.md", "q") == ("12.5%", "0.0%")
    assert rates(out / "tiles-64-severe.md", "gate") == ("0.0%", "0.0%")
    assert rates(out / "elements-random.md", "q") == ("16.7%", "0.0%")
    assert "--min-severity 3 --markdown" in index
    for name in ("tiles-64-severe", "elements-random"):
        maps = out / "figures" / name / "map_q.png"
        assert maps.read_bytes().startswith(PNG)
        assert f"[figures](figures/{name}/README.md)" in index
        gallery = (out / "figures" / name / "README.md").read_text()
        assert "![map_q.png](map_q.png)" in gallery
    assert not (out / "figures" / "tiles-64").exists()  # no figures asked for
    assert not (out / "elements-lines.md").exists()
    assert "- tiles-64-effect: skipped, tiles-64 has no effect sizes yet" in index
    assert not (out / "tiles-64-effect.md").exists()


def test_a_missing_database_is_one_line(tmp_path):
    done = run(str(tmp_path / "absent.db"), str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"findings: {tmp_path / 'absent.db'}: no such database (make screens.db builds the "
        "bundled one)"
    ]
    assert not (tmp_path / "out").exists()
