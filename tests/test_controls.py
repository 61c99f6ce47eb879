"""Effect sizes taken against a wild-type control in every pass, the screen's noise floor, and
the same numbers from every process: KL never below zero, effect sizes of a mutation the same
whatever batch or order it is measured in, a screen rerun in another process identical to the
first, effect sizes made before controls refused until recomputed, effects under the floor
counted as none."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from naive import sample_mutations
from tiny_models import tiny_spec

from mutatui.analysis.grades import EffectGrade
from mutatui.cli import main
from mutatui.engine.decoding import Decoding, encode_prompt
from mutatui.engine.mutations import make_mutation
from mutatui.exact.effects import measure_logits
from mutatui.exact.noise import NoiseFloor, kl_floor, shown_effect
from mutatui.exact.screener import Screener
from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.screening.verify import EFFECT_TOLERANCE, agrees, naive_effects
from mutatui.store.effects import noise_of
from mutatui.store.frames import load_sites, pick_screen

GREEDY = Decoding(max_new_tokens=12)
PROMPT = "the cat sat"


def loader(tiny):
    return lambda _model: tiny[0]


def test_kl_is_never_below_zero_and_zero_for_a_mutation_that_changes_nothing(tiny):
    """A KL is a divergence: never negative, whatever the rounding (the old sum P log P minus
    sum P log Q read -3e-4 for mutations that barely move the model). A mutation that writes an
    element's own value changes no weight: its effect sizes are zero to the design's precision
    (1e-6). Not always exactly zero: a pass's rows need not round alike (under an AVX2 cap on
    an Intel processor with AMX, its row and its control's differ by 3e-8 nats)."""
    lm, catalog = tiny
    prompt = encode_prompt(lm, PROMPT)
    info = catalog.get(1, "down")
    same = float(catalog.weight(1, "down")[3, 4])
    mutations = [make_mutation("L1.down[3,4]", repr(same), catalog), *sample_mutations(catalog)]
    assert info.rows > 3
    screener = Screener(lm, catalog, GREEDY, batch_size=5, effects=True)
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    nothing = outcomes[0].effect
    assert outcomes[0].diverge_at is None
    assert all(abs(v) <= 1e-6 for v in (nothing.delta_nll, nothing.kl_prefix, nothing.kl_all))
    assert min(nothing.kl_prefix, nothing.kl_all) >= 0.0
    kls = [o.effect.kl_all for o in outcomes if o.effect.kl_all is not None]
    assert len(kls) > 20 and min(kls) >= 0.0
    # the measurement alone: identical logits move nothing; logits shifted by a constant move
    # nothing either, but for the float32 rounding of the shifted logits (KL ~ 1e-14), which
    # the old form (an entropy minus a cross-entropy, ~6 nats each) read as 1e-4
    logits = torch.randn(5, 97, dtype=torch.float32) * 4
    targets = logits.argmax(-1)
    same = measure_logits(logits, targets, [logits])[0]
    assert float(same.kl.abs().max()) == 0.0 and float(same.nll_change.abs().max()) == 0.0
    shifted = measure_logits(logits, targets, [logits + 3.0])[0]
    assert float(shifted.kl.min()) >= 0.0 and float(shifted.kl.max()) < 1e-12
    assert float(shifted.nll_change.abs().max()) < 1e-6


def test_effect_sizes_do_not_depend_on_the_batch_or_the_order(tiny):
    """The same mutations measured one at a time, in batches of three, all together and in
    reverse: every effect size within the float32 tolerance of the naive path, in each."""
    lm, catalog = tiny
    prompt = encode_prompt(lm, PROMPT)
    mutations = sample_mutations(catalog, seed=3)[::3]
    reference = None
    for batch_size, order in ((1, 1), (3, 1), (len(mutations), 1), (4, -1)):
        screener = Screener(lm, catalog, GREEDY, batch_size=batch_size, effects=True)
        baseline = screener.baseline(prompt)
        ordered = mutations[::order]
        outcomes = screener.screen_text(prompt, baseline, ordered)[::order]
        if reference is None:
            reference = [
                naive_effects(lm, catalog, prompt, baseline, m, o.diverge_at)
                for m, o in zip(mutations, outcomes, strict=True)
            ]
        for mutation, outcome, naive in zip(mutations, outcomes, reference, strict=True):
            found = outcome.effect
            engine_values = (found.delta_nll, found.kl_prefix, found.kl_all)
            for engine, expected in zip(engine_values, naive[:3], strict=True):
                assert agrees(engine, expected, EFFECT_TOLERANCE[torch.float32]), (
                    f"{mutation}, batch {batch_size}, order {order}: {engine} vs {expected}"
                )
    # neither the engine nor the reference leaves a hook on the model (transformers keeps the
    # hooks it records hidden states with: the reference asks for none)
    assert all(not module._forward_hooks for module in lm.model.modules())


def test_every_pass_carries_a_control_and_the_screen_records_its_noise_floor(
    tiny, tiny_model_dir, questions_file, tmp_path, capsys
):
    db = tmp_path / "floor.db"
    spec = tiny_spec(tiny_model_dir, questions_file, effects=True)
    run_screen(spec, ScreenRun(db, batch_size=8), loader(tiny))
    floor = noise_of(db, 1)
    assert floor is not None and floor.controls > 0
    assert floor.kl >= 0 and floor.nll >= 0
    with duckdb.connect(str(db), read_only=True) as connection:
        results = connection.execute("SELECT count(*) FROM effects").fetchone()[0]
    assert floor.controls < results, "a control per pass and layer, not per mutant"
    assert main(["info", str(db)]) == 0
    assert f"noise floor KL {floor.kl:.2g}" in capsys.readouterr().out.replace("\n", " ")


