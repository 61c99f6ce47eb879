"""Effect sizes (exact/effects.py) against the naive path: the weight edited, one forward pass
over the prompt and the baseline's continuation, restored (`screening.verify.naive_effects`,
computed from scratch in float64 from the model's logits, as `mutatui verify` checks a stored
screen). The engine takes them from its batched
teacher-forced passes; they agree to the dtype's rounding."""

from __future__ import annotations

import duckdb
import pytest
import torch
from naive import sample_mutations
from tiny_models import FAMILY_CONFIGS, OTHERS, build_tiny_model, tiny_spec

from mutatui.analysis.grades import EffectGrade
from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.exact.screener import Screener
from mutatui.screening.runner import ScreenRun, run_screen
from mutatui.screening.verify import EFFECT_TOLERANCE, HALF_TOLERANCE, naive_effects
from mutatui.screening.verify import agrees as effect_agrees
from mutatui.store.export import export_table
from mutatui.store.merge import merge

GREEDY = Decoding(max_new_tokens=12)
SAMPLED = Decoding(mode="sample", temperature=0.7, seed=5, max_new_tokens=12)
TOLERANCE = {"float32": EFFECT_TOLERANCE[torch.float32], "bfloat16": HALF_TOLERANCE}


def agrees(engine: float | None, naive: float | None, dtype: str) -> bool:
    return effect_agrees(engine, naive, TOLERANCE[dtype])


def check_against_naive(lm, catalog, decoding, dtype="float32", seed=1):
    """Screen a sample of every matrix type (elements, blocks, huge values) with effect sizes
    and hold each against the naive path; returns the outcomes."""
    prompt = encode_prompt(lm, "the cat sat")
    mutations = sample_mutations(catalog, seed=seed)
    screener = Screener(lm, catalog, decoding, batch_size=8, effects=True)
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    *_, margins = naive_effects(lm, catalog, prompt, baseline, None, None)
    engine_margins = screener.baseline_margins(prompt, baseline)
    assert all(agrees(e, n, dtype) for e, n in zip(engine_margins, margins, strict=True))
    for mutation, outcome in zip(mutations, outcomes, strict=True):
        lone = naive_generate(lm, catalog, prompt, mutation, decoding)
        assert outcome.diverge_at == first_divergence(baseline.tokens, lone.tokens), mutation
        delta, prefix, whole, margin, _ = naive_effects(
            lm, catalog, prompt, baseline, mutation, outcome.diverge_at
        )
        found = outcome.effect
        assert found is not None, mutation
        for name, engine, naive in (
            ("delta_nll", found.delta_nll, delta),
            ("kl_prefix", found.kl_prefix, prefix),
            ("kl_all", found.kl_all, whole),
            ("diverge_margin", found.diverge_margin, margin),
        ):
            assert agrees(engine, naive, dtype), f"{mutation} {name}: {engine} vs {naive}"
    return outcomes


@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_effect_sizes_equal_the_naive_paths_on_the_tiny_llama(tiny, decoding):
    lm, catalog = tiny
    outcomes = check_against_naive(lm, catalog, decoding)
    changed = [o for o in outcomes if o.diverge_at is not None]
    unchanged = [o for o in outcomes if o.diverge_at is None]
    assert changed and unchanged, "the sample must hold both"
    # defined for every mutation: unchanged outputs still move the distribution
    assert any(o.effect.kl_all > 0 for o in unchanged)
    assert all(o.effect.diverge_margin is None for o in unchanged)
    assert all(o.effect.diverge_margin is not None for o in changed)
    # the prefix stops at the divergence: over fewer steps than the whole for a late divergence
    assert any(o.effect.kl_prefix != o.effect.kl_all for o in changed)


def test_effect_sizes_in_bfloat16_equal_the_naive_path_in_bfloat16(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), dtype="bfloat16")
    check_against_naive(lm, MatrixCatalog(lm.model), GREEDY, dtype="bfloat16", seed=2)


@pytest.mark.parametrize("family", ["gemma2", "gpt2", "phi"])
def test_effect_sizes_on_other_families_and_the_batched_path(family, tmp_path):
    """Gemma 2 soft-caps its logits, GPT-2 stores its matrices transposed, Phi has no entry
    and runs on the batched path (effect sizes from lone passes there)."""
    config = FAMILY_CONFIGS.get(family) or OTHERS[family]
    lm = load_model(str(build_tiny_model(tmp_path / family, config, scale=8.0)))
    catalog = MatrixCatalog(lm.model)
    assert Screener(lm, catalog, GREEDY).layered == (family != "phi")
    check_against_naive(lm, catalog, GREEDY)


