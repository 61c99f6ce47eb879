import pytest
from tiny_models import OTHERS, build_tiny_model

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
def test_other_architectures_load_and_list_matrices(tmp_path, family):
    folder = build_tiny_model(tmp_path / family, OTHERS[family])
    lm = load_model(str(folder))
    catalog = MatrixCatalog(lm.model)
    assert catalog.num_layers == 2
    assert len(catalog) == 2 * len(catalog.names) >= 4
    expected = {
        "gpt2": "attn.c_attn",
        "phi": "mlp.fc1",
        "qwen2": "down",
        "mistral": "gate",
        "olmo": "o",
    }[family]
    assert expected in catalog.names
    if family == "gpt2":
        assert catalog.get(0, "attn.c_attn").transposed
