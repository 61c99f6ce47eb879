"""The explorer on published screens (imported from small copies of Hu et al.'s files): the
overview shows an experiment's NSMs per matrix and cycles the experiments, the grid colours the
table's tiles by Mmlu21 points lost, destruction and the Drosophila cosine and counts every other
tile as silent, the detail shows every published field, the writers view the authors' labels,
and `x` asks for the model in the local cache (one line when it is not there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from paper_fixtures import write_paper
from test_tui_app import SIZE, settle
from tiny_models import VOCAB_SIZE, tiny_tokenizer

from mutatui.cli import main
from mutatui.tui.app import ExplorerApp
from mutatui.tui.screens.detail import DetailScreen
from mutatui.tui.screens.live import LiveScreen
from mutatui.tui.screens.matrix import MatrixScreen
from mutatui.tui.screens.overview import OverviewScreen
from mutatui.tui.screens.writers import WritersScreen
from mutatui.tui.widgets.cell_summary import CellSummary
from mutatui.tui.widgets.matrix_grid import MatrixGrid
from mutatui.tui.widgets.overview_heatmap import OverviewHeatmap

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "paper.db"
    assert main(["import-paper", str(write_paper(tmp_path / "paper")), "--db", str(path)]) == 0
    return path


def text_of(widget) -> str:
    return str(widget.render())


async def open_published(pilot, name: str) -> OverviewScreen:
    await settle(pilot)
    screens = pilot.app.screen.summaries
    for _ in range([s.name for s in screens].index(name)):
        await pilot.press("down")
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, OverviewScreen)
    return pilot.app.screen


async def test_the_overview_shows_each_experiment_in_turn(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        overview = await open_published(pilot, "hu2024-llama2-7b")
        heatmap = overview.query_one(OverviewHeatmap)
        status = overview.query_one("#overview-status")
        assert "experiment Python0" in text_of(status) and "15 NSMs" in text_of(status)
        layer, column = heatmap.layer_ids.index(0), heatmap.type_names.index("down")
        assert heatmap.max_counts[layer, column] == 7  # Table 1: L0 down, 7 NSMs
        tiles = 64 * 172  # 4096 x 11008 in 64x64 tiles, three kinds each
        assert heatmap.shades[0][layer, column] == pytest.approx(7 / (tiles * 3))
        await pilot.press("e")
        assert "experiment Drosophila" in text_of(status)
        await pilot.press("e", "e")
        assert "experiment Python0" in text_of(status)


async def test_the_grid_colours_the_table_and_counts_the_rest_silent(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_published(pilot, "hu2024-llama2-7b")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MatrixScreen)
        grid = screen.query_one(MatrixGrid)
        assert grid.colour_mode == "score"
        status = text_of(screen.query_one("#matrix-status"))
        assert "by score (Mmlu21 points lost)" in status
        await pilot.press("s")
        assert grid.colour_mode == "destroyed"
        await pilot.press("s")
        assert grid.colour_mode == "cosine"
        await pilot.press("s", "s")
        assert grid.colour_mode == "severity"
        line = screen.layout_data.line(0)
        assert (line.tested > 0).all(), "every tile was screened"
        screen.go_to_site(screen.check_site("L0.q[1920,0]"))  # Table 2: (30, 0), min, 9
        await settle(pilot)
        summary = text_of(screen.query_one(CellSummary))
        assert "listed in its table" in summary
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        head = text_of(app.screen.query_one("#detail-head"))
        assert "the table gives no value" in head
        grades = " ".join(text_of(widget) for widget in app.screen.query(".grade"))
        assert "score 9/21 (-5)" in grades and "cosine 0.94" in grades


async def test_the_writers_view_shows_the_authors_labels(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_published(pilot, "hu2024-zephyr")
        await pilot.press("w")
        await settle(pilot)
        assert isinstance(app.screen, WritersScreen)
        words = app.screen.query_one("#writers-table")
        rows = [[str(cell) for cell in words.get_row_at(n)] for n in range(words.row_count)]
        staring = next(row for row in rows if row[1] == "staring")
        assert "poetic" in staring[-1]  # the authors' green: a poem


async def test_live_on_a_published_tile_asks_for_the_model_in_the_cache(db):
    app = ExplorerApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await open_published(pilot, "hu2024-llama2-7b")
        await pilot.press("enter")
        await settle(pilot)
        app.screen.go_to_site(app.screen.check_site("L0.q[1920,0]"))
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, LiveScreen)
        await settle(pilot)
        said = " ".join(text_of(widget) for widget in app.screen.query("Static"))
        assert "meta-llama/Llama-2-7b-hf" in said and "not in the local Hugging Face cache" in said


LLAMA2_SHAPES = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "num_hidden_layers": 1,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
}
"""Llama-2-7b's matrices (q 4096x4096, down 4096x11008), one of its 32 layers: the tiles of
layer 0 run as they would on the real model, in a few seconds on a CPU."""


def cache_llama2(cache: Path) -> None:
    """A random model of Llama-2-7b's shapes with a character vocabulary, stored under its hub
    id in a Hugging Face cache (bfloat16, as the hub has it)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    revision = "0" * 40
    repo = cache / "models--meta-llama--Llama-2-7b-hf"
    settings = dict(LLAMA2_SHAPES)
    config = AutoConfig.for_model(
        settings.pop("model_type"),
        vocab_size=VOCAB_SIZE,
        bos_token_id=1,
        eos_token_id=1,
        **settings,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    model.save_pretrained(repo / "snapshots" / revision)
    tiny_tokenizer().save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def test_live_runs_a_published_tile_on_the_model_in_the_local_cache(db, tmp_path):
    """`x` on Table 2's L0.down tile (2, 171), the last column of an 11008-wide matrix: live mode
    finds the model under its hub id in the cache, runs the tile with the table's kind, as the
    naive path does, and leaves the weights as they were; nothing is downloaded."""
    cache_llama2(tmp_path / "hub")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    script = Path(__file__).parent / "live_published_app.py"
    done = subprocess.run(
        [sys.executable, str(script), str(db), "L0.down[128,10944]"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["model"] == "meta-llama/Llama-2-7b-hf"
    assert shown["shape"] == [4096, 11008]
    assert shown["site"] == "L0.down[128:192,10944:11008]"
    assert shown["kind"] == "max"  # the table's kind for this tile
    assert shown["status"] == "COMPLETED"
    assert shown["matches_naive"] and shown["restored"]
