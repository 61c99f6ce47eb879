"""`mutatui cache`: the cached model folders listed and cleared, through the real CLI, in a
cache folder of the test's own (MUTATUI_CACHE_DIR)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mutatui.engine.models import gguf_cache_dir, smollm2_gguf_path


def cache_cli(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUTATUI_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "mutatui", "cache", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def folder(path: Path, size: int) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"\0" * size)
    return path


@pytest.fixture
def cache(tmp_path) -> Path:
    root = tmp_path / "cache"
    current = gguf_cache_dir(smollm2_gguf_path()).name
    folder(root / "gguf" / current, 3_000_000)
    folder(root / "gguf" / "old-model-0123456789abcdef", 2_000_000)
    folder(root / "gguf" / "old-model-0123456789abcdef.tmp4242", 1_000)
    folder(root / "refamily" / f"{current}-mistral", 4_000_000)
    folder(root / "unrelated", 10)  # not a kind of the cache: never listed or removed
    return root


def test_the_cache_lists_each_folder_with_its_size_and_which_smollm2_uses(cache):
    listed = cache_cli(cache)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"cache folder: {cache}"
    current = gguf_cache_dir(smollm2_gguf_path()).name
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert set(rows) == {
        f"gguf/{current}",
        "gguf/old-model-0123456789abcdef",
        "gguf/old-model-0123456789abcdef.tmp4242",
        f"refamily/{current}-mistral",
    }
    assert "3.0 MB" in rows[f"gguf/{current}"] and "(smollm2 now)" in rows[f"gguf/{current}"]
    assert "(smollm2 now)" in rows[f"refamily/{current}-mistral"]
    assert "(smollm2 now)" not in rows["gguf/old-model-0123456789abcdef"]
    assert "partial" in rows["gguf/old-model-0123456789abcdef.tmp4242"]
    assert lines[-1] == "4 cached, 9.0 MB in all"
    assert cache_cli(cache, "list").stdout == listed.stdout


def test_clear_removes_the_folders_named_and_nothing_else(cache):
    cleared = cache_cli(cache, "clear", "gguf/old-model-0123456789abcdef")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.strip() == "removed 1 cached folder, 2.0 MB freed"
    assert not (cache / "gguf" / "old-model-0123456789abcdef").exists()
    assert (cache / "gguf" / "old-model-0123456789abcdef.tmp4242").is_dir()
    assert len(list((cache / "gguf").iterdir())) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("clear",), "cache clear: name the folders (KIND/NAME, as listed) or give --all"),
        (("clear", "--all", "gguf/x"), "cache clear: name the folders"),
        (("clear", "gguf/nope", "gguf/old-model-0123456789abcdef"), "not in the cache: gguf/nope"),
        (("clear", "../unrelated"), "not in the cache: ../unrelated"),
    ],
)
def test_a_bad_clear_is_one_line_and_removes_nothing(cache, args, message):
    before = sorted(path for path in cache.rglob("*"))
    refused = cache_cli(cache, *args)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"mutatui: {message}")
    assert len(refused.stderr.splitlines()) == 1 and refused.stdout == ""
    assert sorted(path for path in cache.rglob("*")) == before


def test_clear_all_empties_the_cache_kinds_only(cache):
    cleared = cache_cli(cache, "clear", "--all")
    assert cleared.stdout.strip() == "removed 4 cached folders, 9.0 MB freed"
    assert not any((cache / "gguf").iterdir()) and not any((cache / "refamily").iterdir())
    assert (cache / "unrelated" / "model.safetensors").is_file()
    assert cache_cli(cache).stdout.splitlines()[-1] == "nothing cached"
