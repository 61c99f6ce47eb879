import subprocess
import sys

import numpy as np
import pytest
import torch

from mutatui.engine.decoding import Decoding
from mutatui.engine.mutations import make_mutation, mutated
from mutatui.engine.sites import parse_site
from mutatui.errors import MutatuiError
from mutatui.guided.predict import (
    baseline_probe,
    continuation_log_likelihood,
    predict,
)
from mutatui.guided.sampler import guided_sites
from mutatui.store.guided import (
    predicted_layer,
    prediction_info,
    prediction_lines,
    prediction_maps,
    prediction_shapes,
    prediction_tiles,
    save_prediction,
    top_predicted_sites,
)

GREEDY = Decoding(max_new_tokens=12)
TILE = 16


@pytest.fixture(scope="module")
def probes(tiny):
    lm, catalog = tiny
    return [baseline_probe(lm, catalog, text, GREEDY) for text in ("the cat sat", "hello")]


@pytest.fixture(scope="module")
def maps(tiny, probes):
    lm, catalog = tiny
    return predict(lm, catalog, probes, tile_size=TILE, top_k=200)


def log_likelihood(lm, probes):
    with torch.no_grad():
        return [float(continuation_log_likelihood(lm, probe)) for probe in probes]


def test_prediction_leaves_weights_and_grad_flags_untouched(tiny, probes):
    lm, catalog = tiny
    before = {name: p.detach().clone() for name, p in lm.model.named_parameters()}
    predict(lm, catalog, probes[:1], tile_size=TILE, top_k=5)
    for name, parameter in lm.model.named_parameters():
        assert torch.equal(parameter, before[name]), name
        assert not parameter.requires_grad, name
        assert parameter.grad is None, name


def test_scores_match_finite_differences_of_the_real_mutation(tiny, probes, maps):
    """score = mean over probes |dL/dw * (0 - w)|, with dL/dw measured by editing the weight."""
    lm, catalog = tiny
    zero_maps = [m for m in maps if m.kind == "zero" and m.matrix in ("down", "v", "gate")]
    step = 1e-3
    checked = 0
    for item in zero_maps:
        row, col, score = item.top[0]
        weight = float(catalog.weight(item.layer, item.matrix)[row, col])
        slopes = []
        site = f"L{item.layer}.{item.matrix}[{row},{col}]"
        for sign in (1, -1):
            with mutated(catalog, make_mutation(site, repr(weight + sign * step), catalog)):
                slopes.append(np.array(log_likelihood(lm, probes)))
        gradient = (slopes[0] - slopes[1]) / (2 * step)
        expected = float(np.mean(np.abs(gradient * weight)))
        assert score == pytest.approx(expected, rel=5e-2), site
        checked += 1
    assert checked == 3 * catalog.num_layers


def test_first_order_estimate_tracks_real_zero_mutations(tiny, probes, maps):
    """Across a matrix's range of scores, the estimate follows the real change of L."""
    lm, catalog = tiny
    baseline = np.array(log_likelihood(lm, probes))
    for item in (m for m in maps if m.kind == "zero" and m.matrix in ("q", "v", "down")):
        estimated, measured = [], []
        for row, col, score in item.top[::20]:
            site = make_mutation(f"L{item.layer}.{item.matrix}[{row},{col}]", "zero", catalog)
            with mutated(catalog, site):
                change = np.array(log_likelihood(lm, probes)) - baseline
            estimated.append(score)
            measured.append(float(np.mean(np.abs(change))))
        correlation = np.corrcoef(estimated, measured)[0, 1]
        assert correlation > 0.9, (item.layer, item.matrix, estimated, measured)


