"""Ray throughput: the same screen on a local Ray cluster with 1 and with 2 CPU workers.

Each run starts its own local cluster, screens the spec into a fresh database and reports
three rates: over the whole run (cluster start, model loads and baselines included); over the
screening (from the moment the first worker has started, when parts begin, to the end); and
per worker (mutations over the summed compute seconds of the parts, which shows how much each
worker slows down when they share the machine). Both runs must record the same results; the
script checks that.

    .venv/bin/python benchmarks/ray_throughput.py [--model smollm2] [--sites random:4,seed=0]

Each worker gets one CPU and one torch thread, so one worker uses one core and two use two.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from mutatui.engine.decoding import Decoding
from mutatui.scale.ray_runner import RayEvent, RayRun, run_screen_on_ray
from mutatui.screening.probes import TextProbe
from mutatui.screening.runner import ScreenRun
from mutatui.screening.samplers import parse_sampler
from mutatui.screening.spec import ScreenSpec
from mutatui.store.database import connect


def run_once(spec: ScreenSpec, workers: int, parts: int | None, folder: Path) -> dict:
    db = folder / f"workers{workers}.db"
    started: dict[int, float] = {}

    def note(event: RayEvent) -> None:
        if event.kind == "started":
            started.setdefault(event.worker, time.perf_counter())

    began = time.perf_counter()
    report = run_screen_on_ray(
        spec, ScreenRun(db, batch_size=32), RayRun(workers=workers, parts=parts), on_event=note
    )
    ended = time.perf_counter()
    assert report.status == "complete", report
    screening = ended - min(started.values())
    with connect(db, read_only=True) as connection:
        rows = connection.execute(
            "SELECT * EXCLUDE (screen_id) FROM results ORDER BY mutation_id, probe_id"
        ).fetchall()
        compute = connection.execute("SELECT sum(seconds) FROM screen_parts").fetchall()[0][0]
    return {
        "workers": workers,
        "mutations": report.done,
        "wall": ended - began,
        "screening": screening,
        "compute": compute,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--sites", default="random:4,seed=0")
    parser.add_argument("--layers", default=None, help="e.g. 0-9 (default all)")
    parser.add_argument("--parts", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    spec = ScreenSpec(
        model=args.model,
        name="ray-throughput",
        probes=(TextProbe("drosophila", "The life cycle of Drosophila:", "describe"),),
        choice=None,
        layers=None if args.layers is None else _layers(args.layers),
        sites=parse_sampler(args.sites),
        kinds=("max", "min"),
        decoding=Decoding(max_new_tokens=args.max_new_tokens),
    )
    with tempfile.TemporaryDirectory() as folder:
        runs = [run_once(spec, workers, args.parts, Path(folder)) for workers in (1, 2)]
    assert runs[0]["rows"] == runs[1]["rows"], "1 and 2 workers recorded different results"
    for run in runs:
        print(
            f"{run['workers']} worker(s): {run['mutations']} mutations; whole run "
            f"{run['wall']:.1f} s = {run['mutations'] / run['wall']:.2f} mut/s; screening "
            f"{run['screening']:.1f} s = {run['mutations'] / run['screening']:.2f} mut/s; "
            f"per worker {run['mutations'] / run['compute']:.2f} mut/s"
        )
    one, two = (run["mutations"] / run["screening"] for run in runs)
    print(f"2 workers / 1 worker (screening): {two / one:.2f}x; results equal")


def _layers(text: str) -> tuple[int, ...]:
    from mutatui.screening.spec import parse_layers

    layers = parse_layers(text)
    assert layers is not None
    return layers


if __name__ == "__main__":
    main()
