"""Every family on the fast exact path, held against the naive path (edit the weight, generate
alone, restore) on a tiny random model of that family built from a config: elements and blocks
on every matrix type, max, min and huge values, greedy and seeded sampling, prompts that cross
the sliding window where the family has one."""

import json
from pathlib import Path

import pytest
import torch
from naive import check_bitwise, naive_outcomes, sample_mutations
from tiny_models import FAMILY_CONFIGS, OTHERS, WINDOW, build_tiny_model, write_questions

from mutatui.cli import main
from mutatui.engine.architecture import Architecture, unsupported_reason
from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.families import FAMILIES
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.mutations import make_mutation, mutated
from mutatui.engine.questions import naive_choices
from mutatui.engine.sites import Site
from mutatui.exact.screener import Screener
from mutatui.guided.superweights import DEFAULT_PROBE_TEXT, encode_text, find_candidates
from mutatui.live.session import LiveRequest, LiveSession, RunStatus
from mutatui.screening.choice import load_questions
from mutatui.store.guided import predictions, superweight_results

GREEDY = Decoding(max_new_tokens=16)
SAMPLED = Decoding(mode="sample", temperature=0.7, seed=5, max_new_tokens=16)
PROMPT = "the cat sat on the mat"
LLAMA_NAMES = ("q", "k", "v", "o", "gate", "up", "down")
NAMES = dict.fromkeys(FAMILY_CONFIGS, LLAMA_NAMES) | {
    "gpt2": ("q", "k", "v", "o", "up", "down"),
    "gpt_neox": ("q", "k", "v", "o", "up", "down"),
}


@pytest.fixture(scope="module", params=sorted(FAMILY_CONFIGS))
def family(request, tmp_path_factory):
    """(model type, model folder, loaded model, catalog) of one family's tiny model."""
    name = request.param
    folder = build_tiny_model(tmp_path_factory.mktemp(name) / name, FAMILY_CONFIGS[name], scale=8)
    lm = load_model(str(folder))
    return name, folder, lm, MatrixCatalog(lm.model)


def test_every_family_in_the_list_has_an_entry():
    assert set(FAMILY_CONFIGS) == set(FAMILIES)


def test_the_family_takes_the_fast_path_with_its_names(family):
    name, _folder, lm, catalog = family
    assert unsupported_reason(lm.model) is None
    assert Screener(lm, catalog, GREEDY).layered
    assert catalog.family is FAMILIES[name]
    assert catalog.names == NAMES[name]
    assert len(catalog) == catalog.num_layers * len(NAMES[name])


def _family_split(name: str, output: torch.Tensor, config) -> dict[str, torch.Tensor]:
    """q, k, v (and gate, up) out of a fused module's output, as the family's own attention
    and MLP code splits it (transformers' modeling files, restated here)."""
    fused_qkv = output.shape[-1] == 3 * config.hidden_size
    if name == "gpt2" and fused_qkv:
        q, k, v = output.split(config.hidden_size, dim=-1)
        return {"q": q, "k": k, "v": v}
    if name == "gpt_neox" and fused_qkv:
        heads = config.num_attention_heads
        per_head = output.view(*output.shape[:-1], heads, -1)
        q, k, v = per_head.chunk(3, dim=-1)
        return {
            part: t.reshape(*output.shape[:-1], -1)
            for part, t in zip("qkv", (q, k, v), strict=True)
        }
    if name == "phi3" and output.shape[-1] == 2 * config.intermediate_size:
        gate, up = output.chunk(2, dim=-1)
        return {"gate": gate, "up": up}
    if name == "phi3" and output.shape[-1] > config.hidden_size:
        head = config.hidden_size // config.num_attention_heads
        q_size = config.num_attention_heads * head
        kv_size = config.num_key_value_heads * head
        return {
            "q": output[..., :q_size],
            "k": output[..., q_size : q_size + kv_size],
            "v": output[..., q_size + kv_size :],
        }
    return {}


def test_each_matrix_is_what_the_family_computes(family):
    """y = W x for every logical matrix, W as the catalog orients it, and a fused module's
    parts are the q, k, v (gate, up) its family's code takes out of it."""
    name, _folder, lm, catalog = family
    generator = torch.Generator().manual_seed(0)
    for info in (info for info in catalog if info.layer == 0):
        module = catalog.module(0, info.name)
        x = torch.randn(2, 3, info.cols, generator=generator)
        with torch.no_grad():
            y = module(x)
            part = catalog.outputs(0, info.name, y)
            expected = x @ catalog.weight(0, info.name).T
            bias = getattr(module, "bias", None)
            if bias is not None:
                expected = expected + catalog.outputs(0, info.name, bias)
        assert part.shape == (2, 3, info.rows)
        torch.testing.assert_close(part, expected, rtol=1e-5, atol=1e-5)
        split = _family_split(name, y, lm.model.config)
        if info.name in split:
            assert torch.equal(part, split[info.name]), info.label
        assert info.min == float(catalog.weight(0, info.name).min())


