"""Where mutatui writes when the user did not name a database: live runs, and the tags and live
runs of a database that must not be written (the bundled screens.db, a read-only file).

The bundled screens.db is data kept in git: writing a tag into it would dirty the checkout and
make the next pull conflict on a binary. So the explorer writes such a file's tags into a side
database of the user's, one per opened file, and overlays them when it reads the file; the live
runs started from it go to a second one beside it, whose live screens are listed with the file's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import mutatui
from mutatui.engine.forms import shown
from mutatui.errors import MutatuiError

LIVE_DB_NAME = "live.db"


def data_dir() -> Path:
    """The user's data directory for mutatui (XDG_DATA_HOME/mutatui on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("mutatui"))


def default_live_db() -> Path:
    """Where live runs go without --db (created on demand)."""
    return data_dir() / LIVE_DB_NAME


def bundled_database() -> Path:
    """The screens.db that ships in the repository next to the package."""
    return Path(mutatui.__file__).resolve().parents[1] / "screens.db"


WRITE_BUNDLED = "MUTATUI_WRITE_BUNDLED"
"""Set to 1 by the Makefile's build of the bundled screens.db, the one writer it may have."""


def is_bundled(path: Path) -> bool:
    """Whether `path` is the bundled screens.db, by any name (a symlink, a hard link)."""
    bundled = bundled_database()
    return bundled.exists() and path.exists() and path.samefile(bundled)


def refuse_bundled(path: Path) -> None:
    """Refuse to write the bundled screens.db, by whatever name it is given: it is data kept in
    git, never a scratch file. Its own build (`make screens.db`) sets MUTATUI_WRITE_BUNDLED=1."""
    if os.environ.get(WRITE_BUNDLED) == "1" or not is_bundled(path):
        return
    via = "" if path.resolve() == Path(path).absolute() else f" (via {shown(path)})"
    raise MutatuiError(
        f"{shown(bundled_database())} is the bundled database{via}, data kept in git: mutatui "
        "does not write into it; copy it (cp screens.db mine.db) and give the copy"
    )


READ_ONLY_SYSTEM = "it is on a read-only file system"


def unwritable(path: Path) -> str | None:
    """Why the database at `path` (a file, or one to create) cannot be written, in a few
    words, or None when it can: the file, and its folder for DuckDB's write-ahead log and the
    lock. A file made read-only stays unwritten, also for root."""
    if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        return READ_ONLY_SYSTEM
    if path.exists() and not (path.stat().st_mode & 0o200 and os.access(path, os.W_OK)):
        return "the file is read-only"
    return unwritable_folder(path.parent)


def unwritable_folder(folder: Path) -> str | None:
    """Why nothing can be created in `folder` (an existing one), or None when it can: a
    read-only file system, or a folder made read-only (also for root, as a file)."""
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return READ_ONLY_SYSTEM
    if not (folder.stat().st_mode & 0o200 and os.access(folder, os.W_OK)):
        return f"the folder {shown(folder)} is read-only"
    return None


def writable(path: Path) -> bool:
    """Whether the existing file at `path` may be written (`unwritable` says why not)."""
    return unwritable(path) is None


def side_database(path: Path) -> Path | None:
    """Where the explorer writes the tags of `path`: None for the file itself, else a side
    database named after the file's absolute path (one per opened file)."""
    return _beside(path, ".db")


def side_live_database(path: Path) -> Path | None:
    """Where the explorer saves the live runs started from `path`: None for the file itself,
    else a database of the user's beside its side database, whose live screens the explorer
    lists with the file's own. Not the side database itself: that one keys its tags by the
    opened file's screen ids, which the live screens' own ids would collide with."""
    return _beside(path, ".live.db")


def ensure_data_folder(path: str | Path) -> None:
    """Create the folder of a database mutatui places in the user's data directory (the live
    database, a side database) on its first write; a folder the user named is theirs to make."""
    target = Path(path).resolve()
    home = data_dir().resolve()
    if target.is_relative_to(home):
        target.parent.mkdir(parents=True, exist_ok=True)


def _beside(path: Path, suffix: str) -> Path | None:
    if writable(path) and not is_bundled(path):
        return None
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return data_dir() / "side" / f"{path.stem}-{digest}{suffix}"
