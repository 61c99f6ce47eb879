"""Remappable keys: a TOML file maps binding ids to keys, e.g. `"grid.left" = "left,a"`.

The file is `keys.toml` in the user config directory (`~/.config/mutatui/keys.toml` on Linux),
or the path in `$MUTATUI_KEYS`. Ids are listed by the help screen (`?`). A bad file is reported
in one line and ignored, so a typo never keeps the explorer from starting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from platformdirs import user_config_dir

from mutatui.errors import MutatuiError


def keymap_path() -> Path:
    override = os.environ.get("MUTATUI_KEYS")
    return Path(override) if override else Path(user_config_dir("mutatui")) / "keys.toml"


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """The user's key overrides ({} when there is no file)."""
    target = path or keymap_path()
    if not target.is_file():
        return {}
    try:
        document = tomllib.loads(target.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise MutatuiError(f"{target}: not valid TOML ({error})") from error
    keys = document.get("keys", document)
    bad = [name for name, value in keys.items() if not isinstance(value, str)]
    if bad:
        raise MutatuiError(
            f'{target}: keys must be strings like "grid.left" = "left,a"; bad: {", ".join(bad)}'
        )
    return dict(keys)
