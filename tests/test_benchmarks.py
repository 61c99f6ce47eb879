"""Every benchmark behind a figure of the README or the docs runs, at a tiny size, as the user
types it: on the tiny models (`--model`) where it takes one, so a benchmark cannot rot unseen.
The figures themselves come from full runs, written down with their machine and date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import tiny_spec

from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.screening.samplers import RandomElements

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str, timeout: int = 300) -> str:
    """Run benchmarks/`script` with `args`; its output (the run must succeed)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_screen_throughput(tiny_model_dir):
    out = bench(
        "screen_throughput.py",
        *("--model", str(tiny_model_dir), "--elements", "6", "--tiles", "2", "--naive", "2"),
        *("--max-new-tokens", "6"),
    )
    assert "random elements, effect sizes on" in out and "outputs equal on 2/2" in out
    assert "64x64 tiles, effect sizes off" in out


def test_screen_throughput_in_bfloat16_as_a_screen_chooses(tiny_model_dir):
    """`--dtype bfloat16`: native where the lockstep decoder runs and holds here, else float32
    arithmetic with the native naive loop's rate beside it."""
    out = bench(
        "screen_throughput.py",
        *("--model", str(tiny_model_dir), "--dtype", "bfloat16", "--elements", "4"),
        *("--tiles", "0", "--naive", "2", "--max-new-tokens", "6", "--effects", "off"),
    )
    assert "outputs equal on 2/2" in out
    switched = "would run near the naive loop's speed here" in out
    assert switched == ("the native naive loop (" in out)


def test_near_ties(tiny_model_dir):
    out = bench("near_ties.py", "--model", str(tiny_model_dir), "--elements", "4", "--tiles", "2")
    assert "calibration (as a screen's start)" in out and "largest" in out


def test_big_llama():
    args = ["--layers", "2", "--hidden", "64", "--intermediate", "128", "--heads", "4"]
    out = bench("big_llama.py", *args, "--elements", "4", "--naive", "2", "--max-new-tokens", "4")
    assert "default batch size here" in out


def test_tile_stages(tiny_model_dir):
    out = bench(
        "tile_stages.py",
        "--model",
        str(tiny_model_dir),
        "--layer",
        "1",
        "--matrix",
        "down",
        "--count",
        "3",
    )
    assert "text probe" in out and "choice assay" in out


def test_tui_latency(tmp_path):
    out = bench(
        "tui_latency.py",
        *("--db", str(tmp_path / "small.db"), "--sites-per-matrix", "3", "--presses", "2"),
    )
    assert "first paint" in out and "p95" in out


def test_live_latency(tiny_model_dir):
    out = bench(
        "live_latency.py",
        *("--model", str(tiny_model_dir), "--tokens", "4", "--repeats", "1"),
        *("--sites", "L0.down[1,2];L1.q[0:8,0:8]"),
    )
    assert "first mutant token on screen" in out


def test_load_time(tiny_model_dir):
    out = bench("load_time.py", "--model", str(tiny_model_dir))
    assert "second load (from cache)" in out


def test_prediction_quality(tiny_model_dir):
    out = bench(
        "prediction_quality.py",
        *("--model", str(tiny_model_dir), "--matrices", "L1.o", "--element-matrices", "L2.k"),
        *("--elements", "2", "--max-new-tokens", "4"),
    )
    assert "Elements" in out


def test_prediction_recall(tiny, tiny_model_dir, questions_file, tmp_path):
    db = tmp_path / "recall.db"
    sites = RandomElements(number=6, seed=0)
    spec = tiny_spec(tiny_model_dir, questions_file, effects=True, choice=None, sites=sites)
    run_screen(spec, ScreenRun(db, batch_size=8), lambda _model: tiny[0])
    out = bench("prediction_recall.py", str(db), "--screen", spec.display_name, "--top", "10")
    assert "rank correlation (Spearman)" in out


@pytest.mark.ray
def test_ray_throughput(tiny_model_dir):
    out = bench(
        "ray_throughput.py",
        *("--model", str(tiny_model_dir), "--sites", "random:2,seed=0", "--layers", "0"),
        *("--max-new-tokens", "4"),
        timeout=600,
    )
    assert "results equal" in out


def test_gpu_check_dry_run(tiny_model_dir, tmp_path):
    report = tmp_path / "gpu_check.md"
    out = bench(
        "gpu_check.py",
        "--quick",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(report),
        timeout=600,
    )
    text = report.read_text()
    assert f"report: {report}" in out
    assert text.count("exit 0") == text.count("## "), text