def test_writing_a_site_changes_only_its_logical_elements(family):
    _name, _folder, _lm, catalog = family
    for info in (info for info in catalog if info.layer == 1):
        site = Site(1, info.name, 2, 6, 1, 4)
        before = catalog.weight(1, info.name).clone()
        stored = catalog.parameter(1, info.name).detach().clone()
        catalog.write_site(site, torch.full(site.shape, 7.0))
        after = catalog.weight(1, info.name)
        assert bool((after[2:6, 1:4] == 7.0).all())
        changed = (catalog.parameter(1, info.name) != stored).sum()
        assert int(changed) == (before[2:6, 1:4] != 7.0).sum()
        catalog.write_site(site, before[2:6, 1:4])
        assert torch.equal(catalog.parameter(1, info.name), stored)


@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_screen_equals_the_naive_path(family, decoding):
    _name, _folder, lm, catalog = family
    prompt = encode_prompt(lm, PROMPT)
    assert len(prompt) > 2 * WINDOW, "the prompt must cross the sliding window"
    mutations = sample_mutations(catalog)
    assert {m.site.matrix for m in mutations} == set(catalog.names)
    screener = Screener(lm, catalog, decoding, batch_size=16)
    baseline = screener.baseline(prompt)
    outcomes = screener.screen_text(prompt, baseline, mutations)
    references = naive_outcomes(lm, catalog, prompt, mutations, decoding)
    for mutation, outcome, reference in zip(mutations, outcomes, references, strict=True):
        assert (outcome.tokens, outcome.stopped) == (reference.tokens, reference.stopped), str(
            mutation
        )
    changed = sum(o.diverge_at is not None for o in outcomes)
    assert 5 <= changed < len(mutations), "needs mutations that change the output and some not"
    assert sum(not o.settled_naively for o in outcomes if o.diverge_at) >= 5


def test_choice_answers_equal_the_naive_path(family, tmp_path):
    _name, _folder, lm, catalog = family
    questions = load_questions(write_questions(tmp_path / "q.jsonl"))
    mutations = sample_mutations(catalog, seed=4)[::3]
    answers = Screener(lm, catalog, GREEDY, batch_size=8).screen_choice(questions, mutations)
    expected = [naive_choices(lm, catalog, questions, m) for m in mutations]
    assert answers == expected
    assert len({tuple(a) for a in answers}) > 1, "some mutations must change an answer"


def test_replay_is_generate_bit_for_bit(family):
    _name, _folder, lm, catalog = family
    last = catalog.num_layers - 1
    sites = [
        ("L0.q[3,5]", "max"),
        ("L1.down[0:8,0:8]", "min"),
        (f"L{last}.up[7,1]", "max"),
        ("L1.v[0:4,:]", "max"),
        (f"L{last}.o[1,2]", "min"),
        ("L0.k[0:8,0:8]", "max"),
    ]
    assert check_bitwise(lm, catalog, PROMPT, sites) > len(sites)


def test_a_planted_super_weight_is_found_at_its_coordinates(family, tmp_path):
    name, folder, _lm, _catalog = family
    lm = load_model(str(folder))
    catalog = MatrixCatalog(lm.model)
    site = Site.element(1, "down", 5, 17)
    value = 200.0 * float(catalog.weight(1, "down").abs().max())
    catalog.write_site(site, torch.full((1, 1), value))
    best = find_candidates(lm, catalog, encode_text(lm, DEFAULT_PROBE_TEXT), count=1)[0]
    assert (best.layer, best.matrix, best.row, best.col) == (1, "down", 5, 17), name
    assert best.weight == pytest.approx(value)


def test_a_live_run_ends_as_the_naive_path(family):
    _name, _folder, lm, catalog = family
    session = LiveSession(lm, catalog)
    mutation = make_mutation("L0.v[0:8,0:8]", "max", catalog)
    result = session.run(LiveRequest(PROMPT, mutation, GREEDY), lambda _update: None)
    assert result.status is RunStatus.COMPLETED
    prompt = encode_prompt(lm, PROMPT)
    assert result.mutant.tokens == naive_generate(lm, catalog, prompt, mutation, GREEDY).tokens
    assert result.baseline.tokens == naive_generate(lm, catalog, prompt, None, GREEDY).tokens


def test_the_commands_run_on_the_family(family, tmp_path, capsys):
    """matrices, mutate, screen, predict and superweights, as a user calls them."""
    _name, folder, _lm, catalog = family
    model = ["--model", str(folder)]
    assert main(["matrices", *model, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["layer"], r["matrix"]) for r in rows] == [(i.layer, i.name) for i in catalog]
    mutate = ["mutate", *model, "--prompt", PROMPT, "--site", "L1.q[0:8,0:8]", "--json"]
    assert main([*mutate, "--max-new-tokens", "8"]) == 0
    assert json.loads(capsys.readouterr().out)["site"] == "L1.q[0:8,0:8]"
    db = str(tmp_path / "family.db")
    screen = ["screen", *model, "--db", db, "--layers", "0-1", "--sites", "random:2,seed=1"]
    screen += ["--choice", "none", "--probe", f"describe={PROMPT}", "--max-new-tokens", "8"]
    assert main([*screen, "--quiet"]) == 0
    assert main(["predict", *model, "--db", db, "--prompt", PROMPT, "--quiet"]) == 0
    capsys.readouterr()
    superweights = ["superweights", *model, "--json", "--candidates", "2", "--db", db]
    assert main([*superweights, "--max-new-tokens", "4"]) == 0
    candidates = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(candidates) == 2 and all(c["matrix"] == "down" for c in candidates)
    assert main(["info", db]) == 0
    assert "[complete]" in capsys.readouterr().out
    assert len(predictions(db)) == 1 and len(superweight_results(db)) == 2
    assert {info.layer for info in catalog} >= {r.layer for r in superweight_results(db)}


