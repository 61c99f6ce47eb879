"""Every bad input we know of, in one table: the command, the input, and the one line it must
get. Each case runs `mutatui`'s entry point in this process, as the console script does; none
loads a model, since every check comes before that. The table only grows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from mutatui.cli import main
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
    (folder / "text.db").write_text("not a database\n" * 100)
    (folder / "latin1.toml").write_bytes(b"\xff\xfe model = 1")
    (folder / "a-file").write_text("x")
    return folder


SCREEN = ["screen", "--db", "{dir}/new.db", "--model", MODEL, "--estimate"]

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
    (["live", "--model", MODEL, "--db", "{dir}/a-file/live.db"], "a part of its folder is a file"),
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
    ([*SCREEN, "--decoding", "sample", "--seed", str(2**70)], "seed must be between 0 and"),
    ([*SCREEN, "--decoding", "sample", "--seed", "-1"], "seed must be between 0 and"),
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
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=lambda v: str(v)[:60])
def test_a_bad_input_gets_one_line(files, capsys, args, expected):
    filled = [arg.replace("{dir}", str(files)) for arg in args]
    assert main(filled) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("mutatui: ")
    assert expected.replace("{dir}", str(files)) in lines[0], lines[0]
    assert len(lines[0]) < 400, "the input is echoed at length"
    assert captured.out == ""
    assert not list(files.glob("*.lock")), "a refusal left its lock file behind"
    assert not (files / "new.db").exists(), "a refusal wrote a database"
