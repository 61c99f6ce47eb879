import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import pytest
from tiny_models import build_tiny_model, write_questions


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (3 layers, hidden 32) saved as a model folder, built once per run."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", scale=8.0)


@pytest.fixture(scope="session")
def questions_file(tmp_path_factory) -> Path:
    """The tiny screens' multiple-choice questions (tiny_models.TINY_QUESTIONS) as a file."""
    return write_questions(tmp_path_factory.mktemp("questions") / "q.jsonl")


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from mutatui.engine.matrices import MatrixCatalog
    from mutatui.engine.models import load_model

    lm = load_model(str(tiny_model_dir))
    return lm, MatrixCatalog(lm.model)


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct, loaded once per test run."""
    from mutatui.engine.matrices import MatrixCatalog
    from mutatui.engine.models import load_model

    lm = load_model("smollm2")
    return lm, MatrixCatalog(lm.model)
