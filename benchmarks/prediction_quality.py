"""How good is the first-order prediction? Measured against real, exact screens in the same run.

On SmolLM2-135M-Instruct, for one probe:
1. `mutatui.guided.predict` scores every element and every 64x64 tile of every matrix (one
   backward pass).
2. Tiles: an exhaustive 64x64 tile screen (max and min) of the chosen matrices, through the
   screen engine (`mutatui.exact.screener.Screener`, exact), graded by `mutatui.screening.grading`
   (severe = severity 3). The top K% tiles by each predicted statistic are compared with what
   really changed: precision and recall, against random sampling of the same K (whose expected
   precision is the base rate and expected recall K/N).
3. Elements: the top-K predicted elements of each chosen matrix and K random elements of the
   same matrix (seeded), screened the same way: the hit rate of each (an exhaustive element
   screen of a whole matrix is out of reach here, so element recall is not measured).

    .venv/bin/python benchmarks/prediction_quality.py [--matrices L3.o,L15.gate,L27.down]

Prints Markdown tables for docs/guide/guided.md. Figures from a 2-core CPU shared with other work.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mutatui.engine.decoding import Decoding, decode_tokens
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.mutations import Kind, Mutation
from mutatui.engine.sites import Site
from mutatui.exact.screener import Screener
from mutatui.guided.predict import baseline_probe, predict
from mutatui.screening import grading

SEVERE = 3
TILE = 64
FRACTIONS = (0.05, 0.10, 0.25)
STATISTICS = ("tile_block", "tile_sum", "tile_max")


@dataclass
class Outcome:
    changed: bool
    severe: bool
    dissimilarity: float  # 1 - cosine to the baseline; 0 when unchanged


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Assay:
    """The screen engine, the probe's baseline and the grader, set up once."""

    lm: object
    screener: Screener
    prompt: list[int]
    baseline: object
    baseline_text: str
    embedder: grading.Embedder


def screen(assay: Assay, mutations: Sequence[Mutation]) -> list[Outcome]:
    """Exact outcomes of `mutations` on the probe, graded like a screen grades them."""
    lm, screener, prompt = assay.lm, assay.screener, assay.prompt
    baseline, baseline_text, embedder = assay.baseline, assay.baseline_text, assay.embedder
    outcomes = screener.screen_text(prompt, baseline, mutations)
    changed = [i for i, o in enumerate(outcomes) if o.diverge_at is not None]
    texts = {i: decode_tokens(lm, outcomes[i].tokens) for i in changed}
    cosines = dict(
        zip(changed, embedder.cosines(baseline_text, [texts[i] for i in changed]), strict=True)
    )
    graded = []
    for index, outcome in enumerate(outcomes):
        grade = grading.grade_text(
            baseline.tokens,
            baseline_text,
            outcome.tokens,
            texts.get(index, baseline_text),
            stopped=outcome.stopped,
            nonfinite=outcome.nonfinite,
            cosine=cosines.get(index),
        )
        cosine = 1.0 if grade.cosine is None else grade.cosine
        graded.append(Outcome(grade.changed, grade.severity >= SEVERE, 1.0 - cosine))
    return graded


def tile_sites(info) -> list[Site]:
    return [
        Site(info.layer, info.name, r, min(r + TILE, info.rows), c, min(c + TILE, info.cols))
        for r in range(0, info.rows, TILE)
        for c in range(0, info.cols, TILE)
    ]


def precision_recall(scores: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    order = np.argsort(-scores, kind="stable")[:k]
    hits = int(truth[order].sum())
    positives = int(truth.sum())
    return hits / k, (hits / positives if positives else float("nan"))


def tile_report(assay: Assay, maps: dict, chosen: list) -> None:
    """Exhaustive 64x64 tile screens of `chosen`, compared with the ranking of each statistic."""
    started = time.perf_counter()
    outcomes = {
        kind: screen(assay, [Mutation(s, Kind(kind)) for info in chosen for s in tile_sites(info)])
        for kind in ("max", "min")
    }
    labels = ", ".join(info.label for info in chosen)
    print(f"\n### Tiles (64x64, exhaustive over {labels}; {time.perf_counter() - started:.0f} s)\n")
    print("| kind | phenotype | tiles | base rate | K | random P / R | " + " | ".join(
        f"{s} P / R" for s in STATISTICS
    ) + " |")  # fmt: skip
    print("|---|---|---|---|---|---|" + "---|" * len(STATISTICS))
    for kind in ("max", "min"):
        scores = {
            statistic: np.concatenate(
                [getattr(maps[(i.layer, i.name, kind)], statistic).ravel() for i in chosen]
            )
            for statistic in STATISTICS
        }
        for label in ("changed", "severe"):
            truth = np.array([getattr(o, label) for o in outcomes[kind]])
            total, base = len(truth), float(truth.mean())
            for fraction in FRACTIONS:
                k = max(1, round(fraction * total))
                cells = [
                    "{:.2f} / {:.2f}".format(*precision_recall(scores[s], truth, k))
                    for s in STATISTICS
                ]
                print(
                    f"| {kind} | {label} | {total} | {base:.2f} | {k} | "
                    f"{base:.2f} / {k / total:.2f} | " + " | ".join(cells) + " |"
                )
    print("\nSpearman rank correlation of the predicted tile statistic with 1 - cosine:\n")
    print("| kind | " + " | ".join(STATISTICS) + " |")
    print("|---|" + "---|" * len(STATISTICS))
    for kind in ("max", "min"):
        truth = np.array([o.dissimilarity for o in outcomes[kind]])
        cells = []
        for statistic in STATISTICS:
            scores = [getattr(maps[(i.layer, i.name, kind)], statistic).ravel() for i in chosen]
            cells.append(f"{spearman(np.concatenate(scores), truth):.2f}")
        print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their mean rank (many outcomes tie at 0)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(average_ranks(a), average_ranks(b))[0, 1])