SCREEN_IN_A_PROCESS = """
import sys
from mutatui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def table(db, query):
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute(query).fetchall()


def test_the_same_screen_in_two_processes_gives_identical_outcomes_and_effect_sizes(
    tiny_model_dir, tmp_path
):
    """Two processes on one machine, one screen each: the same outcomes and the same effect
    sizes, to the last bit."""
    dbs = [tmp_path / f"run{n}.db" for n in (1, 2)]
    for db in dbs:
        args = ["screen", "--model", str(tiny_model_dir), "--db", str(db), "--layers", "0,2"]
        args += ["--sites", "random:6,seed=1", "--choice", "none", "--max-new-tokens", "12"]
        args += ["--quiet"]
        done = subprocess.run(
            [sys.executable, "-c", SCREEN_IN_A_PROCESS, *args], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    results = "SELECT * EXCLUDE (screen_id) FROM results ORDER BY mutation_id, probe_id"
    effects = "SELECT * EXCLUDE (screen_id) FROM effects ORDER BY mutation_id, probe_id"
    first, second = ((table(db, results), table(db, effects)) for db in dbs)
    assert first[0] == second[0] and len(first[0]) > 0
    assert first[1] == second[1] and len(first[1]) == len(first[0])


FINDINGS = Path(__file__).parent.parent / "scripts" / "findings.py"


def findings_index(db: Path, name: str) -> str:
    """scripts/findings.py's index on a copy of the database whose screen is called `name`."""
    copy = db.with_name(f"{name}.db")
    shutil.copy(db, copy)
    with duckdb.connect(str(copy)) as connection:
        connection.execute("UPDATE screens SET name = ?", [name])
    out = db.with_name("findings")
    done = subprocess.run(
        [sys.executable, str(FINDINGS), str(copy), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return (out / "index.md").read_text()


@pytest.fixture
def screened(tiny, tiny_model_dir, questions_file, tmp_path):
    db = tmp_path / "screened.db"
    spec = tiny_spec(tiny_model_dir, questions_file, effects=True)
    run_screen(spec, ScreenRun(db, batch_size=8), loader(tiny))
    return db


def test_effect_sizes_made_before_controls_are_refused_until_recomputed(
    screened, tiny_model_dir, capsys
):
    """A screen whose effect sizes predate controls (no noise floor: the bundled screens until
    they were recomputed) says so in `info`; effect grades and `mutatui effects` refuse it in
    one line; `mutatui effects --recompute` computes them again, with a floor."""
    db = screened
    before = table(db, "SELECT mutation_id, probe_id, kl_all FROM effects ORDER BY 1, 2")
    with duckdb.connect(str(db)) as connection:
        connection.execute("DELETE FROM noise_floors")
    assert main(["info", str(db)]) == 0
    assert "computed before controls" in capsys.readouterr().out.replace("\n", " ")
    assert main(["analyze", str(db), "--min-effect", "0.01", "--permutations", "10"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--recompute" in error[0]
    index = findings_index(db, "tiles-64")
    assert "- tiles-64-effect: skipped, tiles-64 has effect sizes computed before controls" in index
    assert "- tiles-64-robust: " in index and "(`mutatui analyze" in index  # margins alone
    args = ["effects", str(db), "--model", str(tiny_model_dir), "--quiet"]
    assert main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "computed before controls" in error[0] and "--recompute" in error[0]
    assert main([*args, "--recompute"]) == 0
    assert f"effect sizes added to {len(before)} results" in capsys.readouterr().out
    assert noise_of(db, 1) is not None
    after = table(db, "SELECT mutation_id, probe_id, kl_all FROM effects ORDER BY 1, 2")
    assert [row[:2] for row in after] == [row[:2] for row in before]
    assert [row[2] for row in after] == pytest.approx([row[2] for row in before], abs=1e-6)


def test_effects_under_the_noise_floor_count_as_none(screened, capsys):
    """Where a screen's controls strayed (raised here by hand to the median effect), an effect
    at or under the floor is none: for effect grades, and in words."""
    db = screened
    frame = load_sites(db, pick_screen(db, None))
    median = float(np.median(frame.effect))
    with duckdb.connect(str(db)) as connection:
        connection.execute("UPDATE noise_floors SET kl = ?", [median])
    frame = load_sites(db, pick_screen(db, None))
    assert kl_floor(frame.noise) == median
    graded = EffectGrade(min_effect=0.0).apply(frame)
    assert graded.changed.tolist() == (frame.effect > median).tolist()
    top = EffectGrade(top_effect=1.0).apply(frame)
    assert not top.changed[frame.effect <= median].any()
    floor = NoiseFloor(3, median, 0.0)
    assert shown_effect(median, floor).startswith("none (under the noise floor")
    assert shown_effect(median * 2, floor) == f"{median * 2:.3g}"
    assert shown_effect(0.0, NoiseFloor(3, 0.0, 0.0)) == "none"
