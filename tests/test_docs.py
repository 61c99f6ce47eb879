"""The front door and the manual: a short README whose links resolve, and reference pages that
match the code they are generated from (scripts/docs_reference.py)."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

from mutatui.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def generator():
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "scripts/docs_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_reference_pages_are_current():
    assert generator().stale_pages() == [], "run .venv/bin/python scripts/docs_reference.py"


def test_the_cli_page_names_every_subcommand_and_flag():
    page = (ROOT / "docs/reference/cli.md").read_text()
    parser = build_parser()
    (subcommands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in subcommands.choices.items():
        assert f"## {name}\n" in page
        section = page.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in section or f", {flag}" in section, (name, flag)


def test_the_keys_page_holds_every_binding_id_of_the_explorer():
    ids = set()
    for source in (ROOT / "mutatui/tui").rglob("*.py"):
        ids |= set(re.findall(r'id="([a-z_]+\.[a-z_]+)"', source.read_text()))
    page = (ROOT / "docs/reference/keys.md").read_text()
    missing = sorted(id_ for id_ in ids if f"`{id_}`" not in page)
    assert ids and missing == []


def test_the_schema_page_holds_every_table_and_column():
    from mutatui.store.schema import TABLES

    page = (ROOT / "docs/reference/schema.md").read_text()
    for table in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", TABLES):
        assert f"## {table}\n" in page
    assert "| `settled_naively` | `BOOLEAN NOT NULL DEFAULT false` | a near tie" in page


def test_the_readme_is_a_front_door_whose_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    for command in ("make run", "make test", "mutatui browse", "mutatui live", "mutatui mutate"):
        assert command in readme
    targets = LINK.findall(readme)
    assert any(target.startswith("docs/") for target in targets)
    for target in targets:
        assert (ROOT / target).exists(), target


def test_every_doc_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert page.relative_to(ROOT / "docs").as_posix() in nav, page
