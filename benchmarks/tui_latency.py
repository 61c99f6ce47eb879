"""Keypress-to-repaint latency of the explorer on a synthetic screen with 2 million results.

    .venv/bin/python benchmarks/tui_latency.py [--db PATH] [--size 80x24] [--presses 40]
        [--sites-per-matrix 1500]

Builds (once, at --db) a 7B-shaped element screen: 32 layers x 7 matrices (4096 x 11008 for
the MLP), 1500 sites per matrix and kind (max, min), 3 prompts: 2,016,000 results. Then drives
the real app headless with Pilot and times, for each key, from the moment the key event is
handed to the app to the end of the last frame it caused: the compositor's update, also
encoded to terminal escape sequences as a real terminal would receive it (the headless driver
would otherwise skip that step). Goals (issue 4): p95 <= 50 ms per key, first paint <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from textual import events

from mutatui.store.synthetic import SyntheticSpec, build_synthetic
from mutatui.tui.app import ExplorerApp

SEVEN_B = SyntheticSpec(
    name="synthetic-7b-elements",
    layers=32,
    hidden=4096,
    intermediate=11008,
    kv=4096,
    site=1,
    sites_per_matrix=1500,
    choice_probe=False,
)


class Timed(ExplorerApp):
    """The explorer, recording when each frame has been fully produced."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[float] = []
        self.frame_cpu: list[float] = []
        self.started = time.perf_counter()

    def _display(self, screen, renderable) -> None:
        if renderable is not None:
            renderable.render_segments(self.console)
            self.frames.append(time.perf_counter())
            self.frame_cpu.append(time.process_time())
        super()._display(screen, renderable)


async def press_timed(pilot, app: Timed, key: str) -> tuple[float, float] | None:
    """Milliseconds from handing `key` to the app to the end of the last frame it caused:
    wall-clock, and CPU time of this process (what the key costs without other load)."""
    await pilot.pause()
    before = len(app.frames)
    start, start_cpu = time.perf_counter(), time.process_time()
    app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    if len(app.frames) == before:
        return None
    return (app.frames[-1] - start) * 1000, (app.frame_cpu[-1] - start_cpu) * 1000


CHILD = """
import asyncio, sys, time
from mutatui.cli import build_parser
build_parser(["browse"]).parse_args(["browse", sys.argv[1]])  # what `mutatui browse` parses
from mutatui.tui.app import ExplorerApp
from textual.app import App
class FirstPaint(ExplorerApp):
    def _display(self, screen, renderable):
        if renderable is not None:
            renderable.render_segments(self.console)
            print(time.time(), flush=True)
            self.exit()
        super()._display(screen, renderable)
async def run():
    async with FirstPaint(sys.argv[1]).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
asyncio.run(run())
"""


def process_first_paint(db: Path) -> float:
    """Seconds from launching a fresh Python process (imports included) to its first frame."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(db)], capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[0]) - started


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(name: str, samples: list[tuple[float, float]]) -> str:
    if not samples:
        return f"{name:<19} n=  0  (no key press caused a frame)"
    wall = [sample[0] for sample in samples]
    cpu = [sample[1] for sample in samples]
    return (
        f"{name:<19} n={len(samples):>3}  wall median {statistics.median(wall):6.1f}"
        f"  p95 {p95(wall):6.1f} ms | cpu median {statistics.median(cpu):5.1f}"
        f"  p95 {p95(cpu):5.1f} ms"
    )


async def run(db: Path, size: tuple[int, int], presses: int) -> None:
    app = Timed(db)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        first_paint = (app.frames[0] - app.started) if app.frames else float("nan")
        await app.workers.wait_for_complete()
        await pilot.pause()
        listed = app.frames[-1] - app.started
        opened = time.perf_counter()
        await pilot.press("enter")
        while app.data is None:
            await asyncio.sleep(0.01)
        await app.workers.wait_for_complete()
        await pilot.pause()
        loaded = app.frames[-1] - opened
        load = os.getloadavg()[0]
        print(
            f"size {size[0]}x{size[1]}, {int(app.data.tested.sum()):,} results, load average {load:.1f}"
        )
        print(f"first paint      {first_paint * 1000:7.0f} ms after the app starts (goal <= 2000)")
        print(
            f"first paint      {process_first_paint(db) * 1000:7.0f} ms after a new process starts"
        )
        print(f"screen list      {listed * 1000:7.0f} ms after the app starts (counts filled in)")
        print(f"2M-result screen {loaded * 1000:7.0f} ms from Enter to its overview (worker)")
        await pilot.press("l", "l", "l", "l", "enter")  # L0.gate, 11008 x 4096
        await pilot.pause()
        cases: dict[str, list[str]] = {
            "cursor (fit)": ["l", "j", "h", "k"] * (presses // 4),
            "zoom in/out": ["plus", "plus", "minus", "minus"] * (presses // 4),
            "cursor (zoomed)": ["plus", "plus"] + ["l", "j", "pagedown", "h", "k"] * (presses // 5),
            "layer change": ["right_square_bracket", "left_square_bracket"] * (presses // 2),
            "matrix type": ["m"] * presses,
            "filter (K, V keys)": ["K", "V"] * (presses // 2),
            "filter dialog": ["F", "f", "ctrl+s"] * max(presses // 4, 2),
        }
        for name, keys in cases.items():
            samples = []
            for key in keys:
                if name == "filter dialog" and key == "f":
                    await pilot.press("f")  # open the dialog (not timed), choose min kind
                    app.screen.query_one("#kind-min").value = True
                    await pilot.pause()
                    continue
                if name == "cursor (zoomed)" and key == "plus":
                    await pilot.press(key)
                    continue
                latency = await press_timed(pilot, app, key)
                if latency is not None:
                    samples.append(latency)
            print(summary(name, samples))
            await pilot.press("0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "mutatui-2m.db")
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument(
        "--sites-per-matrix",
        type=int,
        default=SEVEN_B.sites_per_matrix,
        help="sites per matrix and kind of the screen built (1500: 2,016,000 results)",
    )
    args = parser.parse_args()
    if not args.db.exists():
        spec = replace(SEVEN_B, sites_per_matrix=args.sites_per_matrix)
        print(f"building {args.db} ({spec.sites_per_matrix} sites per matrix) ...", file=sys.stderr)
        started = time.perf_counter()
        build_synthetic(args.db, spec)
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    width, height = (int(part) for part in args.size.split("x"))
    asyncio.run(run(args.db, (width, height), args.presses))


if __name__ == "__main__":
    main()