def test_effects_off_leaves_outcomes_without_them(tiny):
    lm, catalog = tiny
    prompt = encode_prompt(lm, "the cat sat")
    screener = Screener(lm, catalog, GREEDY, batch_size=8)
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, sample_mutations(catalog)[:6])
    assert all(o.effect is None for o in outcomes)


def loader(tiny):
    return lambda _model: tiny[0]


def test_a_screen_stores_effect_sizes_and_margins_and_merge_and_export_keep_them(
    tiny, tiny_model_dir, questions_file, tmp_path
):
    spec = tiny_spec(tiny_model_dir, questions_file, effects=True)
    parts = [tmp_path / f"part{k}.db" for k in (1, 2)]
    from mutatui.screening.plan import Shard

    for k, part in enumerate(parts, start=1):
        run_screen(spec, ScreenRun(part, shard=Shard(k, 2), batch_size=8), loader(tiny))
    merged = tmp_path / "merged.db"
    merge(merged, parts)
    with duckdb.connect(str(merged), read_only=True) as connection:
        texts = connection.execute(
            "SELECT count(*) FROM results r JOIN probes p USING (screen_id, probe_id) "
            "WHERE p.kind = 'text'"
        ).fetchone()[0]
        effects, with_margin, changed = connection.execute(
            "SELECT count(*), count(e.diverge_margin), count(*) FILTER (WHERE r.changed) "
            "FROM effects e JOIN results r USING (screen_id, mutation_id, probe_id)"
        ).fetchone()
        margins = connection.execute(
            "SELECT probe_id, len(margins) FROM probe_margins ORDER BY probe_id"
        ).fetchall()
        tokens = connection.execute(
            "SELECT probe_id, len(baseline_tokens) FROM probes WHERE kind = 'text' "
            "ORDER BY probe_id"
        ).fetchall()
    assert texts > 0 and effects == texts, "one effects row per text result"
    assert with_margin == changed > 0, "a diverge margin exactly on changed results"
    assert [probe for probe, _ in margins] == [probe for probe, _ in tokens]
    assert all(steps >= length for (_, steps), (_, length) in zip(margins, tokens, strict=True))
    out = tmp_path / "effects.parquet"
    assert export_table(merged, "effects", "parquet", out) == effects


def test_effects_are_a_spec_option_outside_the_screens_identity(tiny_model_dir, questions_file):
    plain = tiny_spec(tiny_model_dir, questions_file)
    on = tiny_spec(tiny_model_dir, questions_file, effects=True)
    assert plain.digest == on.digest  # a resume or merge of the same mutations still matches
    assert "effects" not in plain.table() and on.table()["effects"] is True
    from mutatui.screening.prepare import records_effects

    off = tiny_spec(tiny_model_dir, questions_file, effects=False)
    assert records_effects(plain) and records_effects(on) and not records_effects(off)


@pytest.fixture(scope="module")
def screened(tiny, tiny_model_dir, questions_file, tmp_path_factory):
    """A whole tiny screen with effect sizes, and one of the same spec without them."""
    folder = tmp_path_factory.mktemp("effects")
    with_effects, without = folder / "with.db", folder / "without.db"
    spec = tiny_spec(tiny_model_dir, questions_file, effects=True)
    run_screen(spec, ScreenRun(with_effects, batch_size=8), loader(tiny))
    plain = tiny_spec(tiny_model_dir, questions_file, effects=False)
    run_screen(plain, ScreenRun(without, batch_size=8), loader(tiny))
    return with_effects, without


def per_mutation(db, query):
    with duckdb.connect(str(db), read_only=True) as connection:
        return dict(connection.execute(query).fetchall())


