"""scripts/screenshots.py: the manual's SVG pictures, taken from the real app by Pilot."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from mutatui.store.synthetic import SyntheticSpec, build_synthetic

SCRIPT = Path(__file__).parent.parent / "scripts" / "screenshots.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600
    )


def svg_text(path: Path) -> str:
    """Every character the terminal showed, spaces normalised (Textual writes them as nbsp)."""
    root = ElementTree.parse(path).getroot()
    return " ".join("".join(root.itertext()).replace("\xa0", " ").split())


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("screenshots") / "screens.db"
    build_synthetic(path, SyntheticSpec(layers=3, seed=11))
    return path


def test_every_view_is_written_as_an_svg_of_that_view(db, tmp_path):
    done = run_script(str(db), str(tmp_path), "--site", "L1.gate[192,0]", "--size", "100x30")
    assert done.returncode == 0, done.stderr
    assert "wrote 10 screenshots" in done.stdout
    texts = {path.stem.removeprefix("explorer_"): svg_text(path) for path in tmp_path.iterdir()}
    assert set(texts) == {
        "screens",
        "overview",
        "overview_severe_only",
        "grid",
        "grid_severity",
        "grid_severe_only",
        "grid_rearranged",
        "grid_complementarity",
        "detail",
        "writers",
    }
    for view, text in texts.items():
        assert f"mutatui: {view.replace('_', ' ')}" in text, view
    for view in ("grid", "grid_severity", "grid_rearranged", "grid_complementarity"):
        assert "L1.gate 1536x576" in texts[view], view
        assert "cols 0:64" in texts[view], view  # the cursor's cell: row 192 binned with others
    assert "severity>=3" in texts["grid_severe_only"]
    assert "severity>=3" in texts["overview_severe_only"]
    assert "rearranged" in texts["grid_rearranged"]
    assert "L1.gate" in texts["detail"] and "baseline" in texts["detail"].lower()
    assert "complete" in texts["screens"] or "running" in texts["screens"]


def test_views_and_prefix_pick_the_files(db, tmp_path):
    done = run_script(
        str(db), str(tmp_path), "--site", "L0.q[0,0]", "--views", "grid,detail", "--prefix", "x_"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["x_detail.svg", "x_grid.svg"]
    assert "L0.q" in svg_text(tmp_path / "x_grid.svg")


def test_bad_arguments_are_one_line(db, tmp_path):
    for args in (
        (str(db), str(tmp_path), "--views", "grid,nope"),
        (str(db), str(tmp_path), "--site", "L1.gate[oops"),
        (str(db), str(tmp_path), "--size", "40x10"),
        (str(db), str(tmp_path), "--screen", "nope"),
        (str(tmp_path / "missing.db"), str(tmp_path)),
    ):
        done = run_script(*args)
        assert done.returncode == 2, args
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("screenshots: "), args


def test_live_mode_is_taken_side_by_side_after_its_run(db, tiny_model_dir, tmp_path):
    before = db.stat().st_mtime_ns
    live = ["--live-model", str(tiny_model_dir), "--live-site", "L1.up[0:8,0:8]"]
    done = run_script(str(db), str(tmp_path), "--views", "live", *live, "--size", "100x30")
    assert done.returncode == 0, done.stderr
    (shot,) = tmp_path.iterdir()
    assert shot.name == "explorer_live.svg"
    text = svg_text(shot)
    assert "mutatui: live" in text and "L1.up[0:8,0:8]" in text
    assert "baseline" in text.lower() and "mutant" in text.lower()
    assert db.stat().st_mtime_ns == before  # the run went to a temporary database


def test_a_live_view_without_a_live_model_is_refused(db, tmp_path):
    done = run_script(str(db), str(tmp_path), "--views", "live")
    assert done.returncode == 2
    assert "--views: unknown live" in done.stderr
