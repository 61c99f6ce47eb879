"""The figures: written as real PNG files, with the kind colours where the phenotypes are."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
from analysis_fixtures import FixtureScreen
from matplotlib.colors import to_rgb

from mutatui.analysis.plots import KIND_COLORS, mutation_map, save, write_figures
from mutatui.cli import main
from mutatui.store.frames import load_sites, pick_screen


@pytest.fixture(scope="module")
def screen_db(tmp_path_factory):
    """q (8x8 tiles): max phenotypes on tile row 1, min on tile column 6; gate: max only."""
    screen = FixtureScreen()
    for layer in range(2):
        screen.matrix(layer, "q", 8, 8).matrix(layer, "gate", 16, 8)
        for col in range(8):
            screen.hit(layer, "q", 1, col, "max", severity=3)
        for row in range(8):
            screen.hit(layer, "q", row, 6, "min", severity=1)
        screen.hit(layer, "gate", 4, 4, "max", severity=2)
    return screen.write(tmp_path_factory.mktemp("plots") / "screen.db")


def colour_pixels(path, colour: str) -> int:
    """How many pixels of the image are (within rounding) exactly `colour`."""
    image = matplotlib.image.imread(path)[..., :3]
    return int((np.abs(image - np.array(to_rgb(colour))).max(axis=-1) < 0.02).sum())


def test_plot_command_writes_every_figure(screen_db, tmp_path, capsys):
    outdir = tmp_path / "figures"
    assert main(["plot", str(screen_db), str(outdir)]) == 0
    names = sorted(path.name for path in outdir.iterdir())
    assert names == [
        "map_gate.png",
        "map_q.png",
        "marginals_gate.png",
        "marginals_q.png",
        "rates.png",
        "rearranged_gate.png",
        "rearranged_q.png",
    ]
    assert "wrote 7 figures" in capsys.readouterr().out
    for name in names:
        image = matplotlib.image.imread(outdir / name)
        assert image.shape[0] > 200 and image.shape[1] > 300
        assert image[..., :3].std() > 0.02, f"{name} is blank"
    for name in ("map_q.png", "rearranged_q.png", "marginals_q.png"):
        assert colour_pixels(outdir / name, KIND_COLORS["max"]) > 20, name
        assert colour_pixels(outdir / name, KIND_COLORS["min"]) > 20, name
    assert colour_pixels(outdir / "map_gate.png", KIND_COLORS["max"]) > 4
    assert colour_pixels(outdir / "map_gate.png", KIND_COLORS["min"]) == 0
    # tile (1, 6) of q has a max and a min phenotype: one mark of its own colour, per layer
    for name in ("map_q.png", "rearranged_q.png"):
        assert colour_pixels(outdir / name, KIND_COLORS["both"]) > 4, name
    assert colour_pixels(outdir / "map_gate.png", KIND_COLORS["both"]) == 0


def test_min_severity_keeps_only_graver_phenotypes(screen_db, tmp_path):
    """At severity 3 only q's max row is left: no min (severity 1) and no gate (severity 2)."""
    outdir = tmp_path / "severe"
    assert main(["plot", str(screen_db), str(outdir), "--min-severity", "3"]) == 0
    assert colour_pixels(outdir / "map_q.png", KIND_COLORS["max"]) > 20
    for colour in ("min", "both"):
        assert colour_pixels(outdir / "map_q.png", KIND_COLORS[colour]) == 0, colour
    assert colour_pixels(outdir / "map_gate.png", KIND_COLORS["max"]) == 0


def test_map_puts_phenotypes_where_they_are(screen_db, tmp_path):
    """Max on tile row 1 fills a horizontal band; min on tile column 6 a vertical one."""
    frame = load_sites(screen_db, pick_screen(screen_db, None))
    path = save(mutation_map(frame, 0, "q"), tmp_path / "L0_q.png")
    image = matplotlib.image.imread(path)[..., :3]
    is_max = np.abs(image - np.array(to_rgb(KIND_COLORS["max"]))).max(axis=-1) < 0.02
    is_min = np.abs(image - np.array(to_rgb(KIND_COLORS["min"]))).max(axis=-1) < 0.02
    max_rows, max_cols = np.nonzero(is_max)
    min_rows, min_cols = np.nonzero(is_min)
    assert np.ptp(max_cols) > 5 * np.ptp(max_rows)
    assert np.ptp(min_rows) > 5 * np.ptp(min_cols)
    assert max_rows.mean() < min_rows.mean()
    assert min_cols.mean() > max_cols.mean()


def test_each_matrix_and_mixed_shapes(screen_db, tmp_path):
    frame = load_sites(screen_db, pick_screen(screen_db, None))
    written = write_figures(frame, tmp_path / "each", each_matrix=True)
    names = {path.name for path in written}
    assert {"map_L0_q.png", "map_L1_q.png", "map_L0_gate.png", "map_L1_gate.png"} <= names
    assert all(path.stat().st_size > 5000 for path in written)


def test_plot_bad_input_is_one_line(screen_db, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for args in (
        ["plot", str(tmp_path / "missing.db"), str(tmp_path / "out")],
        ["plot", str(screen_db), str(a_file)],
        ["plot", str(screen_db), str(tmp_path / "out"), "--screen", "nope"],
        ["plot", str(screen_db), str(tmp_path / "out"), "--min-severity", "0"],
    ):
        assert main(args) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("mutatui: "), error