def test_maps_are_consistent_summaries(tiny, maps):
    _lm, catalog = tiny
    assert {m.kind for m in maps} == {"max", "min", "zero"}
    assert len(maps) == 3 * len(catalog)
    for item in maps:
        info = catalog.get(item.layer, item.matrix)
        assert item.tile_sum.shape == (-(-info.rows // TILE), -(-info.cols // TILE))
        assert item.row_sum.shape == (info.rows,) and item.col_sum.shape == (info.cols,)
        assert item.tile_sum.sum() == pytest.approx(item.row_sum.sum(), rel=1e-4)
        assert item.tile_sum.sum() == pytest.approx(item.col_sum.sum(), rel=1e-4)
        scores = [score for _r, _c, score in item.top]
        assert scores == sorted(scores, reverse=True)
        assert item.tile_max.max() == pytest.approx(scores[0])
        # |sum| <= sum of ||: a whole-tile estimate never exceeds its elements' total.
        assert np.all(item.tile_block <= item.tile_sum * (1 + 1e-5) + 1e-6)


def test_max_scores_differ_from_min_scores(maps):
    by_kind = {(m.layer, m.matrix, m.kind): m for m in maps}
    item_max, item_min = by_kind[(0, "down", "max")], by_kind[(0, "down", "min")]
    assert not np.allclose(item_max.tile_sum, item_min.tile_sum)


def test_store_round_trip_and_reads(tmp_path, probes, maps):
    db = tmp_path / "guided.db"
    info = save_prediction(
        db,
        name=None,
        model="tiny",
        probes=probes,
        decoding="greedy",
        max_new_tokens=12,
        tile_size=TILE,
        top_k=200,
        elapsed_seconds=1.0,
        maps=maps,
    )
    assert info.name == "prediction-1" and info.probes == 2 and info.tile_size == TILE
    item = next(m for m in maps if (m.layer, m.matrix, m.kind) == (2, "gate", "max"))
    tiles = prediction_tiles(db, 2, "gate", "max")
    assert tiles.dtype == np.float32 and np.array_equal(tiles, item.tile_sum)
    assert np.array_equal(
        prediction_tiles(db, 2, "gate", "max", statistic="tile_max"), item.tile_max
    )
    whole = prediction_maps(db, "min", statistic="tile_block")
    assert len(whole) == len(maps) // 3
    rows, cols = prediction_lines(db, 2, "gate", "max")
    assert np.array_equal(rows, item.row_sum) and np.array_equal(cols, item.col_sum)
    top = top_predicted_sites(db, kinds=["max"], layers=[2], matrices=["gate"])
    assert [(s.row, s.col) for s in top] == [(r, c) for r, c, _s in item.top]
    best = top_predicted_sites(db, limit=5)
    assert [s.score for s in best] == sorted((s.score for s in best), reverse=True)
    assert best[0].score == pytest.approx(max(m.top[0][2] for m in maps))
    assert prediction_shapes(db)[(2, "gate")] == (64, 32)
    shading = predicted_layer(db, 2, "gate", "max")
    assert shading.tile_size == TILE and shading.value(0, 64, 0, 32) == item.tile_sum.max()
    with pytest.raises(MutatuiError, match="already exists"):
        save_prediction(
            db,
            name="prediction-1",
            model="tiny",
            probes=probes,
            decoding="greedy",
            max_new_tokens=12,
            tile_size=TILE,
            top_k=200,
            elapsed_seconds=1.0,
            maps=maps[:1],
        )
    assert prediction_info(db).name == "prediction-1"
    with pytest.raises(MutatuiError, match="valid: prediction-1"):
        prediction_tiles(db, 0, "q", "max", prediction="nope")
    with pytest.raises(MutatuiError, match="valid: tile_block"):
        prediction_tiles(db, 0, "q", "max", statistic="mean")


def test_guided_sites_dedupe_and_add_lines(maps):
    class Ranked:
        def __init__(self, layer, matrix, row, col, score):
            self.layer, self.matrix, self.row, self.col, self.score = layer, matrix, row, col, score

    ranked = [Ranked(1, "down", 2, 3, 9.0), Ranked(1, "down", 2, 3, 8.0), Ranked(0, "q", 4, 4, 7.0)]
    assert [str(s) for s in guided_sites(ranked, 5)] == ["L1.down[2,3]", "L0.q[4,4]"]
    with_lines = guided_sites(ranked, 1, lines=True, shapes={(1, "down"): (32, 64)})
    assert [str(s) for s in with_lines] == ["L1.down[2,3]", "L1.down[2,0:64]", "L1.down[0:32,3]"]
    with pytest.raises(MutatuiError):
        guided_sites(ranked, 0)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "mutatui", *args], capture_output=True, text=True, timeout=300
    )


