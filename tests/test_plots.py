"""The figures: written as real PNG files, with the kind colours where the phenotypes are."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
from analysis_fixtures import FixtureScreen
from matplotlib.colors import to_rgb

from mutatui.analysis.plots import (
    KIND_COLORS,
    add_caption,
    marginals,
    mutation_map,
    rate_heatmap,
    save,
    write_figures,
)
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


def bottom_ink(path, share: float = 0.025) -> int:
    """Non-white pixels in the bottom `share` of the image, where the caption goes."""
    image = matplotlib.image.imread(path)[..., :3]
    strip = image[-max(int(image.shape[0] * share), 1) :]
    return int((strip.min(axis=-1) < 0.9).sum())


def test_every_figure_says_what_a_phenotype_is(screen_db, tmp_path):
    """The command captions every figure with the screen, probes and phenotype definition;
    the same figures without a caption have nothing drawn along the bottom."""
    outdir = tmp_path / "captioned"
    assert main(["plot", str(screen_db), str(outdir), "--min-severity", "2"]) == 0
    frame = load_sites(screen_db, pick_screen(screen_db, None), None)
    bare = write_figures(frame, tmp_path / "bare")
    assert len(bare) == len(list(outdir.glob("*.png")))
    for path in bare:
        assert bottom_ink(path) == 0, path.name
        assert bottom_ink(outdir / path.name) > 50, path.name
    figure = add_caption(mutation_map(frame, 0, "q"), "probes p1: a phenotype is X")
    assert [text.get_text() for text in figure.texts] == ["probes p1: a phenotype is X"]


def test_rate_panels_share_one_colour_scale(screen_db):
    """At severity 2 only max mutations have phenotypes (q's row: 8 of 64 tiles); the min
    panel is drawn on the max panel's scale, so an empty min panel reads as empty."""
    frame = load_sites(screen_db, pick_screen(screen_db, None), None).with_min_severity(2)
    figure = rate_heatmap(frame)
    limits = [image.get_clim() for axes in figure.axes for image in axes.get_images()]
    assert limits == [(0.0, 0.125), (0.0, 0.125)]


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


def test_marginals_are_rates_per_line(tmp_path):
    """An element screen with a dense row (16 sites, 4 max phenotypes) and two single sites on
    other rows (one a max phenotype): the marginal shows 0.25 for the dense row and 1 for the
    lone hit, rates not counts (as counts the dense row would stand 4 times higher); min
    phenotypes hang below the axis."""
    dense = {(0, "down", 3, col) for col in range(16)}
    single = {(0, "down", 6, 2), (0, "down", 0, 9)}
    screen = FixtureScreen(name="elements", tile=1, sites=dense | single)
    screen.matrix(0, "down", 8, 16)
    for col in (0, 4, 8, 12):
        screen.hit(0, "down", 3, col, "max", severity=3)
    screen.hit(0, "down", 6, 2, "max", severity=3)
    screen.hit(0, "down", 0, 9, "min", severity=2)
    path = screen.write(tmp_path / "elements.db")
    frame = load_sites(path, pick_screen(path, "elements"))
    row_panel, col_panel = marginals(frame, "down").axes
    assert bar_heights(row_panel, "max") == {3: 0.25, 6: 1.0}
    assert bar_heights(row_panel, "min") == {0: -1.0}
    # column 2 holds a dense-row site without a phenotype and the lone hit of row 6
    assert bar_heights(col_panel, "max") == {0: 1.0, 2: 0.5, 4: 1.0, 8: 1.0, 12: 1.0}


def bar_heights(axes, kind: str) -> dict[int, float]:
    """Line -> height of the non-empty bars of `kind`'s colour."""
    colour = to_rgb(KIND_COLORS[kind])
    return {
        round(bar.get_x() + bar.get_width() / 2): float(bar.get_height())
        for bar in axes.patches
        if bar.get_facecolor()[:3] == colour and bar.get_height()
    }