def test_phenotypes_graded_by_effect_size_and_robustness(screened):
    from mutatui.store.frames import load_sites, pick_screen

    db, _ = screened
    frame = load_sites(db, pick_screen(db, None))
    assert frame.effects_recorded
    kl = per_mutation(db, "SELECT mutation_id, max(kl_all) FROM effects GROUP BY ALL")
    margin = per_mutation(
        db,
        "SELECT e.mutation_id, max(e.diverge_margin) FROM effects e JOIN results r "
        "USING (screen_id, mutation_id, probe_id) WHERE r.changed GROUP BY ALL",
    )
    ids = frame.mutation_id.tolist()
    assert frame.effect.tolist() == pytest.approx([kl[i] for i in ids])
    robust = EffectGrade(robust_margin=1.0).apply(frame)
    assert robust.changed.tolist() == [margin.get(i) is not None and margin[i] >= 1.0 for i in ids]
    assert 0 < robust.changed.sum() < frame.changed.sum(), "some changes happen at fragile steps"
    threshold = float(sorted(kl.values())[len(kl) // 2])
    by_effect = EffectGrade(min_effect=threshold).apply(frame)
    assert by_effect.changed.tolist() == [kl[i] >= threshold for i in ids]
    top = EffectGrade(top_effect=0.25).apply(frame)
    for key in set(zip(frame.layer.tolist(), frame.matrix.tolist(), strict=True)):
        members = (frame.layer == key[0]) & (frame.matrix == key[1])
        chosen = top.changed[members]
        assert chosen.sum() == -(-members.sum() // 4)  # ceil of a quarter
        assert frame.effect[members][chosen].min() >= frame.effect[members][~chosen].max()


def test_analyze_grades_by_effect_from_the_cli_and_refuses_a_screen_without_them(screened, capsys):
    from mutatui.cli import main

    with_effects, without = screened
    robust = ["analyze", str(with_effects), "--robust", "--permutations", "10", "--markdown"]
    assert main(robust) == 0
    assert "phenotype: robust (changed at a baseline margin >= 1 logits)" in capsys.readouterr().out
    assert main(["analyze", str(without), "--top-effect", "0.1", "--permutations", "10"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "has no effect sizes" in error[0]
    assert main(["analyze", str(with_effects), "--top-effect", "2"]) == 2
    assert "--top-effect is a share in (0, 1], got 2" in capsys.readouterr().err


def test_analysis_says_how_many_changes_tipped_a_near_tie_of_their_baseline(screened, capsys):
    """Per probe, recounted here from the stored rows: changes that diverged where the baseline's
    margin is below the threshold, and the changes each fragile step took."""
    import numpy as np

    from mutatui.analysis.report import analyze
    from mutatui.cli import main

    db, without = screened
    with duckdb.connect(str(db), read_only=True) as connection:
        rows = connection.execute(
            "SELECT p.name, r.changed, r.diverge_at, e.diverge_margin, e.kl_all FROM effects e "
            "JOIN results r USING (screen_id, mutation_id, probe_id) "
            "JOIN probes p USING (screen_id, probe_id)"
        ).fetchall()
        margins = dict(
            connection.execute(
                "SELECT p.name, m.margins FROM probe_margins m JOIN probes p USING (screen_id, "
                "probe_id)"
            ).fetchall()
        )
    threshold = float(np.median([m for name in margins for m in margins[name]]))
    ties = analyze(db, permutations=10, effect_grade=EffectGrade(robust_margin=threshold)).ties
    assert ties and {t.probe for t in ties} == {row[0] for row in rows}
    for probe in ties:
        mine = [row for row in rows if row[0] == probe.probe]
        changed = [row for row in mine if row[1]]
        assert (probe.results, probe.changed) == (len(mine), len(changed))
        assert probe.changed_at_fragile == sum(row[3] < threshold for row in changed)
        fragile = [step for step, m in enumerate(margins[probe.probe]) if m < threshold]
        assert [s.step for s in probe.fragile_steps] == fragile
        for step in probe.fragile_steps:
            assert step.changes == sum(row[2] == step.step for row in changed)
            assert step.margin == pytest.approx(margins[probe.probe][step.step])
        unchanged = [row[4] for row in mine if not row[1]]
        if unchanged:
            assert probe.kl_unchanged[0] == pytest.approx(float(np.median(unchanged)))
    assert any(t.changed_at_fragile for t in ties), "the tiny screen tips some near ties"
    assert main(["analyze", str(db), "--permutations", "10", "--markdown"]) == 0
    assert "### near ties: changes at a baseline step whose margin is below 1 logits" in (
        capsys.readouterr().out
    )
    assert analyze(without, permutations=10).ties is None


def test_under_an_effect_grade_the_writer_tests_count_only_the_writers_it_grades(
    screened, tmp_path
):
    """Writers tagged on changes at fragile and at firm baseline steps: any change counts them
    all; the robust grade only those that diverged at a firm step."""
    import shutil

    from mutatui.analysis.report import analyze
    from mutatui.store.queries import add_tag

    db = tmp_path / "writers.db"
    shutil.copy(screened[0], db)
    with duckdb.connect(str(db), read_only=True) as connection:
        changed = connection.execute(
            "SELECT screen_id, mutation_id, max(e.diverge_margin) FROM effects e "
            "JOIN results r USING (screen_id, mutation_id, probe_id) WHERE r.changed "
            "GROUP BY ALL ORDER BY mutation_id"
        ).fetchall()
    margins = sorted({row[2] for row in changed})
    threshold = margins[len(margins) // 2]
    firm = [row for row in changed if row[2] >= threshold][:3]
    fragile = [row for row in changed if row[2] < threshold][:3]
    assert firm and fragile
    for screen_id, mutation_id, _ in firm + fragile:
        add_tag(db, screen_id, mutation_id, "writer")

    def writers(grade: EffectGrade | None) -> tuple[int, int]:
        shape = analyze(db, permutations=10, effect_grade=grade).shapes
        counted = sum(row.changed for s in shape for row in s.writers_by_type)
        return counted, sum(s.writer_rows.flagged for s in shape)

    assert writers(None) == (len(firm + fragile), len(firm + fragile))
    assert writers(EffectGrade(robust_margin=threshold)) == (len(firm), len(firm))


def test_a_backfill_part_way_is_refused_by_effect_grades_and_skipped_by_findings(
    screened, tmp_path, capsys
):
    """Results without effect sizes would read as no effect: an effect grade refuses the screen
    in one line, and scripts/findings.py skips its effect analyses, saying how many lack them."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from mutatui.cli import main

    db = tmp_path / "screens.db"
    shutil.copy(screened[0], db)
    with duckdb.connect(str(db)) as connection:
        connection.execute(
            "DELETE FROM effects WHERE mutation_id IN (SELECT DISTINCT mutation_id FROM effects "
            "ORDER BY mutation_id LIMIT 2)"
        )
        (missing,) = connection.execute(
            "SELECT count(*) FROM results r JOIN probes p USING (screen_id, probe_id) WHERE "
            "p.kind = 'text' AND NOT EXISTS (SELECT 1 FROM effects e WHERE e.mutation_id = "
            "r.mutation_id AND e.probe_id = r.probe_id)"
        ).fetchone()
        connection.execute("UPDATE screens SET name = 'elements-random'")
    assert missing > 0
    assert main(["analyze", str(db), "--robust", "--permutations", "10"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"lacks effect sizes for {missing} of its text results" in error[0]
    assert main(["analyze", str(db), "--permutations", "10"]) == 0  # any change still reads
    script = Path(__file__).parent.parent / "scripts" / "findings.py"
    done = subprocess.run(
        [sys.executable, str(script), str(db), str(tmp_path / "findings")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    index = (tmp_path / "findings" / "index.md").read_text()
    assert (
        f"- elements-random-effect: skipped, elements-random lacks {missing} of its effect sizes"
        in index
    )
    assert (tmp_path / "findings" / "elements-random.md").exists()


def effect_table(db):
    with duckdb.connect(str(db), read_only=True) as connection:
        rows = connection.execute(
            "SELECT mutation_id, probe_id, delta_nll, kl_prefix, kl_all, diverge_margin "
            "FROM effects ORDER BY mutation_id, probe_id"
        ).fetchall()
        margins = connection.execute(
            "SELECT probe_id, margins FROM probe_margins ORDER BY probe_id"
        ).fetchall()
    return rows, margins


def test_mutatui_effects_adds_them_to_a_screen_recorded_without_them(screened, tmp_path, capsys):
    """The same numbers as a screen that recorded them, without decoding again; a second run
    adds nothing."""
    import shutil

    from mutatui.cli import main

    with_effects, without = screened
    db = tmp_path / "later.db"
    shutil.copy(without, db)
    before, stored_margins = effect_table(db)
    assert before == [] and stored_margins, "margins are kept with every screen's probes"
    assert main(["effects", str(db), "--model", str(without.parent.parent), "--quiet"]) == 2
    capsys.readouterr()
    model = ["--model", tiny_spec_model(without)]
    assert main(["effects", str(db), *model, "--quiet"]) == 0
    assert "effect sizes added to" in capsys.readouterr().out
    added, margins = effect_table(db)
    expected, expected_margins = effect_table(with_effects)
    assert [row[:2] for row in added] == [row[:2] for row in expected]
    for got, want in zip(added, expected, strict=True):
        assert got[2:] == pytest.approx(want[2:], rel=1e-4, abs=1e-5, nan_ok=True)
    assert [m[0] for m in margins] == [m[0] for m in expected_margins]
    assert main(["effects", str(db), *model, "--quiet"]) == 0
    assert "effect sizes added to 0 results" in capsys.readouterr().out
    import json

    assert main(["info", str(db), "--json"]) == 0
    (shown,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown["effect_results"] == len(added)


def test_effect_rows_saved_in_one_session_are_added_in_the_next(screened, tmp_path, capsys):
    """An earlier session computed the effect sizes of half the results: its saved rows are
    added as they are, the rest computed, and the whole equals a screen that recorded them.
    A file of another spec, or not of rows, is refused in one line and adds nothing."""
    import shutil

    from mutatui.cli import main

    with_effects, without = screened
    expected, _ = effect_table(with_effects)
    earlier = tmp_path / "earlier.db"
    shutil.copy(with_effects, earlier)
    with duckdb.connect(str(earlier)) as connection:
        connection.execute("DELETE FROM effects WHERE mutation_id % 2 = 1")
        kept = connection.execute("SELECT count(*) FROM effects").fetchone()[0]
    assert 0 < kept < len(expected)
    rows = tmp_path / "rows.parquet"
    assert main(["effects", str(earlier), "--save-rows", str(rows)]) == 0
    assert f"{kept} effect-size rows saved to {rows}" in capsys.readouterr().out

    db = tmp_path / "later.db"
    shutil.copy(without, db)
    other = tmp_path / "other.parquet"
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * REPLACE ('another' AS spec_hash) FROM '{rows}') TO '{other}'"
        )
    for bad, said in (
        (other, f"holds rows of another screen (another spec): {kept} rows; nothing added"),
        (questions_path(tmp_path), "is not a Parquet file"),
    ):
        args = ["effects", str(db), "--model", tiny_spec_model(db), "--add-rows", str(bad)]
        assert main([*args, "--quiet"]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and said in error[0], error
        assert effect_table(db)[0] == []
    args = ["effects", str(db), "--model", tiny_spec_model(db), "--add-rows", str(rows)]
    assert main([*args, "--quiet"]) == 0
    assert f"effect sizes added to {len(expected)} results ({kept} from {rows})" in (
        capsys.readouterr().out
    )
    added, _ = effect_table(db)
    assert [row[:2] for row in added] == [row[:2] for row in expected]
    for got, want in zip(added, expected, strict=True):
        exact = want[0] % 2 == 0  # the saved rows come over as they were
        assert got[2:] == (
            want[2:] if exact else pytest.approx(want[2:], rel=1e-4, abs=1e-5, nan_ok=True)
        )
    assert main([*args, "--quiet"]) == 0
    assert "effect sizes added to 0 results (0 from" in capsys.readouterr().out


def questions_path(folder):
    text = folder / "not-rows.parquet"
    text.write_text("a text file\n")
    return text


def tiny_spec_model(db):
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute("SELECT model FROM screens").fetchone()[0]


@pytest.mark.smollm2
def test_effect_sizes_on_smollm2_equal_the_naive_path(smollm2):
    """Real weights: small effects (most element mutations move KL by 1e-6 to 1e-3) keep their
    precision, tiles and the late layers' larger ones too."""
    from naive import SMOLLM2_PROMPT, sampled_mutations_of_smollm2

    lm, catalog = smollm2
    decoding = Decoding(max_new_tokens=16)
    prompt = encode_prompt(lm, SMOLLM2_PROMPT)
    mutations = sampled_mutations_of_smollm2(catalog, seed=4)[::30][:7]
    mutations += sampled_mutations_of_smollm2(catalog, seed=4)[20::30][:3]  # tiles
    screener = Screener(lm, catalog, decoding, effects=True)
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    small = 0
    for mutation, outcome in zip(mutations, outcomes, strict=True):
        delta, prefix, whole, margin, _ = naive_effects(
            lm, catalog, prompt, baseline, mutation, outcome.diverge_at
        )
        found = outcome.effect
        small += whole < 1e-3
        for engine, naive in ((found.delta_nll, delta), (found.kl_all, whole)):
            assert engine == pytest.approx(naive, rel=1e-2, abs=1e-6), str(mutation)
        assert found.kl_prefix == pytest.approx(prefix, rel=1e-2, abs=1e-6), str(mutation)
        assert found.diverge_margin == pytest.approx(margin, rel=1e-4), str(mutation)
    assert small >= 3, "the sample must hold small effects"