def test_predict_command_stores_and_emits_sites(tiny, tiny_model_dir, tmp_path):
    _lm, catalog = tiny
    db, sites = tmp_path / "p.db", tmp_path / "sites.txt"
    result = run_cli(
        "predict",
        "--model",
        str(tiny_model_dir),
        "--prompt",
        "the cat sat",
        "--db",
        str(db),
        "--max-new-tokens",
        "8",
        "--tile-size",
        "16",
        "--emit-sites",
        str(sites),
        "--emit-count",
        "25",
        "--emit-lines",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "prediction-1"
    lines = sites.read_text().splitlines()
    parsed = [parse_site(line, catalog) for line in lines]
    elements = [s for s in parsed if s.is_element]
    assert len(elements) == 25 and len(parsed) == len(set(parsed)) > 25
    best = top_predicted_sites(db, limit=1)[0]
    assert lines[0] == best.site


def test_predict_command_rejects_bad_kind_in_one_line(tiny_model_dir, tmp_path):
    result = run_cli(
        "predict", "--model", str(tiny_model_dir), "--prompt", "x", "--db", str(tmp_path / "d.db"),
        "--kinds", "max,huge",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "mutatui: cannot predict kind 'huge'; valid: max, min, zero"


def test_emitted_spec_plans_a_screen_of_exactly_those_sites(tiny, tiny_model_dir, tmp_path):
    """`--emit-sites X.toml` writes a spec the screen machinery reads: a list sampler."""
    from mutatui.screening.spec import load_spec_file, spec_from_table

    _lm, catalog = tiny
    db, spec_file = tmp_path / "p.db", tmp_path / "guided.toml"
    result = run_cli(
        "predict", "--model", str(tiny_model_dir), "--prompt", "hello", "--db", str(db),
        "--max-new-tokens", "6", "--kinds", "max,min", "--emit-sites", str(spec_file),
        "--emit-count", "12", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = spec_from_table(load_spec_file(spec_file))
    assert spec.model == str(tiny_model_dir) and spec.kinds == ("max", "min")
    plan = spec.plan(catalog)
    planned = {str(plan.mutation_at(i).site) for i in range(len(plan))}
    wanted = {s.site for s in top_predicted_sites(db, kinds=["max", "min"])}
    assert len(plan) == 24 and len(planned) == 12 and planned <= wanted


def test_tile_block_is_the_whole_tile_estimate(tiny, probes):
    """tile_block = |sum over the tile of dL/dw * (t - w)|, with dL/dw from plain autograd."""
    lm, catalog = tiny
    [item] = [
        m
        for m in predict(lm, catalog, probes[:1], kinds=["max"], tile_size=TILE, top_k=1)
        if (m.layer, m.matrix) == (1, "down")
    ]
    weight = catalog.parameter(1, "down")  # plain Llama: the matrix is the stored weight
    weight.requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad(continuation_log_likelihood(lm, probes[0]), [weight])
    finally:
        weight.requires_grad_(False)
    estimate = grad * (catalog.get(1, "down").max - weight.detach())
    for tile_row in range(item.tile_block.shape[0]):
        for tile_col in range(item.tile_block.shape[1]):
            square = estimate[
                tile_row * TILE : (tile_row + 1) * TILE, tile_col * TILE : (tile_col + 1) * TILE
            ]
            expected = float(square.sum().abs())
            assert item.tile_block[tile_row, tile_col] == pytest.approx(
                expected, rel=1e-3, abs=1e-5
            )
