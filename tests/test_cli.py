"""The `mutatui` command as a user runs it: real subprocesses on a tiny model folder."""

import json
import subprocess
import sys

import pytest


def mutatui(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mutatui", *args], capture_output=True, text=True, timeout=300
    )


def test_mutate_json_reports_both_outputs_and_the_divergence(tiny_model_dir):
    done = mutatui(
        "mutate",
        "--model",
        str(tiny_model_dir),
        "--prompt",
        "the cat",
        "--prompt",
        "a dog",
        "--site",
        "L1.down[0:32,0:64]",
        "--kind",
        "max",
        "--max-new-tokens",
        "12",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [record["prompt"] for record in records] == ["the cat", "a dog"]
    for record in records:
        assert record["site"] == "L1.down[0:32,0:64]" and record["kind"] == "max"
        changed = record["baseline_tokens"] != record["mutant_tokens"]
        assert record["changed"] == changed
        if changed:
            index = record["diverge_at"]
            assert record["baseline_tokens"][:index] == record["mutant_tokens"][:index]


def test_mutate_prints_side_by_side(tiny_model_dir):
    done = mutatui(
        "mutate",
        "--model",
        str(tiny_model_dir),
        "--prompt",
        "hi",
        "--site",
        "L0.q[1,2]",
        "--kind",
        "min",
        "--max-new-tokens",
        "6",
    )
    assert done.returncode == 0, done.stderr
    assert "baseline" in done.stdout and "mutant" in done.stdout and "L0.q[1,2]" in done.stdout


def test_mutate_without_a_prompt_runs_the_papers_probe_and_says_so(tiny_model_dir):
    done = mutatui(
        "mutate", "--model", str(tiny_model_dir), "--site", "L0.q[1,2]", "--max-new-tokens", "4",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no --prompt: the paper's probe 'The life cycle of Drosophila:'" in done.stderr
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["prompt"] == "The life cycle of Drosophila:"


def test_matrices_lists_every_matrix(tiny_model_dir):
    done = mutatui("matrices", "--model", str(tiny_model_dir), "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 21
    assert {row["matrix"] for row in rows} == {"q", "k", "v", "o", "gate", "up", "down"}
    assert all(row["min"] <= row["max"] for row in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "L1.q[0,0"], "bad site 'L1.q[0,0'"),
        (["--site", "L9.q[0,0]"], "layer 9 out of range; valid: 0..2"),
        (["--site", "L1.qq[0,0]"], "unknown matrix 'qq'"),
        (["--site", "L1.q[0,0]", "--kind", "huge"], "bad mutation kind 'huge'"),
        (["--site", "L1.q[0,0]", "--model", "/no/such/folder"], "model not found"),
        (["--site", "L1.q[0,0]", "--model", "missing.gguf"], "GGUF file not found"),
        (
            ["--site", "L1.q[0,0]", "--model", "someone/uncached-model"],
            "not in the local Hugging Face cache",
        ),
    ],
)
def test_bad_input_is_one_line_not_a_traceback(tiny_model_dir, args, message):
    base = ["mutate", "--model", str(tiny_model_dir), "--prompt", "x", "--max-new-tokens", "2"]
    done = mutatui(*base, *args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if not line.startswith("mutatui: loading")]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
