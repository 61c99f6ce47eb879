import math

import pytest
import torch

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.mutations import Kind, Mutation, mutated
from mutatui.errors import MutatuiError
from mutatui.guided.superweights import (
    DEFAULT_PROBE_TEXT,
    down_projection,
    encode_text,
    find_candidates,
    perplexity,
    verify,
)
from mutatui.store.guided import (
    SuperweightResult,
    save_superweights,
    superweight_results,
    superweight_sites,
)

PLANTED = (1, 5, 17)  # layer, row (output channel), column (input channel) of the down projection
GREEDY = Decoding(max_new_tokens=10)


def plant(catalog: MatrixCatalog, factor: float = 200.0) -> float:
    """Make W[5, 17] of layer 1's down projection huge: y[..., 5] spikes wherever x[..., 17] != 0."""
    layer, row, col = PLANTED
    weight = catalog.weight(layer, "down")
    with torch.no_grad():
        weight[row, col] = factor * float(weight.abs().max())
    return float(weight[row, col])


@pytest.fixture
def planted(tiny_model_dir):
    """A fresh tiny model with a planted super weight (the shared `tiny` stays untouched)."""
    lm = load_model(str(tiny_model_dir))
    value = plant(MatrixCatalog(lm.model))
    return lm, MatrixCatalog(lm.model), value


def test_planted_super_weight_is_found_at_its_coordinates(planted):
    lm, catalog, value = planted
    ids = encode_text(lm, DEFAULT_PROBE_TEXT)
    best, *others = find_candidates(lm, catalog, ids, count=3)
    assert (best.layer, best.matrix, best.row, best.col) == (1, "down", 5, 17)
    assert best.weight == value
    assert best.spike_ratio > 5 * max(c.spike_ratio for c in others)
    assert str(best.site) == "L1.down[5,17]"


def test_unplanted_model_has_no_comparable_spike(tiny, planted):
    lm, catalog = tiny
    lm_planted, catalog_planted, _value = planted
    ids = encode_text(lm, DEFAULT_PROBE_TEXT)
    plain = find_candidates(lm, catalog, ids, count=1)[0]
    spiked = find_candidates(lm_planted, catalog_planted, ids, count=1)[0]
    assert spiked.spike_ratio > 5 * plain.spike_ratio


def test_verification_equals_editing_the_weight_by_hand(planted):
    lm, catalog, value = planted
    probe_ids = encode_text(lm, DEFAULT_PROBE_TEXT)
    prompt_ids = encode_prompt(lm, "the cat sat")
    baseline = naive_generate(lm, catalog, prompt_ids, None, GREEDY)
    before = perplexity(lm, probe_ids)
    candidate = find_candidates(lm, catalog, probe_ids, count=1)[0]
    saved = {name: p.detach().clone() for name, p in lm.model.named_parameters()}
    result = verify(
        lm,
        catalog,
        candidate,
        probe_ids=probe_ids,
        prompt_ids=prompt_ids,
        baseline_tokens=baseline.tokens,
        decoding=GREEDY,
    )
    for name, parameter in lm.model.named_parameters():
        assert torch.equal(parameter, saved[name]), name
    weight = catalog.weight(1, "down")
    with torch.no_grad():
        weight[5, 17] = 0.0
    try:
        by_hand = perplexity(lm, probe_ids)
        zeroed = naive_generate(lm, catalog, prompt_ids, None, GREEDY)
    finally:
        with torch.no_grad():
            weight[5, 17] = value
    assert result.perplexity == pytest.approx(by_hand, rel=1e-6)
    assert list(result.tokens) == zeroed.tokens
    assert result.changed == (zeroed.tokens != baseline.tokens)
    assert math.isfinite(before) and result.perplexity != pytest.approx(before)


def test_perplexity_is_exp_of_mean_token_nll(tiny):
    lm, _catalog = tiny
    ids = encode_text(lm, "abc abc")
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0, :-1]
        log_probs = torch.log_softmax(logits, dim=-1)
        nll = -sum(float(log_probs[i, ids[i + 1]]) for i in range(len(ids) - 1)) / (len(ids) - 1)
    assert perplexity(lm, ids) == pytest.approx(math.exp(nll), rel=1e-5)


def test_down_projection_names(tiny):
    _lm, catalog = tiny
    assert down_projection(catalog) == "down"
    assert down_projection(catalog, "up") == "up"
    with pytest.raises(MutatuiError, match="valid: q, k, v, o, gate, up, down"):
        down_projection(catalog, "mlp")


def test_results_round_trip_and_sites_for_the_explorer(tmp_path):
    db = tmp_path / "sw.db"
    rows = [
        SuperweightResult(0, 1, "down", 5, 17, 9.5, 400.0, 3.0, 55.0, 0, 80.0, True, 0, "x"),
        SuperweightResult(1, 2, "down", 7, 1, 0.5, 4.0, 1.0, 1.2, 3, 10.0, False, None, "same"),
    ]
    for run in (1, 2):
        run_id = save_superweights(
            db,
            model="tiny",
            probe_text="p",
            prompt="q",
            decoding="greedy",
            max_new_tokens=10,
            baseline_perplexity=9.0,
            baseline_text="same",
            results=rows[:run],
        )
        assert run_id == run
    assert superweight_results(db) == rows
    assert superweight_results(db, run_id=1) == rows[:1]
    assert superweight_sites(db) == ["L1.down[5,17]", "L2.down[7,1]"]


@pytest.mark.smollm2
def test_smollm2_has_a_super_weight_in_layer_11(smollm2):
    """SmolLM2-135M's down projection of layer 11 holds a weight whose zeroing wrecks the model."""
    lm, catalog = smollm2
    ids = encode_text(lm, DEFAULT_PROBE_TEXT)
    best = find_candidates(lm, catalog, ids, count=1)[0]
    assert str(best.site) == "L11.down[507,1229]"
    assert best.largest_input_channel == best.col  # Yu et al.'s rule agrees with ours here
    before = perplexity(lm, ids)
    with mutated(catalog, Mutation(best.site, Kind.ZERO)):
        after = perplexity(lm, ids)
    assert after > 10 * before
    assert perplexity(lm, ids) == before


def test_superweights_command_prints_stores_and_lists_sites(tiny_model_dir, tmp_path):
    import json
    import subprocess
    import sys

    lm = load_model(str(tiny_model_dir))
    plant(MatrixCatalog(lm.model))
    folder = tmp_path / "planted"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    db = tmp_path / "sw.db"
    command = [sys.executable, "-m", "mutatui", "superweights", "--model", str(folder)]
    options = ["--candidates", "2", "--max-new-tokens", "6", "--prompt", "the cat sat"]
    result = subprocess.run(
        [*command, *options, "--db", str(db), "--json"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["site"] == "L1.down[5,17]"
    assert superweight_sites(db) == [row["site"] for row in rows]
    table = subprocess.run([*command, *options], capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    assert "L1.down[5,17]" in table.stdout and "super-weight candidates" in table.stdout
    assert "mutatui: zeroing each candidate 2/2" in table.stderr  # where it was, in a log
    assert "zeroing" not in result.stderr  # --json: quiet
    bad = subprocess.run([*command, "--matrix", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("mutatui: unknown matrix 'nope'; valid:")
