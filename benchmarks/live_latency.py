"""Live mode on SmolLM2-135M-Instruct: time to the first mutant token, and streaming speed.

Measurements, each printed with its goal:

1. Key to first mutant token on screen: drives the real app (`LiveApp` around a `LiveScreen`,
   headless under Textual's Pilot, the model already loaded), presses the run key and reads the
   screen's own stamp, taken after the repaint that shows the first mutant token. Goal <= 0.5 s.
2. Streaming speed: `LiveSession.run` (baseline and mutant in one batched pass per step) against
   plain `model.generate` (the baseline alone) on the same prompt and token count, interleaved
   run by run so that load from other processes hits both alike. Tokens/s of the pair's mutant
   row over tokens/s of generate; goal >= 80%. Both include the prompt's prefill.

Wall-clock figures depend on what else the machine runs. So the script also prints the CPU time
(this process, all threads) per token of both, whose ratio does not depend on the load, and the
CPU time of the session's first step (prefill of both rows and the first token) divided by the
torch threads: about what the first token costs on an idle machine.

    .venv/bin/python benchmarks/live_latency.py [--tokens 48] [--repeats 5] [--threads N]
        [--model smollm2] [--sites "L10.down[100,200];L3.q[0:64,0:64]"]
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


class Timed:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Timed:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def generate_run(session: LiveSession, prompt: list[int], tokens: int) -> tuple[Timed, int]:
    """Plain greedy model.generate, forced to `tokens` new tokens."""
    model = session.lm.model
    input_ids = torch.tensor([prompt])
    with torch.inference_mode(), Timed() as timed:
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=0,
        )
    return timed, output.shape[1] - input_ids.shape[1]


def live_run(session: LiveSession, site: str, tokens: int) -> tuple[Timed, int, float]:
    """The live pair (the mutant's row; the baseline's comes in the same pass), and the CPU
    seconds spent until the first token was delivered."""
    mutation = make_mutation(site, "max", session.catalog)
    request = LiveRequest(PROMPT, mutation, Decoding(max_new_tokens=tokens))
    first_cpu: list[float] = []
    started = time.process_time()

    def on_update(_update) -> None:
        if not first_cpu:
            first_cpu.append(time.process_time() - started)

    with Timed() as timed:
        result = session.run(request, on_update)
    return timed, result.steps, first_cpu[0]


async def first_token_latencies(
    session: LiveSession, tokens: int, sites: tuple[str, ...]
) -> list[float]:
    screen = LiveScreen(session, decoding=Decoding(max_new_tokens=tokens))
    app = LiveApp(screen)
    latencies = []
    async with app.run_test(size=(120, 36)) as pilot:
        while not screen.query("#live-site"):  # the app pushes the screen on its own mount
            await pilot.pause(0.05)
        for site in sites:
            screen.query_one("#live-site").value = site
            await pilot.press("x")
            while screen.first_token_latency is None:
                await asyncio.sleep(0.005)
            latencies.append(screen.first_token_latency)
            # the rest of the run is not timed: cancel it and wait until it has stopped
            for worker in app.workers.cancel_group(screen, "live-run"):
                while not worker.is_finished:
                    await asyncio.sleep(0.01)
            await pilot.pause()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: torch's choice; 1 is far faster when other processes "
        "load the CPU, as threads that wait for each other are then descheduled)",
    )
    parser.add_argument("--model", default="smollm2", help="any model mutatui loads")
    parser.add_argument(
        "--sites", default=";".join(SITES), help="sites to mutate, separated by ';'"
    )
    args = parser.parse_args()
    sites = tuple(args.sites.split(";"))
    if args.threads:
        torch.set_num_threads(args.threads)
    session = LiveSession(load_model(args.model))
    prompt = encode_prompt(session.lm, PROMPT)
    threads = torch.get_num_threads()
    print(
        f"{args.model}, {threads} torch threads, prompt {len(prompt)} tokens, "
        f"load {os.getloadavg()}"
    )
    generate_run(session, prompt, 8)  # warm-up
    live_run(session, sites[0], 8)

    latencies = asyncio.run(first_token_latencies(session, args.tokens, sites))
    print(
        "key -> first mutant token on screen (real app, Pilot): "
        + ", ".join(f"{value:.3f}" for value in latencies)
        + f" s; median {statistics.median(latencies):.3f} s (goal <= 0.5 s)"
    )

    plain_wall, plain_cpu, live_wall, live_cpu, first_cpu = [], [], [], [], []
    for repeat in range(args.repeats):
        timed, produced = generate_run(session, prompt, args.tokens)
        plain_wall.append(produced / timed.wall)
        plain_cpu.append(timed.cpu / produced)
        timed, steps, first = live_run(session, sites[repeat % len(sites)], args.tokens)
        live_wall.append(steps / timed.wall)
        live_cpu.append(timed.cpu / steps)
        first_cpu.append(first)
        print(
            f"  run {repeat}: generate {plain_wall[-1]:.1f} tok/s ({produced} tokens, "
            f"{plain_cpu[-1] * 1000:.0f} ms CPU/token); live pair {live_wall[-1]:.1f} tok/s "
            f"({steps} steps, {live_cpu[-1] * 1000:.0f} ms CPU/token)"
        )
    wall = statistics.median(live_wall) / statistics.median(plain_wall)
    cpu = statistics.median(plain_cpu) / statistics.median(live_cpu)
    print(
        f"streaming, wall clock: generate {statistics.median(plain_wall):.1f} tok/s, live pair "
        f"{statistics.median(live_wall):.1f} tok/s = {100 * wall:.0f}% (goal >= 80%)"
    )
    print(f"streaming, by CPU time per token: live pair at {100 * cpu:.0f}% of generate's speed")
    print(
        f"first step CPU time / {threads} threads (session): "
        f"{statistics.median(first_cpu) / threads:.3f} s median"
    )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