def matrices(catalog: MatrixCatalog, labels: str) -> list:
    """`L1.o,L11.down` -> their MatrixInfo."""
    found = []
    for label in labels.split(","):
        layer, name = label.strip()[1:].split(".", 1)
        found.append(catalog.get(int(layer), name))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--matrices", default="L1.o", help="exhaustive 64x64 tile screens ('' for none)"
    )
    parser.add_argument(
        "--element-matrices", default="L3.k,L11.down,L25.gate", help="top-K vs random K"
    )
    parser.add_argument("--prompt", default="The life cycle of Drosophila:")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--elements", type=int, default=20, help="K per matrix and kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="smollm2", help="any model mutatui loads")
    args = parser.parse_args()

    lm = load_model(args.model)
    catalog = MatrixCatalog(lm.model)
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    probe = baseline_probe(lm, catalog, args.prompt, decoding)

    started = time.perf_counter()
    maps = {
        (m.layer, m.matrix, m.kind): m
        for m in predict(lm, catalog, [probe], kinds=("max", "min"), top_k=args.elements)
    }
    predict_seconds = time.perf_counter() - started
    log(f"prediction of all {len(catalog)} matrices: {predict_seconds:.1f} s")

    screener = Screener(lm, catalog, decoding, batch_size=32)
    baseline = screener.baseline(list(probe.prompt_ids))
    assay = Assay(
        lm,
        screener,
        list(probe.prompt_ids),
        baseline,
        decode_tokens(lm, baseline.tokens),
        grading.Embedder(),
    )
    print(
        f"SmolLM2-135M-Instruct, probe {args.prompt!r} (chat template), greedy, "
        f"{args.max_new_tokens} new tokens. Prediction of all {len(catalog)} matrices: "
        f"{predict_seconds:.1f} s (2-core CPU shared with other work).",
        flush=True,
    )
    element_report(assay, catalog, maps, args)
    if args.matrices:
        tile_report(assay, maps, matrices(catalog, args.matrices))
    return 0


def element_report(assay: Assay, catalog: MatrixCatalog, maps, args) -> None:
    """Top-K predicted elements vs K random ones of the same matrix; rows print as they come."""
    rng = random.Random(args.seed)
    print("\n### Elements (top-K predicted vs K random, per matrix)\n")
    print("| matrix | kind | K | top-K changed | random changed | top-K severe | random severe |")
    print("|---|---|---|---|---|---|---|", flush=True)
    started = time.perf_counter()
    for info in matrices(catalog, args.element_matrices):
        for kind in ("max", "min"):
            item = maps[(info.layer, info.name, kind)]
            top = [Site.element(info.layer, info.name, r, c) for r, c, _s in item.top]
            drawn = set()
            while len(drawn) < len(top):
                drawn.add(Site.element(info.layer, info.name, rng.randrange(info.rows),
                                       rng.randrange(info.cols)))  # fmt: skip
            counts = {}
            for label, sites in (("top", top), ("random", sorted(drawn))):
                outcomes = screen(assay, [Mutation(s, Kind(kind)) for s in sites])
                counts[label] = (sum(o.changed for o in outcomes), sum(o.severe for o in outcomes))
            (top_changed, top_severe), (random_changed, random_severe) = (
                counts["top"],
                counts["random"],
            )
            print(
                f"| {info.label} | {kind} | {len(top)} | {top_changed} | {random_changed} | "
                f"{top_severe} | {random_severe} |",
                flush=True,
            )
    print(f"\nElement screens: {time.perf_counter() - started:.0f} s.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
