"""`mutatui doctor` and `mutatui screen --estimate`, as a user calls them, on the tiny model."""

import re
from dataclasses import replace

import pytest

from mutatui.cli import main
from mutatui.exact.screener import Screener


def test_doctor_checks_every_output_and_passes(tiny_model_dir, capsys):
    assert main(["doctor", "--model", str(tiny_model_dir), "--max-new-tokens", "12"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    equal = re.search(r"(\d+) of (\d+)\s+outputs equal", out)
    assert equal and equal.group(1) == equal.group(2) and int(equal.group(2)) >= 30
    # where it was, stage by stage (stderr is a log here: a line per stage and its end)
    mutations = equal.group(2)
    for line in ("baseline and near-tie tolerances 1/1", f"engine {mutations}/{mutations}"):
        assert f"mutatui: {line}" in captured.err
    assert f"mutatui: naive path {mutations}/{mutations}" in captured.err
    for row in ("setup", "speed", "settled naively", "tolerance", "peak memory"):
        assert row in out
    assert "the fast path (Llama)" in out and "measured on" in out


def test_doctor_fails_on_a_mismatch(tiny_model_dir, capsys, monkeypatch):
    """A fault injected into the engine (one token of one outcome changed) is caught."""
    screen_text = Screener.screen_text

    def faulty(self, prompt, baseline, mutations):
        outcomes = screen_text(self, prompt, baseline, mutations)
        if len(mutations) > 1:
            outcomes[1] = replace(outcomes[1], tokens=[*outcomes[1].tokens[:-1], 5])
        return outcomes

    monkeypatch.setattr(Screener, "screen_text", faulty)
    assert main(["doctor", "--model", str(tiny_model_dir), "--max-new-tokens", "12"]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.err


def test_screen_estimate_runs_nothing(tiny_model_dir, tmp_path, capsys):
    db = tmp_path / "never.db"
    args = ["screen", "--model", str(tiny_model_dir), "--db", str(db), "--layers", "0-1"]
    args += ["--matrices", "q,down", "--sites", "tiles:8", "--choice", "none", "--estimate"]
    assert main([*args, "--max-new-tokens", "8"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "mutatui: preparing: baselines, assays, tolerances 3/3" in captured.err
    assert re.search(r"mutatui: timing a sample (\d+)/\1", captured.err)
    planned = re.search(r"(\d+) mutations planned", out)
    # q is 32x32 (16 tiles of 8x8), down 32x64 (32 tiles), two layers, max and min
    assert planned and int(planned.group(1)) == 2 * 2 * (16 + 32)
    assert "estimated time:" in out and "peak memory:" in out
    assert not db.exists()


def test_doctor_with_a_spec_adds_its_estimate(tiny_model_dir, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'model = "{tiny_model_dir}"\nlayers = [0]\nmatrices = ["v"]\nkinds = ["max", "min"]\n'
        '[sites]\nsampler = "random"\ncount = 4\n[choice]\nquestions = "none"\n'
    )
    assert main(["doctor", "--model", str(tiny_model_dir), "--spec", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "8 mutations planned" in out and "estimated time" in out


def test_doctor_in_native_bfloat16_says_how_the_lockstep_decoder_fared(tmp_path, capsys):
    """A model whose bfloat16 decisions are nearly all near ties (this tiny OLMo 2): where this
    machine's kernels let the lockstep decoder run, the engine decodes in lockstep, exactly,
    and the table says it ran; elsewhere the table says why not, and every output is still the
    naive path's."""
    from tiny_models import FAMILY_CONFIGS, build_tiny_model

    from mutatui.engine.architecture import Architecture
    from mutatui.engine.models import load_model
    from mutatui.exact.lockstep import LockstepDecoder

    folder = build_tiny_model(tmp_path / "olmo2", FAMILY_CONFIGS["olmo2"], scale=8)
    args = ["doctor", "--model", str(folder), "--dtype", "bfloat16", "--max-new-tokens", "12"]
    assert main([*args, "--elements", "6", "--tiles", "2"]) == 0
    out = capsys.readouterr().out
    equal = re.search(r"(\d+) of (\d+)\s+outputs equal", out)
    assert equal and equal.group(1) == equal.group(2)
    lm = load_model(str(folder), dtype="bfloat16")
    if LockstepDecoder.chunk_for(Architecture(lm.model)) > 1:
        assert re.search(r"lockstep decoder\s+.*ran: the naive path batched", out)
        assert re.search(r"settled naively\s+.*0 of", out)
    else:
        assert re.search(r"lockstep decoder\s+.*not used: no batched product", out)


def test_an_estimate_of_ten_million_mutations_plans_in_about_a_minute(tmp_path, capsys):
    """Every element of three layers of a random model 512 wide (12,582,912 mutations): the
    plan is sized without listing it, the sample is cut at its time budget, and the estimate
    gives its range, the time over 2, 4 and 8 shards, memory and disk; nothing is written."""
    from test_screen_run import WIDE
    from tiny_models import build_tiny_model

    from mutatui.screening.estimate import SAMPLE_SECONDS

    model = build_tiny_model(tmp_path / "wide", WIDE)
    db = tmp_path / "never.db"
    args = ["screen", "--model", str(model), "--db", str(db), "--layers", "0-2"]
    args += ["--sites", "full", "--kinds", "zero", "--choice", "none", "--estimate"]
    assert main([*args, "--max-new-tokens", "8"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "12,582,912 mutations planned" in out
    span = r"((?:\d+ days?, )?\d+:\d\d:\d\d)"
    times = re.search(rf"estimated time: {span} \(from {span} .* to {span} at its slowest", out)
    assert times, out

    def seconds(text: str) -> int:
        days, _, clock = text.rpartition(", ")
        hours, minutes, secs = (int(part) for part in clock.split(":"))
        whole_days = int(days.split()[0]) if days else 0
        return whole_days * 86400 + hours * 3600 + minutes * 60 + secs

    estimate, fastest, slowest = (seconds(times.group(k)) for k in (1, 2, 3))
    assert 0 < fastest <= estimate <= slowest
    shards = re.search(rf"Ray workers, each a machine like this: 2: {span}, 4: {span}", out)
    assert shards and seconds(shards.group(1)) == pytest.approx(estimate / 2, abs=1)
    assert re.search(r"disk: at most about [\d.]+ [kMG]?B \(the sample's rows", out)
    assert SAMPLE_SECONDS <= 60  # the sample's budget: about a minute with its preparation
    assert not db.exists()


def test_an_estimate_timed_on_a_busy_machine_says_so(capsys):
    from mutatui.commands.screen import print_estimate
    from mutatui.screening.estimate import Estimate

    def estimate(load: float | None) -> Estimate:
        return Estimate(
            planned=1000,
            sampled=32,
            seconds_per_mutation=2.0,
            batch_size=32,
            fastest=1.5,
            slowest=3.0,
            bytes_per_mutation=400.0,
            load=load,
            peak_memory=2**30,
            batch_memory=2**31,
            path="the fast path",
            setup="float32 on cpu",
            notes=(),
        )

    print_estimate("busy", estimate(2.5))
    printed = capsys.readouterr()
    assert "estimated time: 0:33:20 (from 0:25:00 " in printed.out
    assert "to 0:50:00 at its slowest" in printed.out
    assert "2: 0:16:40, 4: 0:08:20, 8: 0:04:10" in printed.out
    assert "disk: at most about 400.0 kB" in printed.out
    assert "busy while the sample was timed (load average 2.5 per core)" in printed.err
    for calm in (0.5, None):
        print_estimate("calm", estimate(calm))
        assert "busy" not in capsys.readouterr().err