def test_phi3_q_k_v_gate_up_are_llamas_after_splitting_its_fused_weights(tmp_path):
    """A Phi-3 and the Llama with its fused weights split apart compute the same function; a
    mutation named alike in both changes both alike."""
    settings = {**FAMILY_CONFIGS["phi3"], "sliding_window": None, "rms_norm_eps": 1e-5}
    phi3 = load_model(str(build_tiny_model(tmp_path / "phi3", settings, scale=8)))
    llama = load_model(
        str(build_tiny_model(tmp_path / "llama", {**settings, "model_type": "llama"}))
    )
    config = phi3.model.config
    q_size = config.hidden_size
    kv_size = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    state = llama.model.state_dict()
    for name, tensor in phi3.model.state_dict().items():
        if "qkv_proj" in name:
            q, k, v = tensor.split([q_size, kv_size, kv_size])
            for part, value in zip("qkv", (q, k, v), strict=True):
                state[name.replace("qkv_proj", f"{part}_proj")] = value
        elif "gate_up_proj" in name:
            gate, up = tensor.chunk(2)
            state[name.replace("gate_up_proj", "gate_proj")] = gate
            state[name.replace("gate_up_proj", "up_proj")] = up
        else:
            state[name] = tensor
    llama.model.load_state_dict(state)
    catalogs = MatrixCatalog(phi3.model), MatrixCatalog(llama.model)
    ids = torch.tensor([encode_prompt(phi3, PROMPT)])
    with torch.inference_mode():
        same = [lm.model(input_ids=ids).logits for lm in (phi3, llama)]
    torch.testing.assert_close(same[0], same[1], rtol=1e-4, atol=1e-4)
    for name in LLAMA_NAMES:
        logits = []
        for lm, catalog in zip((phi3, llama), catalogs, strict=True):
            mutation = make_mutation(f"L1.{name}[2:6,3:9]", "max", catalog)
            with torch.inference_mode(), mutated(catalog, mutation):
                logits.append(lm.model(input_ids=ids).logits)
        torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-4)
        assert not torch.allclose(logits[0], same[0], atol=1e-3), f"{name} changed nothing"


@pytest.mark.parametrize("model_type", sorted(OTHERS))
def test_a_family_without_an_entry_runs_batched_and_says_so(model_type, tmp_path, capsys):
    folder = build_tiny_model(tmp_path / model_type, OTHERS[model_type], scale=8)
    lm = load_model(str(folder))
    catalog = MatrixCatalog(lm.model)
    screener = Screener(lm, catalog, GREEDY)
    assert not screener.layered
    assert f"model type {model_type!r} has no architecture entry" in screener.fallback
    prompt = encode_prompt(lm, PROMPT)
    mutations = sample_mutations_by_path(catalog)
    outcomes = screener.screen_text(prompt, screener.baseline(prompt), mutations)
    assert [o.tokens for o in outcomes] == [
        r.tokens for r in naive_outcomes(lm, catalog, prompt, mutations, GREEDY)
    ]
    db = str(tmp_path / "other.db")
    screen = ["screen", "--model", str(folder), "--db", db, "--layers", "0"]
    screen += ["--sites", "random:1", "--choice", "none", "--probe", f"p={PROMPT}"]
    assert main([*screen, "--max-new-tokens", "6"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "batched path" in line]
    assert len(notes) == 1 and model_type in notes[0]


def sample_mutations_by_path(catalog: MatrixCatalog):
    """An element and a block of every matrix of layer 0 of a model named by module paths."""
    mutations = []
    for info in (info for info in catalog if info.layer == 0):
        mutations.append(make_mutation(Site.element(0, info.name, 1, 2), "max", catalog))
        mutations.append(make_mutation(Site(0, info.name, 0, 4, 0, 4), "min", catalog))
    return mutations


def test_architecture_refuses_a_model_without_an_entry(tmp_path):
    folder = build_tiny_model(tmp_path / "phi", OTHERS["phi"])
    with pytest.raises(ValueError, match="no architecture entry"):
        Architecture(load_model(str(folder)).model)


def test_the_family_table_of_the_docs_covers_every_entry(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "docs/guide/models.md").read_text()
    for model_type, family in FAMILIES.items():
        assert f"| {family.name} (`{model_type}`) |" in readme, family.name
