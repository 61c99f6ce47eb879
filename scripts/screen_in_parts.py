"""Run a screen spec as N part files, each a shard (`--shard K/N`) kept in its own database.

    .venv/bin/python scripts/screen_in_parts.py run screens/tiles.toml --parts 54 \\
        --dir screens/parts --db screens.db [any `mutatui screen` flag, e.g. --batch-size 32]
    .venv/bin/python scripts/screen_in_parts.py merge --dir screens/parts --db screens.db
    .venv/bin/python scripts/screen_in_parts.py snapshot --dir screens/parts --to /tmp/snapshots

`make screens.db` builds the bundled screens this way, because its build spans many sessions
on machines that do not keep their files: a finished part is a small file that can be committed
as it comes, and never changes again. Part K of a spec named S runs in
`DIR/S/K-of-N.partial.db` (resumed when it is there) and is stored xz-compressed as
`DIR/S/K-of-N.db.xz` once its screen is complete (a DuckDB file is mostly empty blocks: a part
of 960 tile mutations is 3.9 MB, its .xz 36 KB). Shards interleave the
spec's mutations in chunks of 64 (`screening.plan.Shard`), so each part holds slices of many
layers.

`run` runs or resumes the parts in order, then merges them all into DB; it stops at the first
part that does not finish (run it again to resume). `merge` merges every finished part found
under DIR into DB and relabels the merged screens' styles (`mutatui restyle`), so DB shows the
build so far; parts already merged are skipped. `snapshot` copies every unfinished part, as it
stands between two of its screen's batches, to the same relative path under another folder and
prints `PART<TAB>COPY` per part, so a session about to stop can commit the copy in the part's
place without stopping the screen:

    git update-index --add --cacheinfo "100644,$(git hash-object -w COPY),PART"
"""

from __future__ import annotations

import argparse
import lzma
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from mutatui.errors import MutatuiError
from mutatui.store.database import copy_database, lock_path, writer_lock
from mutatui.store.merge import merge, shard_parts
from mutatui.store.screens import find_screen

PART_NAME = re.compile(r"^(\d+)-of-(\d+)\.db\.xz$")


def mutatui(*args: str) -> list[str]:
    return [sys.executable, "-m", "mutatui", *args]


def part_path(folder: Path, k: int, n: int) -> Path:
    return folder / f"{k}-of-{n}.db.xz"


def partial_path(done: Path) -> Path:
    return done.with_name(done.name.removesuffix(".db.xz") + ".partial.db")


def store_part(partial: Path, done: Path) -> None:
    """Compress a complete part to `done` (atomically: a kill leaves the partial file) and
    remove the partial file and its lock."""
    written = done.with_name(done.name + ".tmp")
    with partial.open("rb") as source, lzma.open(written, "wb", preset=9) as target:
        shutil.copyfileobj(source, target)
    written.replace(done)
    partial.unlink()
    lock_path(partial).unlink(missing_ok=True)


@contextmanager
def opened_parts(parts: Sequence[Path]) -> Iterator[list[Path]]:
    """The parts decompressed into a temporary folder, for `merge` to read."""
    with TemporaryDirectory(prefix="mutatui-parts-") as folder:
        opened = []
        for part in parts:
            target = Path(folder) / part.name.removesuffix(".xz")
            with lzma.open(part, "rb") as source, target.open("wb") as copy:
                shutil.copyfileobj(source, copy)
            opened.append(target)
        yield opened


def part_number(path: Path) -> int | None:
    """K of a finished part file `K-of-N.db.xz`; None for any other file."""
    match = PART_NAME.match(path.name)
    return None if match is None else int(match[1])


def finished_parts(folder: Path) -> list[Path]:
    """The finished part files of one screen's folder, by part number."""
    return sorted((p for p in folder.glob("*.db.xz") if part_number(p)), key=part_number)


def merged_parts(db: Path, name: str) -> frozenset[int] | None:
    """The parts of screen `name` already in `db`; None when it holds the whole screen."""
    record = find_screen(db, name) if db.exists() else None
    if record is None:
        return frozenset()
    parsed = shard_parts(record.shard)
    if parsed is not None:
        return parsed[0]
    if record.status != "complete":
        raise MutatuiError(
            f"{db} holds an unfinished run of {name!r} not made of parts; resume it with "
            f"`mutatui screen --db {db} --resume`, or give another --db"
        )
    return None


