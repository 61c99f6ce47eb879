"""mutatui's cache of model folders: what it holds, and removing it.

Two kinds of folder live under `models.cache_root()`: `gguf/`, the dequantized copy of each
GGUF file (keyed by the file's content, so one per model file whatever its path), and
`refamily/`, SmolLM2's weights in another family's config (the tests' and benchmarks' Mistral
and Qwen2). Each is made again on first use, so removing any of them loses nothing but the
time to remake it. A folder named `*.tmp<pid>` is a copy a process was writing when it
stopped; it is listed as partial.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mutatui.engine.models import cache_root, gguf_cache_dir, smollm2_gguf_path
from mutatui.errors import MutatuiError

CACHE_KINDS = ("gguf", "refamily")
"""The cache's folders, one per kind of cached model folder."""


@dataclass(frozen=True)
class CachedModel:
    kind: str
    name: str
    path: Path
    size: int
    """Bytes of every file under it."""
    modified: float
    """When it was last written (seconds since the epoch)."""

    @property
    def key(self) -> str:
        """How `mutatui cache clear` names it: kind/name."""
        return f"{self.kind}/{self.name}"

    @property
    def partial(self) -> bool:
        """A copy a process was still writing when it stopped (never used as a model)."""
        return ".tmp" in self.name


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def cached_models() -> list[CachedModel]:
    """Every folder in the cache, by kind then name."""
    found = []
    for kind in CACHE_KINDS:
        folder = cache_root() / kind
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                found.append(
                    CachedModel(kind, entry.name, entry, _size(entry), entry.stat().st_mtime)
                )
    return found


def smollm2_copies() -> tuple[str, ...]:
    """The names of the folders the installed SmolLM2 uses now (its dequantized copy, and
    that copy in other families' configs start with the same name); none when SmolLM2 is not
    installed. Others are left from other model files, or from older versions' keys."""
    try:
        return (gguf_cache_dir(smollm2_gguf_path()).name,)
    except MutatuiError:
        return ()


def pick_cached(keys: list[str]) -> list[CachedModel]:
    """The cached folders named (kind/name, as `mutatui cache` lists them); one unknown name
    refuses them all, so nothing is removed by a typo."""
    held = {model.key: model for model in cached_models()}
    unknown = [key for key in keys if key not in held]
    if unknown:
        raise MutatuiError(
            f"not in the cache: {', '.join(unknown)}; `mutatui cache` lists the "
            f"{len(held)} folders it holds as KIND/NAME"
        )
    return [held[key] for key in dict.fromkeys(keys)]


def remove_cached(models: list[CachedModel]) -> int:
    """Remove the folders; the bytes freed."""
    freed = 0
    for model in models:
        shutil.rmtree(model.path)
        freed += model.size
    return freed
