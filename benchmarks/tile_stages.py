"""Where a tile mutation's time goes: the text probe's stages and the choice assay.

Screens the first `--count` 64x64 tiles of one matrix of SmolLM2-135M-Instruct (row-major, max
and min of each tile in turn), as the bundled tiles-64 screen does: the descriptive probe, then
the 21-question assay on the mutations that changed the text. Prints seconds per mutation for
the text probe, split by stage (teacher forcing, onward decoding, naive checks of near ties),
and for the assay. The split comes from cProfile's cumulative times of the stage functions.

    .venv/bin/python benchmarks/tile_stages.py [--layer 15] [--matrix gate] [--count 128]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mutatui.engine.decoding import Decoding, encode_prompt
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.mutations import Mutation, make_mutation
from mutatui.engine.sites import Site
from mutatui.exact.screener import Screener
from mutatui.screening.choice import load_questions

PROMPT = "The life cycle of Drosophila:"
TILE = 64
STAGES = {
    "teacher forcing": ("run_from", "judge"),
    "onward decoding": ("decode_onward",),
    "naive checks": ("_settle",),
}
"""Text-probe stage -> the engine functions whose cumulative time it is."""


def tiles(catalog: MatrixCatalog, layer: int, matrix: str, count: int) -> list[Mutation]:
    info = next(i for i in catalog if (i.layer, i.name) == (layer, matrix))
    height, width = min(TILE, info.rows), min(TILE, info.cols)
    return [
        make_mutation(Site(layer, matrix, row, row + height, col, col + width), kind, catalog)
        for row in range(0, info.rows - height + 1, height)
        for col in range(0, info.cols - width + 1, width)
        for kind in ("max", "min")
    ][:count]


def stage_seconds(profile: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds per stage, summed over the stage's functions."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {
        stage: sum(row[3] for (_, _, name), row in stats.items() if name in names)
        for stage, names in STAGES.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--matrix", default="gate")
    parser.add_argument("--count", type=int, default=128)
    parser.add_argument("--model", default="smollm2", help="any model mutatui loads")
    args = parser.parse_args()
    lm = load_model(args.model)
    catalog = MatrixCatalog(lm.model)
    screener = Screener(lm, catalog, Decoding(max_new_tokens=48))
    questions = load_questions(None)
    prompt = encode_prompt(lm, PROMPT)
    baseline = screener.baseline(prompt)
    mutations = tiles(catalog, args.layer, args.matrix, args.count)
    # One mutation first through each path: the probe's and the questions' traces, allocations.
    screener.screen_text(prompt, baseline, mutations[:1])
    screener.screen_choice(questions, mutations[:1])

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    outcomes = screener.screen_text(prompt, baseline, mutations)
    profile.disable()
    text = time.perf_counter() - started
    changed = [m for m, o in zip(mutations, outcomes, strict=True) if o.diverge_at is not None]
    started = time.perf_counter()
    screener.screen_choice(questions, changed)
    choice = time.perf_counter() - started

    count = len(mutations)
    settled = sum(o.settled_naively for o in outcomes)
    print(
        f"L{args.layer}.{args.matrix}: {count} tile mutations, {len(changed)} changed the text, "
        f"{settled} checked naively at a near tie; batch {screener.batch_size}"
    )
    print(f"text probe   {text / count:.3f} s per mutation")
    for stage, seconds in stage_seconds(profile).items():
        print(f"  {stage:<16}{seconds / count:.3f} s per mutation")
    print(f"choice assay {choice / max(len(changed), 1):.3f} s per changed mutation")


if __name__ == "__main__":
    main()
