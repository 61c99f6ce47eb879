"""Where a screen ran: recorded with it, shown by `info`, kept by a merge, and compared by
`mutatui verify`, which says whether it verifies on the same machine and which outcomes (those
at near ties) may legitimately differ on another."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import duckdb
from tiny_models import tiny_spec

from mutatui.cli import main
from mutatui.engine.machine import this_machine
from mutatui.screening.plan import Shard
from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.screening.verify import compare_machines
from mutatui.store.machines import machines_of, record_machine
from mutatui.store.merge import merge


def loader(tiny):
    return lambda _model: tiny[0]


def test_a_screen_records_where_it_ran_and_info_shows_it(
    tiny, tiny_model_dir, questions_file, tmp_path, capsys
):
    db = tmp_path / "where.db"
    run_screen(tiny_spec(tiny_model_dir, questions_file), ScreenRun(db, batch_size=8), loader(tiny))
    here = this_machine("cpu")
    assert machines_of(db, 1) == [here]
    assert here.processor and here.versions.startswith("torch ") and here.threads >= 1
    assert main(["info", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "ran on" in shown and here.processor.split(" (")[0] in shown
    assert main(["info", str(db), "--json"]) == 0
    assert here.digest in capsys.readouterr().out


def test_a_merge_keeps_every_machine_its_parts_ran_on(
    tiny, tiny_model_dir, questions_file, tmp_path
):
    spec = tiny_spec(tiny_model_dir, questions_file)
    parts = [tmp_path / f"part{k}.db" for k in (1, 2)]
    for k, part in enumerate(parts, start=1):
        run_screen(spec, ScreenRun(part, shard=Shard(k, 2), batch_size=8), loader(tiny))
    elsewhere = replace(this_machine("cpu"), kernels="ATen AVX2 (ONEDNN_MAX_CPU_ISA=AVX2)")
    with duckdb.connect(str(parts[1])) as connection:
        connection.execute("DELETE FROM machines")
    record_machine(parts[1], 1, elsewhere)
    merged = tmp_path / "merged.db"
    merge(merged, parts)
    assert {m.digest for m in machines_of(merged, 1)} == {
        this_machine("cpu").digest,
        elsewhere.digest,
    }


MACHINE = "from mutatui.engine.machine import this_machine; m = this_machine(); print(m.digest, m.kernels)"


def test_an_emulated_processor_is_another_machine():
    """oneDNN and ATen capped at AVX2 before torch loads: the fingerprint names the cap and has
    another digest; the same process started twice has the same."""
    run = [sys.executable, "-c", MACHINE]
    caps = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
    uncapped = {name: value for name, value in os.environ.items() if name not in caps}
    plain = [
        subprocess.run(run, capture_output=True, text=True, env=uncapped).stdout.split()
        for _ in range(2)
    ]
    capped_env = {**uncapped, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    capped = subprocess.run(run, capture_output=True, text=True, env=capped_env).stdout
    assert plain[0] == plain[1]
    assert "ATen AVX2" in capped and "ONEDNN_MAX_CPU_ISA=AVX2" in capped
    assert capped.split()[0] != plain[0][0]


def test_verify_says_whether_it_runs_on_the_screens_machine(
    tiny, tiny_model_dir, questions_file, tmp_path, capsys
):
    db = tmp_path / "verify.db"
    run_screen(tiny_spec(tiny_model_dir, questions_file), ScreenRun(db, batch_size=8), loader(tiny))
    assert main(["verify", str(db), "--sample", "3"]) == 0
    said = capsys.readouterr()
    assert "verifying on the machine the screen ran on" in said.err
    assert "3 of 3 sampled mutations" in said.out and "sat at a near tie" in said.out
    elsewhere = replace(this_machine("cpu"), processor="Some Other CPU (x86_64, 64 cores)")
    with duckdb.connect(str(db)) as connection:
        connection.execute("DELETE FROM machines")
    record_machine(db, 1, elsewhere)
    assert main(["verify", str(db), "--sample", "3"]) == 0
    said = capsys.readouterr().err
    assert "verifying on another machine than the screen ran on" in said
    assert "processor:" in said and "Some Other CPU" in said
    with duckdb.connect(str(db)) as connection:
        connection.execute("DELETE FROM machines")
    comparison = compare_machines([], this_machine("cpu"))
    assert comparison.same is None and "not recorded" in comparison.line


def test_half_precision_tiles_are_read_from_the_processor_and_a_cap_hides_them(monkeypatch):
    """A screen leaves native half precision on a CPU without AMX tiles (its batches are no
    faster there): the flag is the processor's, and a oneDNN cap below AMX hides it."""
    from pathlib import Path

    from mutatui.engine.machine import half_tiles_here

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    assert half_tiles_here("bfloat16") == (" amx_bf16" in flags)
    assert not half_tiles_here("float32")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert not half_tiles_here("bfloat16")