def unmerged(db: Path, name: str, parts: Sequence[Path]) -> list[Path]:
    """The parts of `parts` that `db` does not hold yet."""
    already = merged_parts(db, name)
    return [] if already is None else [p for p in parts if part_number(p) not in already]


def merge_into(db: Path, name: str, parts: Sequence[Path]) -> int:
    """Merge the parts `db` does not hold yet; how many were merged."""
    todo = unmerged(db, name, parts)
    if todo:
        with opened_parts(todo) as opened, writer_lock(db):
            merged = merge(db, opened)
        for screen, added in merged:
            print(f"mutatui: merged {added} mutations of {screen!r} into {db}", file=sys.stderr)
    return len(todo)


def run_part(spec: Path, k: int, n: int, done: Path, name: str, flags: Sequence[str]) -> int:
    """Run or resume part K/N into its partial file; store it as `done` once complete."""
    partial = partial_path(done)
    record = find_screen(partial, name) if partial.exists() else None
    if record is None or record.status != "complete":
        if record is None:
            partial.unlink(missing_ok=True)  # killed before its screen was recorded
        verb = "running" if record is None else "resuming"
        print(f"mutatui: {verb} part {k}/{n} of {name!r} in {partial}", file=sys.stderr, flush=True)
        command = mutatui("screen", "--db", str(partial), "--spec", str(spec))
        # a resumed screen keeps the shard it was started with
        command += ["--shard", f"{k}/{n}"] if record is None else ["--resume"]
        code = subprocess.run([*command, *flags]).returncode
        if code != 0:
            return code
        record = find_screen(partial, name)
        if record is None or record.status != "complete":
            print(f"mutatui: part {k}/{n} did not complete; run again to resume", file=sys.stderr)
            return 1
    store_part(partial, done)
    return 0


def run(args: argparse.Namespace, flags: Sequence[str]) -> int:
    # imported here: the spec module loads torch (seconds), which `merge`, run by every
    # `make run` before the explorer opens, does not need
    from mutatui.screening.spec import load_spec_file

    name = load_spec_file(args.spec).get("name")
    if not isinstance(name, str) or not name.strip():
        raise MutatuiError(f'{args.spec}: a spec run in parts needs a name, e.g. name = "tiles"')
    if merged_parts(args.db, name) is None:
        print(f"mutatui: {args.db} already holds all of {name!r}", file=sys.stderr)
        return 0
    folder = args.dir / name
    folder.mkdir(parents=True, exist_ok=True)
    parts = [part_path(folder, k, args.parts) for k in range(1, args.parts + 1)]
    for k, done in enumerate(parts, start=1):
        if not done.exists():
            code = run_part(args.spec, k, args.parts, done, name, flags)
            if code != 0:
                return code
    merge_into(args.db, name, parts)
    return 0


def merge_all(args: argparse.Namespace) -> int:
    merged = 0
    for folder in sorted(p for p in args.dir.glob("*") if p.is_dir()):
        merged += merge_into(args.db, folder.name, finished_parts(folder))
    if merged:
        return subprocess.run(mutatui("restyle", str(args.db))).returncode
    return 0


def snapshot(args: argparse.Namespace) -> int:
    for partial in sorted(args.dir.glob("*/*.partial.db")):
        copy = args.to / partial.relative_to(args.dir)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy_database(partial, copy)
        print(f"{partial}\t{copy}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run or resume a spec's parts, then merge them")
    run_parser.add_argument("spec", type=Path, help="the screen spec (TOML, with a name)")
    run_parser.add_argument("--parts", type=int, required=True, help="how many parts (N)")
    merge_parser = commands.add_parser("merge", help="merge every finished part into DB")
    snapshot_parser = commands.add_parser("snapshot", help="copy every unfinished part")
    for sub in (run_parser, merge_parser, snapshot_parser):
        sub.add_argument("--dir", type=Path, required=True, help="the folder of parts")
    for sub in (run_parser, merge_parser):
        sub.add_argument("--db", type=Path, required=True, help="the database to merge into")
    snapshot_parser.add_argument("--to", type=Path, required=True, help="the folder of copies")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args, flags = parser().parse_known_args(argv)
    try:
        if args.command != "run" and flags:
            raise MutatuiError(f"{args.command} takes no screen flags: {' '.join(flags)}")
        if args.command == "merge":
            return merge_all(args)
        if args.command == "snapshot":
            return snapshot(args)
        if args.parts < 1:
            raise MutatuiError(f"--parts must be 1 or more, not {args.parts}")
        return run(args, flags)
    except MutatuiError as error:
        print(f"mutatui: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
