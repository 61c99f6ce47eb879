"""docs/design/layout.md is the map a newcomer reads first: it must name every package of
mutatui, and every room of the engine (mutatui/exact), and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import mutatui

PACKAGE = Path(mutatui.__file__).parent
LAYOUT = PACKAGE.parent / "docs" / "design" / "layout.md"
NAMED = re.compile(r"^(mutatui/[\w/]+(?:\.py|/))\s", re.MULTILINE)
ROOM = re.compile(r"^(\w+\.py)\s", re.MULTILINE)


def named_in_layout() -> tuple[set[str], set[str]]:
    """The package paths the map names (`mutatui/x/` and `mutatui/x.py`), and the modules of
    its block on the engine's rooms."""
    text = LAYOUT.read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(.*?)```", text, re.DOTALL)
    packages = {name for block in blocks for name in NAMED.findall(block)}
    rooms_block = next(block for block in blocks if block.startswith("screener.py"))
    return packages, set(ROOM.findall(rooms_block))


def on_disk() -> tuple[set[str], set[str]]:
    packages = {
        f"mutatui/{path.name}/"
        for path in PACKAGE.iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    }
    modules = {
        f"mutatui/{path.name}"
        for path in PACKAGE.glob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    rooms = {path.name for path in (PACKAGE / "exact").glob("*.py") if path.name != "__init__.py"}
    return packages | modules, rooms


def test_the_layout_names_every_package_and_nothing_else():
    named, _ = named_in_layout()
    present, _ = on_disk()
    assert present - named == set(), "packages or modules the layout does not name"
    assert named - present == set(), "the layout names packages or modules that are gone"


def test_the_layout_names_every_room_of_the_engine_and_nothing_else():
    _, named = named_in_layout()
    _, present = on_disk()
    assert present - named == set(), "engine modules the layout does not name"
    assert named - present == set(), "the layout names engine modules that are gone"
