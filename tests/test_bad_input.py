"""Every bad input we know of, in one table: the command, the input, and the one line it must
get. Each case runs `mutatui`'s entry point in this process, as the console script does; none
loads a model, since every check comes before that. Each must end at once (a named pipe once
blocked forever), exit 2 with one line, and leave the folder of files exactly as it was (no
database, output folder or lock created, nothing changed). The table only grows."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import duckdb
import pytest

from mutatui.cli import main
from mutatui.errors import MutatuiError
from mutatui.store.places import WRITE_BUNDLED, bundled_database, refuse_bundled
from mutatui.store.synthetic import SyntheticSpec, build_synthetic

BIG = "9" * 5000
LONG = "y" * 100_000
MODEL = "/no/model/is/loaded/before/these/checks"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Databases and files of every kind a user may point mutatui at."""
    folder = tmp_path_factory.mktemp("bad")
    good = folder / "good.db"
    build_synthetic(good, SyntheticSpec(layers=1, hidden=16, intermediate=32, kv=8, site=8))
    for version in ("2", "0", "one"):
        target = folder / f"v{version}.db"
        target.write_bytes(good.read_bytes())
        with duckdb.connect(str(target)) as connection:
            connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
    unversioned = folder / "vnone.db"
    unversioned.write_bytes(good.read_bytes())
    with duckdb.connect(str(unversioned)) as connection:
        connection.execute("DELETE FROM meta")
    with duckdb.connect(str(folder / "other.db")) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    with sqlite3.connect(folder / "s.sqlite") as connection:
        connection.execute("CREATE TABLE t (x)")
    damage_copies(good, folder)
    (folder / "text.db").write_text("not a database\n" * 100)
    os.mkfifo(folder / "pipe.db")
    os.mkfifo(folder / "pipe.toml")
    (folder / "link.db").symlink_to(folder / "pipe.db")
    (folder / "dangling.db").symlink_to(folder / "gone.db")
    write_specs(folder)
    (folder / "latin1.toml").write_bytes(b"\xff\xfe model = 1")
    (folder / "a-file").write_text("x")
    (folder / "bundled.db").symlink_to(bundled_database())
    read_only_folder(good, folder / "ro")
    return folder


def read_only_folder(good: Path, folder: Path) -> None:
    """A folder made read-only with a database in it, itself read-only: refused for writing
    by root too, as a read-only mount is (tested below where this machine can mount one)."""
    folder.mkdir()
    shutil.copy(good, folder / "good.db")
    (folder / "good.db").chmod(0o444)
    folder.chmod(0o555)


def damage_copies(good: Path, folder: Path) -> None:
    """Copies of a good database damaged as disks and careless copies damage them: cut short
    mid-block and at a block boundary, a header block overwritten, a core table and a column
    dropped, a stored spec that is not a table."""
    data = good.read_bytes()
    (folder / "cut.db").write_bytes(data[:300_000])
    (folder / "cut-at-block.db").write_bytes(data[: 3 * 4096 + 262_144])
    flipped = bytearray(data)
    flipped[8292:8548] = bytes(b ^ 0xFF for b in flipped[8292:8548])
    (folder / "flipped.db").write_bytes(bytes(flipped))
    for name, statement in (
        ("no-results.db", "DROP TABLE results"),
        ("no-column.db", "ALTER TABLE mutations DROP COLUMN kind"),
        ("list-spec.db", "UPDATE screens SET spec = '[1, 2]'"),
        ("bad-spec.db", """UPDATE screens SET spec = '"not a table"'"""),
    ):
        target = folder / name
        shutil.copy(good, target)
        with duckdb.connect(str(target)) as connection:
            connection.execute(statement)


def write_specs(folder: Path) -> None:
    """Spec files of the wrong shape or encoding."""
    (folder / "deep.toml").write_text('model = "m"\nx = ' + "[" * 1000 + "]" * 1000 + "\n")
    (folder / "decoding.toml").write_text('model = "m"\ndecoding = "greedy"\n')
    (folder / "sites-key.toml").write_text(
        'model = "m"\n[sites]\nsampler = "random"\ncount = 3\ncolour = "red"\n'
    )
    (folder / "utf16.toml").write_text('model = "m"\n', encoding="utf-16")
    (folder / "nul.toml").write_bytes(b'model = "m\x00"\n')
    (folder / "seed.toml").write_text(
        'model = "m"\n[sites]\nsampler = "random"\ncount = 3\nseed = -4\n'
    )
    (folder / "temperature.toml").write_text(
        'model = "m"\n[decoding]\nmode = "sample"\ntemperature = inf\n'
    )
    (folder / "layers.toml").write_text('model = "m"\nlayers = "0-999999999"\n')


