"""SVG screenshots of the explorer on a database: the manual's pictures of the bundled screen.

    .venv/bin/python scripts/screenshots.py screens.db assets/ --screen tiles-64 \\
        --site 'L3.o[64,128]' [--size 120x36] [--views grid,detail] [--prefix explorer_lines_] \\
        [--live-model smollm2 --live-site 'L11.down[507,1229]' --live-kind zero]

Drives the real app with Textual's Pilot: each view is reached by the keys a user would press,
once the app's workers have finished, and written with `App.export_screenshot` as
`<prefix><view>.svg` (prefix `explorer_`). The grid views open the matrix of `--site` with the
cursor on it. With `--live-model`, the view `live` is live mode as `mutatui live` opens it: the
model loaded, one run of `--live-site` finished, baseline and mutant side by side (its run is
saved to a temporary database, never to `db`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from textual.pilot import Pilot

from mutatui.engine.sites import check_site_syntax
from mutatui.errors import MutatuiError
from mutatui.store.frames import pick_screen
from mutatui.store.queries import load_screen
from mutatui.tui.app import ExplorerApp
from mutatui.tui.grid_data import opening
from mutatui.tui.widgets.matrix_grid import COLOUR_MODES


def views(site: str, colour: str) -> dict[str, tuple[str, ...]]:
    """The keys that reach each view from the opened screen's overview, whose grids open in
    `colour` (`grid_data.opening`: a saturated screen opens filtered and coloured by effect)."""
    grid = ("enter", "g", *site, "enter")
    by_severity = ("s",) * (
        (COLOUR_MODES.index("severity") - COLOUR_MODES.index(colour)) % len(COLOUR_MODES)
    )
    severe_only = ("F", "V", "V", "V")  # no filter, then minimum severity >=1, >=2, >=3
    return {
        "overview": (),
        "overview_severe_only": (*grid, *severe_only, "escape"),
        "grid": grid,
        "grid_severity": (*grid, *by_severity),
        "grid_severe_only": (*grid, *by_severity, *severe_only),
        "grid_rearranged": (*grid, "r"),
        "grid_complementarity": (*grid, "c"),
        "detail": (*grid, "enter"),
        "writers": ("w",),
    }


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def capture(
    db: Path, screen_id: int | None, keys: tuple[str, ...], size: tuple[int, int], title: str
) -> str:
    """The SVG of the app on `db` after pressing `keys` (the screen list when no screen_id)."""
    app = ExplorerApp(db, open_screen=screen_id, poll_seconds=3600)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        return app.export_screenshot(title=title)


async def capture_live(model: str, site: str, kind: str, size: tuple[int, int], title: str) -> str:
    """The SVG of live mode on `model` once its run of `site` has finished and been saved."""
    from mutatui.cli import build_parser
    from mutatui.commands.live import build_app
    from mutatui.tui.screens.live import LiveScreen

    with tempfile.TemporaryDirectory() as folder:
        arguments = ["live", "--model", model, "--site", site, "--kind", kind]
        args = build_parser(["live"]).parse_args([*arguments, "--db", f"{folder}/live.db"])
        app = build_app(args)
        async with app.run_test(size=size) as pilot:
            deadline = time.monotonic() + 600
            while not (isinstance(app.screen, LiveScreen) and app.screen.last_saved is not None):
                if time.monotonic() > deadline:
                    raise MutatuiError(f"live mode on {model} did not finish a run in 600 s")
                await pilot.pause(0.2)
            await settle(pilot)
            return app.export_screenshot(title=title)


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 80 or int(height) < 24:
        raise MutatuiError(f"--size must be COLUMNSxROWS, at least 80x24, got {text!r}")
    return int(width), int(height)


def pick_views(text: str | None, known: list[str]) -> list[str]:
    """The views named in a comma list (all of them when None), checked against `known`."""
    if text is None:
        return known
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise MutatuiError(
            f"--views: unknown {', '.join(unknown) or '(none given)'}; valid: {', '.join(known)}"
        )
    return chosen


async def write_all(args: argparse.Namespace) -> list[Path]:
    db, outdir = Path(args.db), Path(args.outdir)
    size = parse_size(args.size)
    check_site_syntax(args.site)
    check_site_syntax(args.live_site)
    screen_id = pick_screen(db, args.screen).screen_id
    colour = opening(load_screen(db, screen_id)).colour
    outdir.mkdir(parents=True, exist_ok=True)
    shots = {"screens": (None, ())} | {
        view: (screen_id, keys) for view, keys in views(args.site, colour).items()
    }
    known = [*shots, "live"] if args.live_model else list(shots)
    chosen = pick_views(args.views, known)
    written = []
    for view in chosen:
        title = f"mutatui: {view.replace('_', ' ')}"
        if view == "live":
            svg = await capture_live(args.live_model, args.live_site, args.live_kind, size, title)
        else:
            opened, keys = shots[view]
            svg = await capture(db, opened, keys, size, title)
        path = outdir / f"{args.prefix}{view}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="a mutatui database")
    parser.add_argument("outdir", help="the folder for the SVG files")
    parser.add_argument("--screen", help="the screen to open (default: the largest)")
    parser.add_argument("--site", default="L0.q[0,0]", help="the matrix and cell of the grids")
    parser.add_argument("--size", default="120x36", help="terminal COLUMNSxROWS (default 120x36)")
    parser.add_argument("--views", help="a comma list of the views to take (default: all)")
    parser.add_argument("--prefix", default="explorer_", help="the files' name before the view")
    parser.add_argument("--live-model", help="also take the view `live`: live mode on this model")
    parser.add_argument("--live-site", default="L0.q[0,0]", help="the site of the live run")
    parser.add_argument("--live-kind", default="max", help="the mutation of the live run")
    args = parser.parse_args(argv)
    try:
        written = asyncio.run(write_all(args))
    except MutatuiError as error:
        print(f"screenshots: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} screenshots to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
