"""MkDocs hook: the project's `findings/` and `assets/` folders become part of the site as they
are, so the docs link to the reports and screenshots in git instead of keeping copies."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
SHARED = ("findings", "assets")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for folder in SHARED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file():
                uri = path.relative_to(ROOT).as_posix()
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