SCREEN = ["screen", "--db", "{dir}/new.db", "--model", MODEL, "--estimate"]
NEW = ["screen", "--db", "{dir}/new.db", "--model", MODEL]
MUTATE = ["mutate", "--model", MODEL, "--site", "L0.q[0,0]", "--prompt", "x"]
DAMAGED = {
    "cut.db": "is damaged (its 300,000 bytes are not whole blocks",
    "cut-at-block.db": "is damaged (DuckDB: Could not read enough bytes",
    "flipped.db": "is damaged (DuckDB: Corrupt database file: checksum mismatch",
    "no-results.db": "parts missing (table results)",
    "no-column.db": "parts missing (mutations.kind)",
    "pipe.db": "is not a regular file (a named pipe",
    "link.db": "is not a regular file (a named pipe",
}
READERS = [
    ["info", "{db}"],
    ["analyze", "{db}"],
    ["export", "{db}", "{dir}/exported"],
    ["merge", "{dir}/merged.db", "{db}"],
    ["screen", "--db", "{db}", "--resume"],
    ["effects", "{db}", "--model", MODEL],
    ["verify", "{db}", "--model", MODEL],
    ["browse", "{db}"],
    ["restyle", "{db}"],
]

CASES = [
    # schema versions: one rule for every command, readers and writers alike
    (["screen", "--db", "{dir}/v2.db", "--resume"], "schema version 2, newer than this mutatui"),
    (["screen", "--db", "{dir}/v0.db", "--resume"], "schema version 0; this mutatui reads"),
    (["screen", "--db", "{dir}/vone.db", "--resume"], "unknown schema version 'one'"),
    (["screen", "--db", "{dir}/vnone.db", "--resume"], "not a mutatui database (no schema"),
    (["screen", "--db", "{dir}/other.db", "--resume"], "not a mutatui database (no schema"),
    (["info", "{dir}/v0.db"], "schema version 0; this mutatui reads"),
    (["export", "{dir}/v0.db", "{dir}/out"], "schema version 0; this mutatui reads"),
    (["merge", "{dir}/m.db", "{dir}/v0.db"], "schema version 0; this mutatui reads"),
    (["analyze", "{dir}/v2.db"], "newer than this mutatui"),
    (["predict", "--model", MODEL, "--prompt", "x", "--db", "{dir}/v2.db"], "newer than this"),
    (["superweights", "--model", MODEL, "--db", "{dir}/v0.db"], "schema version 0"),
    # files that are not mutatui databases, and paths that are not files
    (["info", "{dir}/text.db"], "not a mutatui database (not a DuckDB file)"),
    (["info", "{dir}/s.sqlite"], "not a mutatui database (a SQLite file?)"),
    (["info", "{dir}"], "is a directory; give a database file"),
    (["info", "{dir}/" + "x" * 300], "File name too long"),
    (["info", "{dir}/missing.db"], "no such database"),
    (["browse", "{dir}/a-file/x.db"], "no such database"),
    # outputs
    (["export", "{dir}/good.db", "{dir}/no/such/folder/r.csv", "--table", "results"], "no folder"),
    (["export", "{dir}/good.db", "{dir}", "--table", "results"], "is a folder; give a file"),
    (["export", "{dir}/good.db", "{dir}/a-file/out"], "cannot write"),
    (["live", "--model", MODEL, "--db", "{dir}/a-file/live.db"], "no folder {dir}/a-file"),
    (["predict", "--model", MODEL, "--prompt", "x", "--db", "{dir}/n/p.db"], "no folder"),
    (
        ["predict", "--model", MODEL, "--prompt", "x", "--db", "{dir}/p.db", "--tile-size", "0"],
        "--tile-size must be at least 1",
    ),
    (
        ["predict", "--model", MODEL, "--prompt", "x", "--db", "{dir}/p.db", "--top-k", "0"],
        "--top-k must be at least 1",
    ),
    (
        ["predict", "--model", MODEL, "--prompt", "x", "--db", "{dir}/p.db", "--name", " "],
        "--name is empty",
    ),
    (
        [
            "predict",
            "--model",
            MODEL,
            "--prompt",
            "x",
            "--db",
            "{dir}/p.db",
            "--emit-sites",
            "{dir}",
        ],
        "--emit-sites {dir} is a folder",
    ),
    (["superweights", "--model", MODEL, "--db", "{dir}/n/s.db"], "no folder"),
    (["superweights", "--model", MODEL, "--candidates", "0"], "--candidates must be at least 1"),
    # empty values never fall back to a default
    ([*SCREEN, "--sites", ""], "--sites is empty"),
    ([*SCREEN, "--name", ""], "--name is empty"),
    ([*SCREEN, "--layers", " "], "--layers is empty"),
    ([*SCREEN, "--shard", ""], "bad shard ''"),
    (["screen", "--db", "", "--model", MODEL], "--db is empty"),
    # numbers and texts too large, or given twice
    ([*SCREEN, "--site", "L0.q[1,1]", "--site", "L0.q[1, 1]"], "is listed twice"),
    ([*SCREEN, "--site", f"L0.q[{BIG},1]"], "(5000 characters)"),
    ([*SCREEN, "--site", f"L{BIG}.q[1,1]"], "(5008 characters)"),
    ([*SCREEN, "--decoding", "sample", "--seed", str(2**70)], "--seed "),
    ([*SCREEN, "--decoding", "sample", "--seed", "-1"], "--seed "),
    (["mutate", "--model", MODEL, "--site", f"L0.q[{BIG},1]", "--prompt", "x"], "characters)"),
    # a long input is never echoed whole
    ([*SCREEN, "--probe", LONG], "(100000 characters)"),
    ([*SCREEN, "--layers", LONG], "(100000 characters)"),
    ([*SCREEN, "--sites", LONG], "(100000 characters)"),
    ([*SCREEN, "--sites", f"random:{LONG}"], "(100000 characters)"),
    ([*SCREEN, "--shard", LONG], "(100000 characters)"),
    (["analyze", "{dir}/good.db", "--screen", LONG], "(100000 characters)"),
    (["analyze", "{dir}/good.db", "--probe", LONG], "(100000 characters)"),
    (["export", "{dir}/good.db", "--table", LONG, "{dir}/t.csv"], "(100000 characters)"),
    (
        ["predict", "--model", MODEL, "--prompt", "x", "--db", "{dir}/p.db", "--kinds", LONG],
        "(100000 characters)",
    ),
    (["live", "--model", MODEL, "--site", LONG], "(100000 characters)"),
    # spec files
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/latin1.toml"], "not UTF-8 text"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}"], "is a folder; give a TOML spec"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/none.toml"], "no such spec file"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/pipe.toml"], "is not a regular file"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/deep.toml"], "nest too deeply"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/decoding.toml"], "decoding is a table"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/sites-key.toml"], "not colour"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/utf16.toml"], "not UTF-8 text"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/nul.toml"], "not valid TOML"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/seed.toml"], "seed must be between 0"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/temperature.toml"], "positive and fin"),
    (["screen", "--db", "{dir}/new.db", "--spec", "{dir}/layers.toml"], "at most 99999"),
    # numbers as a user means them: ASCII digits, no underscores, finite, bounded
    ([*SCREEN, "--site", "L0.q[\u0663,0]"], "bad row index"),
    ([*SCREEN, "--site", "L0.q[\uff10,0]"], "bad row index"),
    ([*SCREEN, "--site", "L\u0663.q[0,0]"], "bad site"),
    ([*SCREEN, "--layers", "\uff10"], "bad layers"),
    ([*SCREEN, "--layers", "1_0"], "bad layers"),
    ([*SCREEN, "--layers", "0-99999999999999999999"], "too large; at most 99999"),
    ([*SCREEN, "--layers", "0-999999999"], "too large; at most 99999"),
    ([*SCREEN, "--sites", "random:\uff11"], "count must be a whole number in digits 0-9"),
    ([*SCREEN, "--sites", "random:1_0"], "count must be a whole number in digits 0-9"),
    ([*SCREEN, "--sites", "random:1,count=2"], "count is given twice"),
    ([*SCREEN, "--sites", "random:1,size=2"], "random takes count, seed, not size"),
    ([*SCREEN, "--sites", "random:1,seed=-1"], "seed must be at least 0"),
    ([*SCREEN, "--sites", "random:1,seed=" + "9" * 30], "too large; at most 9223372036854775807"),
    ([*SCREEN, "--sites", "tiles"], "tiles needs its size after a colon"),
    ([*SCREEN, "--sites", "lines:"], "lines needs its axis after a colon"),
    ([*SCREEN, "--sites", "stride:64,offset=1e3x0"], "offset must be a whole number"),
    ([*SCREEN, "--sites", "region:0:1e9,0:1"], "region bound must be a whole number"),
    ([*SCREEN, "--kinds", "1e400"], "beyond a float's range"),
    ([*SCREEN, "--kinds", "1e-400"], "too small for a float"),
    ([*SCREEN, "--kinds", "\u0663"], "bad mutation kind"),
    ([*SCREEN, "--decoding", "sample", "--temperature", "inf"], "--temperature must be a"),
    ([*SCREEN, "--decoding", "sample", "--temperature", "1e400"], "beyond a float's range"),
    ([*SCREEN, "--decoding", "sample", "--temperature", "0"], "positive and finite"),
    ([*SCREEN, "--seed", "1_0"], "--seed must be a whole number in digits 0-9"),
    ([*SCREEN, "--batch-size", "\u0663"], "--batch-size must be a whole number"),
    ([*MUTATE, "--kind", "1e400"], "beyond a float's range"),
    ([*MUTATE, "--kind", "1e-400"], "too small for a float"),
    ([*MUTATE, "--kind", "0x10"], "bad mutation kind"),
    (["mutate", "--model", MODEL, "--site", "L0.q[0,0]", "--prompt", " "], "--prompt is empty"),
    (["mutate", "--model", MODEL, "--site", "L0.q[0,0]", "--prompt", "", "--no-chat"], "empty"),
    (["analyze", "{dir}/good.db", "--permutations", "1_000"], "--permutations must be a whole"),
    (["analyze", "{dir}/good.db", "--min-effect", "nan"], "--min-effect must be a decimal"),
    # devices mutatui does not compute on, refused before the model is looked for
    ([*MUTATE, "--device", "meta"], "is not one mutatui computes on"),
    ([*MUTATE, "--device", "mps"], "is not one mutatui computes on"),
    (["matrices", "--model", MODEL, "--device", "xla"], "is not one mutatui computes on"),
    ([*MUTATE, "--device", "gpu"], "unknown device 'gpu'"),
    # checked before anything is created: the database, the output folder, the detached child
    ([*NEW, "--sites", "tiles"], "tiles needs its size"),
    ([*NEW, "--site", "L0.q[1,x]"], "bad column index"),
    ([*NEW, "--detach"], "model not found"),
    (["screen", "--db", "{dir}", "--model", MODEL, "--detach"], "is a directory"),
    (["screen", "--db", "{dir}/pipe.db", "--model", MODEL, "--detach"], "not a regular file"),
    (["screen", "--db", "{dir}/pipe.db", "--model", MODEL], "not a regular file"),
    (["screen", "--db", "{dir}/link.db", "--model", MODEL, "--name", "x"], "not a regular file"),
    (["export", "{dir}/missing.db", "{dir}/exported"], "no such database"),
    (["export", "{dir}", "{dir}/exported"], "is a directory"),
    (["export", "{dir}/text.db", "{dir}/exported"], "not a DuckDB file"),
    (["export", "{dir}/good.db", "--table", "", "{dir}/out.csv"], "unknown table ''"),
    (["merge", "{dir}/merged.db", "{dir}/list-spec.db"], "stored spec is not a spec table"),
    (["merge", "{dir}/merged.db", "{dir}/bad-spec.db"], "stored spec is not a spec table"),
    (["merge", "{dir}/merged.db", "{dir}/good.db", "{dir}/text.db"], "not a DuckDB file"),
    (["screen", "--db", "{dir}/list-spec.db", "--resume"], "stored spec is not a spec table"),
    (["info", "{dir}/dangling.db"], "no such database"),
    # the bundled screens.db is data kept in git: no command writes it, by any name
    *(
        (command, "is the bundled database (via {dir}/bundled.db), data kept in git")
        for command in (
            ["screen", "--db", "{dir}/bundled.db", "--resume"],
            ["screen", "--db", "{dir}/bundled.db", "--model", MODEL, "--name", "new"],
            ["merge", "{dir}/bundled.db", "{dir}/good.db"],
            ["effects", "{dir}/bundled.db", "--model", MODEL],
            ["restyle", "{dir}/bundled.db"],
            ["import-paper", "{dir}", "--db", "{dir}/bundled.db"],
            ["predict", "--model", MODEL, "--prompt", "x", "--db", "{dir}/bundled.db"],
            ["superweights", "--model", MODEL, "--db", "{dir}/bundled.db"],
            ["live", "--model", MODEL, "--db", "{dir}/bundled.db"],
        )
    ),
    # a read-only file or folder, refused before anything is loaded or made (also for root)
    (["screen", "--db", "{dir}/ro/new.db", "--model", MODEL], "the folder {dir}/ro is read-only"),
    (["screen", "--db", "{dir}/ro/good.db", "--resume"], "ro/good.db: the file is read-only"),
    (["merge", "{dir}/ro/m.db", "{dir}/good.db"], "the folder {dir}/ro is read-only"),
    (["merge", "{dir}/ro/good.db", "{dir}/good.db"], "the file is read-only"),
    (["export", "{dir}/good.db", "{dir}/ro/out"], "the folder {dir}/ro is read-only"),
    (["export", "{dir}/good.db", "{dir}/ro/r.csv", "--table", "results"], "is read-only"),
    (["effects", "{dir}/ro/good.db", "--model", MODEL], "the file is read-only"),
    (["restyle", "{dir}/ro/good.db"], "the file is read-only"),
    (["import-paper", "{dir}", "--db", "{dir}/ro/p.db"], "the folder {dir}/ro is read-only"),
    (["superweights", "--model", MODEL, "--db", "{dir}/ro/s.db"], "the folder {dir}/ro is read"),
    (["live", "--model", MODEL, "--db", "{dir}/ro/live.db"], "the folder {dir}/ro is read-only"),
    # damaged and foreign files: every command that opens a database, one line each
    *(
        ([arg.replace("{db}", "{dir}/" + name) for arg in reader], expected)
        for name, expected in DAMAGED.items()
        for reader in READERS
    ),
]


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` with its size and modification time (links not followed)."""
    return {
        str(path.relative_to(folder)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


def _too_slow(signum, frame):
    raise TimeoutError("a bad input was not refused within 30 s")


def bundled_state() -> tuple[int, int, bool]:
    """The bundled screens.db's size and modification time, and whether a lock lies beside it."""
    bundled = bundled_database()
    stat = bundled.stat()
    return stat.st_size, stat.st_mtime_ns, bundled.with_name(bundled.name + ".lock").exists()


@pytest.mark.parametrize(("args", "expected"), CASES, ids=lambda v: str(v)[:60])
def test_a_bad_input_gets_one_line(files, capsys, monkeypatch, args, expected):
    monkeypatch.delenv(WRITE_BUNDLED, raising=False)
    filled = [arg.replace("{dir}", str(files)) for arg in args]
    before = listing(files)
    bundled_before = bundled_state()
    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(30)
    try:
        status = main(filled)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert status == 2
    assert listing(files) == before, "a refusal created or changed a file"
    assert bundled_state() == bundled_before, "a refusal touched the bundled screens.db"
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("mutatui: ")
    assert expected.replace("{dir}", str(files)) in lines[0], lines[0]
    assert len(lines[0]) < 400, "the input is echoed at length"
    assert captured.out == ""
    assert not list(files.glob("*.lock")), "a refusal left its lock file behind"
    assert not (files / "new.db").exists(), "a refusal wrote a database"


TINY_CASES = [
    # checked against the model: its layers, its matrices' sizes, its dtype, its context
    (["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--layers", "99"], "layer 99 out"),
    (["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--layers", "2-3"], "layer 3 out"),
    (["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--matrices", "Q"], "unknown matrix"),
    (["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--matrices", "xyz"], "unknown matr"),
    (
        ["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--sites", "list:L99.q[0,0]"],
        "layer 99 out",
    ),
    (
        ["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--sites", "region:0:999,0:1"],
        "does not fit",
    ),
    (
        ["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--sites", "stride:8,offset=999x0"],
        "the sites select nothing",
    ),
    (["screen", "--db", "{dir}/new.db", "--model", "{tiny}", "--kinds", "1e39"], "does not fit"),
    (["mutate", "--model", "{tiny}", "--site", "L9.q[0,0]", "--prompt", "x"], "layer 9 out"),
    (  # SmolLM2's 106,168,320 elements, ten kinds each: sized, never listed
        [
            *NEW[:3],
            "--model",
            "smollm2",
            "--sites",
            "full",
            "--kinds",
            "max,min,zero,1,2,3,4,5,6,7",
        ],
        "plans 1,061,683,200 mutations, more than one process is given (1,000,000,000); split "
        "it with --shard K/2",
    ),
    (
        ["mutate", "--model", "{tiny}", "--site", "L0.q[0,0]", "--kind", "1e39", "--prompt", "x"],
        "does not fit the weights' float32: it holds magnitudes from 1.4e-45 to 3.4e+38",
    ),
    (
        ["mutate", "--model", "{tiny}", "--site", "L0.q[0,0]", "--kind=-1e-50", "--prompt", "x"],
        "does not fit the weights' float32",
    ),
    (
        [
            "mutate",
            "--model",
            "{tiny}",
            "--site",
            "L0.q[0,0]",
            "--no-chat",
            "--prompt",
            "ab " * 400,
        ],
        "reads at most 256",
    ),
]


@pytest.mark.parametrize(("args", "expected"), TINY_CASES, ids=lambda v: str(v)[:60])
def test_a_bad_input_for_this_model_gets_one_line(files, tiny_model_dir, capsys, args, expected):
    """Inputs only the model can judge (a tiny random Llama: 3 layers, 32-wide, float32,
    256 positions; SmolLM2 for a plan too large): refused in one line after it is loaded,
    before anything is written."""
    filled = [
        arg.replace("{dir}", str(files)).replace("{tiny}", str(tiny_model_dir)) for arg in args
    ]
    before = listing(files)
    assert main(filled) == 2
    assert listing(files) == before, "a refusal created or changed a file"
    said = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in said if not line.startswith("mutatui: loading ")]  # progress
    assert len(lines) == 1 and lines[0].startswith("mutatui: "), said
    assert expected in lines[0], lines[0]


@pytest.fixture
def read_only_mount(tmp_path, files):
    """A read-only bind mount of a folder holding a good database, where this machine lets a
    test mount one (root with the right to mount); skipped elsewhere, where the read-only
    folder cases above stand in for it."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(files / "good.db", source / "good.db")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    bind = subprocess.run(["mount", "--bind", source, mounted], capture_output=True, check=False)
    if bind.returncode != 0:
        pytest.skip(f"this machine does not let tests mount: {bind.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", mounted], check=True)
        yield mounted
    finally:
        subprocess.run(["umount", mounted], check=True)


def test_a_read_only_mount_is_read_and_never_written(read_only_mount, files, tmp_path, capsys):
    """`--db` on a read-only file system: every writer refuses in one line before it makes a
    lock or loads a model; every reader reads."""
    ro = str(read_only_mount)
    writers = [
        ["screen", "--db", f"{ro}/new.db", "--model", MODEL],
        ["screen", "--db", f"{ro}/good.db", "--resume"],
        ["merge", f"{ro}/merged.db", str(files / "good.db")],
        ["export", str(files / "good.db"), f"{ro}/out"],
        ["effects", f"{ro}/good.db", "--model", MODEL],
        ["restyle", f"{ro}/good.db"],
        ["import-paper", str(files), "--db", f"{ro}/paper.db"],
        ["predict", "--model", MODEL, "--prompt", "x", "--db", f"{ro}/p.db"],
        ["live", "--model", MODEL, "--db", f"{ro}/live.db"],
    ]
    before = listing(read_only_mount)
    for command in writers:
        assert main(command) == 2, command
        said = capsys.readouterr().err.strip().splitlines()
        assert len(said) == 1, said
        assert "it is on a read-only file system; nothing was changed" in said[0], said
    assert listing(read_only_mount) == before
    readers = [
        ["info", f"{ro}/good.db"],
        ["analyze", f"{ro}/good.db"],
        ["export", f"{ro}/good.db", str(tmp_path / "exported")],
    ]
    for command in readers:
        assert main(command) == 0, command
        assert "Traceback" not in capsys.readouterr().err
    assert (tmp_path / "exported" / "results.parquet").is_file()


def test_only_the_bundled_build_writes_the_bundled_database(files, monkeypatch, tmp_path):
    """By its own name or a link, the bundled screens.db is refused to every writer but its
    build (`make screens.db` sets MUTATUI_WRITE_BUNDLED=1); other databases never are."""
    monkeypatch.delenv(WRITE_BUNDLED, raising=False)
    with pytest.raises(MutatuiError, match=r"is the bundled database, data kept in git"):
        refuse_bundled(bundled_database())
    with pytest.raises(MutatuiError, match=r"bundled database \(via .*bundled.db\)"):
        refuse_bundled(files / "bundled.db")
    refuse_bundled(files / "good.db")
    refuse_bundled(tmp_path / "new.db")
    monkeypatch.setenv(WRITE_BUNDLED, "1")
    refuse_bundled(files / "bundled.db")
