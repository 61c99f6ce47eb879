"""How well does the first-order prediction rank every screened element? Against measured effects.

`mutatui predict` estimates the change of a probe's baseline log-likelihood when an element w is
set to t as `dL/dw * (t - w)`: exactly the first-order term of the NLL change that a screen with
effect sizes measures (`effects.delta_nll`, the mean over the continuation's steps, so the
estimate is divided by the steps and its sign turned). This script recomputes the estimate for
every element mutation of the chosen screens (one backward pass per text probe, on the screen's
own model and probes) and sets it against the measured change, over every screened element,
changed or not:

- the Spearman rank correlation of the estimate with the measured NLL change, and of their
  magnitudes (the score `predict` ranks by) with the measured KL;
- precision and recall of the top K% by predicted score against the top K% by measured KL, and
  against the mutations that changed the output (any change, and robust changes), with random
  sampling's expectation beside them.

    .venv/bin/python benchmarks/prediction_recall.py screens.db --screen elements-random \\
        [--screen elements-lines] [--top 1,5,10]

Prints Markdown tables for docs/guide/guided.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import duckdb
import numpy as np
import torch
from scipy.stats import spearmanr

from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.guided.predict import (
    baseline_probe,
    continuation_log_likelihood,
    matrix_gradient,
    weight_gradients,
)
from mutatui.screening.spec import spec_from_json
from mutatui.store.effects import ROBUST_MARGIN


def measured(db: str, screen: str) -> tuple[dict, list]:
    """The screen's spec, and per (mutation, text probe): site, value, measured effects."""
    with duckdb.connect(db, read_only=True) as connection:
        (screen_id, spec) = connection.execute(
            "SELECT screen_id, spec FROM screens WHERE name = ?", [screen]
        ).fetchone()
        rows = connection.execute(
            "SELECT m.layer, m.matrix, m.row0, m.col0, m.value, e.probe_id, e.delta_nll, "
            "e.kl_all, r.changed, coalesce(e.diverge_margin, 0) >= ? AS robust "
            "FROM effects e JOIN mutations m USING (screen_id, mutation_id) "
            "JOIN results r USING (screen_id, mutation_id, probe_id) "
            "WHERE e.screen_id = ? AND m.row1 = m.row0 + 1 AND m.col1 = m.col0 + 1",
            [ROBUST_MARGIN, screen_id],
        ).fetchall()
    return spec_from_json(spec), rows


def estimates(lm, catalog, spec, rows) -> np.ndarray:
    """The first-order NLL change of each row's mutation on its probe (mean per step)."""
    decoding = spec.decoding
    result = np.full(len(rows), np.nan)
    by_probe: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_probe.setdefault(row[5], []).append(index)
    for probe_id, indices in by_probe.items():
        probe = baseline_probe(lm, catalog, spec.probes[probe_id].prompt, decoding, chat=spec.chat)
        steps = len(probe.continuation)
        with weight_gradients(catalog), torch.enable_grad():
            continuation_log_likelihood(lm, probe).backward()
            with torch.no_grad():
                gradients = {
                    (info.layer, info.name): matrix_gradient(catalog, info).float()
                    for info in catalog
                }
                weights = {key: catalog.weight(*key).float() for key in gradients}
                for index in indices:
                    layer, matrix, row, col, value = rows[index][:5]
                    g = gradients[(layer, matrix)][row, col]
                    w = weights[(layer, matrix)][row, col]
                    result[index] = float(-g * (value - w)) / steps
    return result


def top(values: np.ndarray, share: float) -> np.ndarray:
    count = max(1, round(share * len(values)))
    chosen = np.zeros(len(values), dtype=bool)
    chosen[np.argsort(-values, kind="stable")[:count]] = True
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--screen", action="append", required=True)
    parser.add_argument("--top", default="1,5,10", help="top shares in percent")
    args = parser.parse_args()
    shares = [float(value) / 100 for value in args.top.split(",")]
    started = time.perf_counter()
    all_rows, all_estimates, model = [], [], None
    for screen in args.screen:
        spec, rows = measured(args.db, screen)
        if model != spec.model:
            lm = load_model(spec.model)
            catalog = MatrixCatalog(lm.model)
            model = spec.model
        all_rows += rows
        all_estimates.append(estimates(lm, catalog, spec, rows))
    estimate = np.concatenate(all_estimates)
    delta = np.array([row[6] for row in all_rows], dtype=float)
    kl = np.array([row[7] for row in all_rows], dtype=float)
    changed = np.array([row[8] for row in all_rows], dtype=bool)
    robust = np.array([row[9] for row in all_rows], dtype=bool) & changed
    finite = np.isfinite(delta) & np.isfinite(kl) & np.isfinite(estimate)
    estimate, delta, kl = estimate[finite], delta[finite], kl[finite]
    changed, robust = changed[finite], robust[finite]
    elements = len({(r[0], r[1], r[2], r[3], r[4]) for r in all_rows})
    print(
        f"{', '.join(args.screen)} in {args.db}: {len(estimate):,} (element mutation, probe) "
        f"pairs of {elements:,} element mutations, {int(changed.sum()):,} changed, "
        f"{int(robust.sum()):,} robustly; {platform.machine()}, {os.cpu_count()} cores, "
        f"{date.today()}, {time.perf_counter() - started:.0f} s\n"
    )
    signed = spearmanr(estimate, delta).statistic
    magnitude = spearmanr(np.abs(estimate), kl).statistic
    print("| rank correlation (Spearman) | value |\n|---|---|")
    print(f"| predicted NLL change vs measured NLL change | {signed:.3f} |")
    print(f"| predicted score (its magnitude) vs measured KL | {magnitude:.3f} |\n")
    score = np.abs(estimate)
    print(
        "| top K% by predicted score | precision, recall: top K% by KL | changed output | "
        "robust change | random: precision (changed, robust) |\n|---|---|---|---|---|"
    )
    for share in shares:
        predicted = top(score, share)
        cells = []
        for truth in (top(kl, share), changed, robust):
            hits = int((predicted & truth).sum())
            cells.append(f"{hits / predicted.sum():.1%}, {hits / max(int(truth.sum()), 1):.1%}")
        base = f"{changed.mean():.1%}, {robust.mean():.1%}"
        print(f"| {share:.0%} | {' | '.join(cells)} | {base} |")


if __name__ == "__main__":
    main()
