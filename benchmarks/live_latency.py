"""Live mode on SmolLM2-135M-Instruct: time to the first mutant token, and streaming speed.

Two measurements, both printed with their goals:

1. Key to first mutant token on screen: drives the real app (`LiveApp` around a `LiveScreen`,
   headless under Textual's Pilot, the model already loaded), presses the run key and reads the
   screen's own stamp, taken after the repaint that shows the first mutant token. Goal <= 0.5 s.
2. Streaming speed: `LiveSession.run` (baseline and mutant in one batched pass per step) against
   plain `model.generate` (the baseline alone) on the same prompt and token count, interleaved
   run by run so that load from other processes hits both alike. Tokens/s of the pair's mutant
   row over tokens/s of generate; goal >= 80%. Both include the prompt's prefill.

    .venv/bin/python benchmarks/live_latency.py [--tokens 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from mutatui.engine.decoding import Decoding, encode_prompt
from mutatui.engine.models import load_model
from mutatui.engine.mutations import make_mutation
from mutatui.live.session import LiveRequest, LiveSession
from mutatui.tui.screens.live import LiveApp, LiveScreen

PROMPT = "The life cycle of Drosophila:"
SITES = ("L10.down[100,200]", "L3.q[0:64,0:64]", "L20.gate[5,17]", "L1.v[7,300]", "L28.up[40,41]")


def generate_rate(session: LiveSession, prompt: list[int], tokens: int) -> tuple[float, int]:
    """Tokens/s of plain greedy model.generate, forced to `tokens` new tokens."""
    model = session.lm.model
    input_ids = torch.tensor([prompt])
    with torch.inference_mode():
        started = time.perf_counter()
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=0,
        )
        seconds = time.perf_counter() - started
    produced = output.shape[1] - input_ids.shape[1]
    return produced / seconds, produced


def live_rate(session: LiveSession, site: str, tokens: int) -> tuple[float, int]:
    """Tokens/s of the live pair (the mutant's row; the baseline's comes in the same pass)."""
    mutation = make_mutation(site, "max", session.catalog)
    request = LiveRequest(PROMPT, mutation, Decoding(max_new_tokens=tokens))
    result = session.run(request, lambda _update: None)
    return result.tokens_per_second or 0.0, result.steps


async def first_token_latencies(session: LiveSession, tokens: int) -> list[float]:
    screen = LiveScreen(session, decoding=Decoding(max_new_tokens=tokens))
    app = LiveApp(screen)
    latencies = []
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        for site in SITES:
            screen.query_one("#live-site").value = site
            await pilot.press("x")
            while screen.first_token_latency is None:
                await asyncio.sleep(0.005)
            latencies.append(screen.first_token_latency)
            await pilot.press("escape")
            await app.workers.wait_for_complete()
            await pilot.pause()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    session = LiveSession(load_model("smollm2"))
    prompt = encode_prompt(session.lm, PROMPT)
    print(f"smollm2 on {torch.get_num_threads()} torch threads; prompt {len(prompt)} tokens")
    generate_rate(session, prompt, 8)  # warm-up
    live_rate(session, SITES[0], 8)

    latencies = asyncio.run(first_token_latencies(session, args.tokens))
    print(
        "key -> first mutant token on screen (real app, Pilot): "
        + ", ".join(f"{value:.3f}" for value in latencies)
        + f" s; median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s"
        + " (goal <= 0.5 s)"
    )

    generate_rates, live_rates = [], []
    for repeat in range(args.repeats):
        rate, produced = generate_rate(session, prompt, args.tokens)
        generate_rates.append(rate)
        rate, steps = live_rate(session, SITES[repeat % len(SITES)], args.tokens)
        live_rates.append(rate)
        print(
            f"  run {repeat}: generate {generate_rates[-1]:.1f} tok/s ({produced} tokens), live pair {rate:.1f} tok/s ({steps} steps)"
        )
    plain, live = statistics.median(generate_rates), statistics.median(live_rates)
    print(
        f"streaming: model.generate {plain:.1f} tok/s, live pair {live:.1f} tok/s: "
        f"{100 * live / plain:.0f}% (goal >= 80%)"
    )


if __name__ == "__main__":
    main()
