"""Screen throughput: the fast engine against the naive loop (edit, model.generate, restore).

Runs the same mutations through both, in one run, checks that every output is equal, and prints
mutations/s of each and the ratio, for random element sites and for 64x64 tiles (max and min
alternating), with the share of mutants settled on the naive path.

    .venv/bin/python benchmarks/screen_throughput.py [--model smollm2] [--as mistral]
        [--dtype float32] [--arithmetic auto] [--device cpu] [--elements 256] [--tiles 64]
        [--naive 24] [--effects both|on|off]

`--model` is any model mutatui loads (default SmolLM2-135M-Instruct); `--as mistral` or
`--as qwen2` runs SmolLM2's weights through that family's code (the same function,
`engine.refamily`). Both paths run in the same dtype and arithmetic on the same device;
`--arithmetic auto` (the default) chooses it as a screen does: where native half precision
would run near the naive loop's speed on this machine (the lockstep decoder cannot run or does
not hold), both run in float32 arithmetic, and the native naive loop's rate on a few mutations
is printed for reference. The
engine first measures its near-tie tolerance, as a screen does at its start (not timed).

The naive loop is timed on a subset (`--naive` mutations per design, the first ones of the same
list); its outputs are compared with the fast engine's for that subset. Both paths first run
one mutation outside the measured set (first-call allocations; the engine's per-probe trace).

`--effects both` (the default) times the engine twice on the same mutations, without and with
effect sizes (`exact.effects`: the full head over the baseline's continuation for every
mutant), against the one naive timing, so both ratios come from one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import load_model
from mutatui.engine.mutations import Mutation, make_mutation
from mutatui.engine.refamily import SAME_FUNCTION, smollm2_as
from mutatui.engine.sites import Site
from mutatui.exact.screener import Screener
from mutatui.exact.selfcheck import element_mutations, tile_mutations
from mutatui.exact.tolerance import spread
from mutatui.screening.prepare import Assays, slow_native_reason

PROMPT = "The life cycle of Drosophila:"


def timed(
    screener: Screener, prompt: list[int], baseline, mutations: list[Mutation], effects: bool
) -> tuple[list, float]:
    screener.effects = effects
    started = time.perf_counter()
    outcomes = screener.screen_text(prompt, baseline, mutations)
    return outcomes, time.perf_counter() - started


def native_is_slow(screener: Screener, prompt: list[int], sample: list[Mutation]) -> str | None:
    """Why a screen would leave native half precision here (`prepare.slow_native_reason`)."""
    baseline = screener.baseline(prompt)
    assays = Assays([prompt], [baseline], [""], None, None)
    return slow_native_reason(screener, assays, sample)


def naive_rate(screener: Screener, prompt: list[int], mutations: list[Mutation]) -> float:
    started = time.perf_counter()
    for mutation in mutations:
        naive_generate(screener.lm, screener.catalog, prompt, mutation, screener.decoding)
    return len(mutations) / (time.perf_counter() - started)


def compare(
    name: str,
    screener: Screener,
    prompt: list[int],
    mutations: list[Mutation],
    naive: int,
    effects: tuple[bool, ...],
    native_rate: float | None = None,
) -> None:
    lm, catalog, decoding = screener.lm, screener.catalog, screener.decoding
    baseline = screener.baseline(prompt)
    # One mutation outside the measured set through each path first: first-call allocations,
    # and the fast engine's trace of the probe, which a screen makes once per probe.
    warmup = make_mutation(Site.element(0, catalog.names[-1], 0, 0), "0", catalog)
    started = time.perf_counter()
    tolerance = screener.calibrate(prompt, baseline, spread(mutations))
    print(
        f"{name}: calibrated in {time.perf_counter() - started:.1f} s (a screen's start, not "
        f"timed below): {tolerance.describe(lm.compute_dtype)}; baseline near ties "
        f"{screener.baseline_near_ties(prompt, baseline)} of {len(baseline.tokens) + 1}"
    )
    screener.screen_text(prompt, baseline, [warmup])
    naive_generate(lm, catalog, prompt, warmup, decoding)
    runs = {on: timed(screener, prompt, baseline, mutations, on) for on in effects}
    subset = mutations[:naive]
    started = time.perf_counter()
    references = [naive_generate(lm, catalog, prompt, m, decoding) for m in subset]
    naive_seconds = time.perf_counter() - started
    naive_rate = len(subset) / naive_seconds
    for on, (outcomes, fast_seconds) in runs.items():
        mismatches = sum(
            (ref.tokens, ref.stopped) != (out.tokens, out.stopped)
            for ref, out in zip(references, outcomes, strict=False)
        )
        fast_rate = len(mutations) / fast_seconds
        changed = sum(out.diverge_at is not None for out in outcomes)
        settled = sum(out.settled_naively for out in outcomes)
        print(
            f"{name}, effect sizes {'on' if on else 'off'}: fast {len(mutations)} mutations in "
            f"{fast_seconds:.1f} s = {fast_rate:.2f}/s ({changed} changed, {settled} settled "
            f"naively: {100 * settled / len(outcomes):.0f}%); naive {len(subset)} in "
            f"{naive_seconds:.1f} s = {naive_rate:.3f}/s; ratio {fast_rate / naive_rate:.1f}x; "
            f"outputs equal on {len(subset) - mismatches}/{len(subset)}"
            + (f"; lockstep decoder: {screener.lockstep}" if screener.lockstep else "")
            + (
                f"; {fast_rate / native_rate:.1f}x the native naive loop ({native_rate:.3f}/s)"
                if native_rate
                else ""
            )
        )
        if mismatches:
            raise SystemExit(f"{name}: {mismatches} outputs differ from the naive path")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=256)
    parser.add_argument("--tiles", type=int, default=64)
    parser.add_argument("--naive", type=int, default=24, help="mutations timed on the naive loop")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the engine's for the model"
    )
    parser.add_argument("--decoding", choices=("greedy", "sample"), default="greedy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="smollm2", help="any model mutatui loads")
    parser.add_argument(
        "--as",
        dest="family",
        choices=sorted(SAME_FUNCTION),
        help="SmolLM2's weights through this family's code (the same function)",
    )
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N]")
    parser.add_argument(
        "--arithmetic",
        default="auto",
        choices=("auto", "native", "float32"),
        help="auto (default): as a screen chooses, native unless native half precision would "
        "run near the naive loop's speed here",
    )
    parser.add_argument(
        "--effects",
        default="both",
        choices=("both", "on", "off"),
        help="time the engine with effect sizes, without, or both (default)",
    )
    args = parser.parse_args()
    effects = {"both": (False, True), "on": (True,), "off": (False,)}[args.effects]
    model = str(smollm2_as(args.family)) if args.family else args.model
    pinned = None if args.arithmetic == "auto" else args.arithmetic
    lm = load_model(model, dtype=args.dtype, device=args.device, arithmetic=pinned)
    catalog = MatrixCatalog(lm.model)
    decoding = Decoding(mode=args.decoding, max_new_tokens=args.max_new_tokens, seed=args.seed)
    screener = Screener(lm, catalog, decoding, batch_size=args.batch_size)
    prompt = encode_prompt(lm, PROMPT)
    native_rate = None
    if pinned is None:
        reason = native_is_slow(screener, prompt, element_mutations(catalog, 12, args.seed))
        if reason is not None:
            subset = element_mutations(catalog, max(args.naive // 4, 2), args.seed + 1)
            native_rate = naive_rate(screener, prompt, subset)
            print(
                f"native {lm.describe()} would run near the naive loop's speed here ({reason}): "
                "as a screen does, the same weights compute in float32 arithmetic below; the "
                f"native naive loop ran {native_rate:.3f} mutations/s here",
                flush=True,
            )
            lm.compute_in_float32()
            catalog = MatrixCatalog(lm.model)
            screener = Screener(lm, catalog, decoding, batch_size=args.batch_size)
    name = f"smollm2 as {args.family}" if args.family else args.model
    print(
        f"{name} ({type(lm.model).__name__}, {lm.describe()}), {screener.path}; prompt {PROMPT!r} ({len(prompt)} tokens), "
        f"{decoding.describe()}, max_new_tokens {decoding.max_new_tokens}, batch "
        f"{screener.batch_size}; {platform.machine()}, {os.cpu_count()} cores, {date.today()}"
    )
    if args.elements:
        compare(
            "random elements",
            screener,
            prompt,
            element_mutations(catalog, args.elements, args.seed),
            args.naive,
            effects,
            native_rate,
        )
    if args.tiles:
        compare(
            "64x64 tiles",
            screener,
            prompt,
            tile_mutations(catalog, args.tiles, args.seed),
            args.naive,
            effects,
            native_rate,
        )


if __name__ == "__main__":
    main()
