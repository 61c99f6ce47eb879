import pytest
import torch

from mutatui.engine.decoding import Decoding, encode_prompt, stream_batch
from mutatui.engine.mutations import Kind, make_mutation, mutated, parse_kind
from mutatui.errors import MutatuiError


def snapshot(model):
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def assert_unchanged(model, before):
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]), name


def test_parse_kind():
    assert parse_kind("MAX") == (Kind.MAX, None)
    assert parse_kind("-1.5e3") == (Kind.VALUE, -1500.0)
    with pytest.raises(MutatuiError, match="valid: max, min, zero, or a number"):
        parse_kind("biggest")


@pytest.mark.parametrize("kind", ["max", "min", "zero", "3.25", "inf", "nan"])
def test_apply_writes_only_the_site_and_restores_bit_exactly(tiny, kind):
    lm, catalog = tiny
    before = snapshot(lm.model)
    mutation = make_mutation("L1.gate[2:5,7:9]", kind, catalog)
    info = catalog.get(1, "gate")
    weight = catalog.weight(1, "gate")
    with mutated(catalog, mutation):
        block = weight[2:5, 7:9]
        expected = torch.full_like(block, mutation.target(info))
        assert torch.equal(block, expected) or (kind == "nan" and block.isnan().all())
        outside = weight.clone()
        outside[2:5, 7:9] = before["model.layers.1.mlp.gate_proj.weight"][2:5, 7:9]
        assert torch.equal(outside, before["model.layers.1.mlp.gate_proj.weight"])
    assert_unchanged(lm.model, before)


def test_max_and_min_come_from_the_unmutated_matrix(tiny):
    _, catalog = tiny
    info = catalog.get(0, "q")
    first = make_mutation("L0.q[0,0]", "max", catalog)
    with mutated(catalog, make_mutation("L0.q[1,1]", "1000", catalog)):
        assert first.target(catalog.get(0, "q")) == info.max


def test_restores_when_the_body_raises(tiny):
    lm, catalog = tiny
    before = snapshot(lm.model)
    with (
        pytest.raises(RuntimeError),
        mutated(catalog, make_mutation("L2.down[0:8,0:8]", "max", catalog)),
    ):
        raise RuntimeError("generation failed")
    assert_unchanged(lm.model, before)


def test_restores_when_generation_is_interrupted(tiny):
    lm, catalog = tiny
    before = snapshot(lm.model)
    prompt = encode_prompt(lm, "hello")
    mutation = make_mutation("L0.up[0:4,0:4]", "min", catalog)
    with pytest.raises(KeyboardInterrupt), mutated(catalog, mutation):
        for step in stream_batch(lm, catalog, prompt, [None], Decoding(max_new_tokens=10)):
            if step.index == 2:
                raise KeyboardInterrupt
    assert_unchanged(lm.model, before)
