"""The bundled screens are what the committed specs say, and what the model really does.

Every finished part under screens/parts and every screen of a committed screens.db must come
from the spec file committed in screens/ (the same spec hash, complete, every planned mutation
held); screens/lines.toml must be what `mutatui analyze --emit-lines` makes of the tile parts;
and a sample of each screen's recorded outcomes must hold on the naive path with SmolLM2.
"""

from __future__ import annotations

import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mutatui.screening.spec import ScreenSpec, load_spec_file, spec_from_table
from mutatui.store.database import connect
from mutatui.store.screens import ScreenRecord, mutation_ids, screen_records

REPO = Path(__file__).resolve().parent.parent
SCREENS = REPO / "screens"
PARTS = SCREENS / "parts"
BUNDLED = REPO / "screens.db"
LINES_SPEC = SCREENS / "lines.toml"
TILE_SCREEN = "tiles-64"
LINE_TILES = 6  # the Makefile's LINE_TILES
MAX_BYTES = 50 * 1024 * 1024


def committed_specs() -> dict[str, ScreenSpec]:
    """The bundled screens' specs by name (templates, *.base.toml, are not specs)."""
    specs = [
        spec_from_table(load_spec_file(path), where=str(path))
        for path in sorted(SCREENS.glob("*.toml"))
        if not path.name.endswith(".base.toml")
    ]
    return {spec.display_name: spec for spec in specs}


def finished_parts(screen: str | None = None) -> list[Path]:
    folders = [PARTS / screen] if screen else sorted(p for p in PARTS.glob("*") if p.is_dir())
    return sorted(part for folder in folders for part in folder.glob("*-of-*.db.xz"))


def unpack(part: Path, folder: Path) -> Path:
    target = folder / part.name.removesuffix(".xz")
    with lzma.open(part, "rb") as source, target.open("wb") as copy:
        shutil.copyfileobj(source, copy)
    return target


def assert_made_from_spec(record: ScreenRecord, db: Path, specs: dict[str, ScreenSpec]) -> None:
    """The screen is its committed spec's, and holds every mutation planned for what it covers
    (the whole spec, or the parts merged so far)."""
    assert record.name in specs, f"{db}: screen {record.name!r} has no spec in screens/"
    assert record.spec_hash == specs[record.name].digest, f"{db}: {record.name} is not its spec"
    held = len(mutation_ids(db, record.screen_id))
    assert held == record.planned_mutations, f"{db}: {held} of {record.planned_mutations}"


def all_parts_finished(screen: str) -> bool:
    parts = finished_parts(screen)
    return bool(parts) and len(parts) == int(parts[0].name.split("-of-")[1].split(".")[0])


PART_FILES = finished_parts()


def test_the_bundled_build_has_parts_or_a_database():
    assert PART_FILES or BUNDLED.exists(), "neither screens/parts nor screens.db is committed"


@pytest.mark.parametrize("part", PART_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_finished_part_is_its_shard_of_the_committed_spec(part, tmp_path):
    specs = committed_specs()
    db = unpack(part, tmp_path)
    (record,) = screen_records(db)
    k, n = part.name.removesuffix(".db.xz").split("-of-")
    assert record.name == part.parent.name
    assert record.shard == f"{k}/{n}"
    assert record.status == "complete"
    assert_made_from_spec(record, db, specs)


@pytest.mark.skipif(not BUNDLED.exists(), reason="screens.db is committed once its build ends")
def test_the_bundled_database_holds_the_finished_screens_whole():
    specs = committed_specs()
    records = {r.name: r for r in screen_records(BUNDLED) if r.kind != "published"}
    for record in records.values():
        assert_made_from_spec(record, BUNDLED, specs)
        assert record.status == "complete" or record.shard is not None, record.name
    for name in specs:
        if all_parts_finished(name):
            assert records[name].status == "complete", f"{name}: every part is finished"
    assert BUNDLED.stat().st_size <= MAX_BYTES


def test_the_bundled_database_holds_the_papers_published_screens():
    """Hu et al.'s tables, imported without their texts (`mutatui import-paper --no-texts`):
    Table 2's tiles of both models, and Zephyr's writers."""
    published = {r.name: r for r in screen_records(BUNDLED) if r.kind == "published"}
    assert set(published) == {"hu2024-llama2-7b", "hu2024-zephyr"}
    with connect(BUNDLED, read_only=True) as connection:
        counts = dict(
            connection.execute(
                "SELECT s.name, count(*) FROM mutations m JOIN screens s USING (screen_id) "
                "WHERE s.kind = 'published' GROUP BY s.name"
            ).fetchall()
        )
    assert counts == {"hu2024-llama2-7b": 7297, "hu2024-zephyr": 744}


@pytest.mark.skipif(
    not all_parts_finished(TILE_SCREEN), reason="the tile screen's parts are not all in"
)
def test_lines_spec_is_what_analyze_makes_of_the_tile_screen(tmp_path):
    only_tiles = tmp_path / "parts"
    only_tiles.mkdir()
    (only_tiles / TILE_SCREEN).symlink_to(PARTS / TILE_SCREEN)
    db, emitted = tmp_path / "tiles.db", tmp_path / "lines.toml"
    merge = [sys.executable, str(REPO / "scripts" / "screen_in_parts.py"), "merge"]
    subprocess.run([*merge, "--dir", str(only_tiles), "--db", str(db)], check=True)
    analyze = [sys.executable, "-m", "mutatui", "analyze", str(db), "--screen", TILE_SCREEN]
    analyze += ["--emit-lines", str(emitted), "--tiles", str(LINE_TILES)]
    analyze += ["--lines-template", str(SCREENS / "lines.base.toml")]
    subprocess.run(analyze, check=True, capture_output=True)
    assert emitted.read_text() == LINES_SPEC.read_text()


def verified_sources() -> list[tuple[str, Path]]:
    """One database per bundled screen to verify: screens.db, or else its first finished part.
    The published screens are the paper's tables, with no weights of theirs to rerun here."""
    if BUNDLED.exists():
        return [(r.name, BUNDLED) for r in screen_records(BUNDLED) if r.kind != "published"]
    firsts = [finished_parts(folder.name)[:1] for folder in sorted(PARTS.glob("*"))]
    return [(first.parent.name, first) for parts in firsts for first in parts]


@pytest.mark.smollm2
@pytest.mark.parametrize("screen, source", verified_sources(), ids=lambda v: str(v))
def test_recorded_outcomes_hold_on_the_naive_path(screen, source, tmp_path):
    """`mutatui verify`: a seeded sample of the screen rerun by editing the weight, generating
    alone and restoring; every recorded text, divergence and choice score must come out equal."""
    db = unpack(source, tmp_path) if source.suffix == ".xz" else source
    verify = [sys.executable, "-m", "mutatui", "verify", str(db), "--screen", screen]
    done = subprocess.run([*verify, "--sample", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{screen}: 2 of 2 sampled mutations" in done.stdout
