import pytest
import torch
from tiny_models import FAMILY_CONFIGS, OTHERS, build_tiny_model

from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model


def test_llama_matrices_have_short_names_and_true_extremes(tiny):
    lm, catalog = tiny
    assert catalog.names == ("q", "k", "v", "o", "gate", "up", "down")
    assert catalog.num_layers == 3 and len(catalog) == 21
    down = catalog.get(2, "down")
    weight = lm.model.model.layers[2].mlp.down_proj.weight
    assert (down.rows, down.cols) == tuple(weight.shape) == (32, 64)
    assert down.max == float(weight.max()) and down.min == float(weight.min())
    assert down.path == "model.layers.2.mlp.down_proj"


@pytest.mark.parametrize("family", sorted(OTHERS))
def test_a_model_without_an_entry_lists_its_matrices_by_module_path(tmp_path, family):
    folder = build_tiny_model(tmp_path / family, OTHERS[family])
    lm = load_model(str(folder))
    catalog = MatrixCatalog(lm.model)
    assert catalog.family is None and catalog.num_layers == 2
    assert len(catalog) == 2 * len(catalog.names) >= 4
    expected = {"phi": "mlp.fc1", "olmo": "self_attn.o_proj"}[family]
    assert expected in catalog.names


def test_gpt2_matrices_are_oriented_as_y_equals_w_x(tmp_path):
    """GPT-2 stores its Conv1D weights as (in, out); the catalog's rows are output features."""
    lm = load_model(str(build_tiny_model(tmp_path / "gpt2", FAMILY_CONFIGS["gpt2"])))
    catalog = MatrixCatalog(lm.model)
    up = catalog.get(0, "up")
    assert (up.rows, up.cols) == (128, 32)
    assert tuple(catalog.parameter(0, "up").shape) == (32, 128)
    assert torch.equal(catalog.weight(0, "up"), catalog.parameter(0, "up").T)
    assert up.path == "transformer.h.0.mlp.c_fc"
    assert catalog.get(0, "k").path == "transformer.h.0.attn.c_attn:k"
