"""The prepared GPU check: every figure the docs want from a GPU, in one report file.

    .venv/bin/python benchmarks/gpu_check.py [--out gpu_check.md] [--budget 450]

Runs, each as the committed command a user would type, with its output in the report:
1. `mutatui doctor` on SmolLM2 in float32, bfloat16, and bfloat16 in float32 arithmetic;
2. benchmarks/screen_throughput.py in float32 and in bfloat16 (float32 arithmetic, then native);
3. benchmarks/big_llama.py: a random-weight Llama of 7B shape built from a config (nothing
   downloaded), for memory and speed;
4. benchmarks/live_latency.py: live mode's first token and streaming speed.
Steps are cut short to stay inside `--budget` seconds in all (a step not started says so), so
the whole fits 8 minutes of a GPU with the machine's start. Nothing needs the network.
`--quick` shrinks every step (a dry run of the script itself, on a CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def steps(quick: bool, model: str = "smollm2") -> list[tuple[str, list[str], int]]:
    """(title, command, seconds it may take) of every step, in order, on `model` (SmolLM2; a
    tiny model for a dry run of the steps themselves)."""
    mutatui = [PYTHON, "-m", "mutatui"]
    small = ["--elements", "4", "--tiles", "1", "--max-new-tokens", "8"] if quick else []
    throughput = (
        ["--elements", "16", "--tiles", "4", "--naive", "2", "--max-new-tokens", "8"]
        if quick
        else ["--elements", "256", "--tiles", "64", "--naive", "16"]
    )
    native = throughput if quick else ["--elements", "32", "--tiles", "8", "--naive", "8"]
    big = (
        [
            "--layers",
            "2",
            "--hidden",
            "256",
            "--intermediate",
            "512",
            "--heads",
            "4",
            "--elements",
            "8",
            "--naive",
            "2",
            "--max-new-tokens",
            "8",
        ]
        if quick
        else []
    )
    live = ["--repeats", "1", "--tokens", "8"] if quick else ["--repeats", "3"]
    live += ["--model", model] + (
        ["--sites", "L0.down[1,2];L1.q[0,0]"] if model != "smollm2" else []
    )
    bench = [PYTHON, str(HERE / "screen_throughput.py"), "--model", model]
    return [
        (
            "doctor, SmolLM2, float32",
            [*mutatui, "doctor", "--model", model, "--dtype", "float32", *small],
            60,
        ),
        (
            "doctor, SmolLM2, bfloat16",
            [*mutatui, "doctor", "--model", model, "--dtype", "bfloat16", *small],
            60,
        ),
        (
            "doctor, SmolLM2, bfloat16 weights in float32 arithmetic",
            [
                *mutatui,
                "doctor",
                "--model",
                model,
                "--dtype",
                "bfloat16",
                "--arithmetic",
                "float32",
                *small,
            ],
            60,
        ),
        ("throughput, SmolLM2, float32", [*bench, "--dtype", "float32", *throughput], 60),
        (
            "throughput, SmolLM2, bfloat16 weights in float32 arithmetic",
            [*bench, "--dtype", "bfloat16", "--arithmetic", "float32", *throughput],
            60,
        ),
        ("throughput, SmolLM2, bfloat16 native", [*bench, "--dtype", "bfloat16", *native], 45),
        (
            "random Llama of 7B shape, bfloat16",
            [PYTHON, str(HERE / "big_llama.py"), "--dtype", "bfloat16", *big],
            120,
        ),
        ("live mode latency, SmolLM2", [PYTHON, str(HERE / "live_latency.py"), *live], 60),
    ]


def machine() -> str:
    """The machine as a screen records it (`engine.machine`): the GPU and its compute
    capability, or the processor, with the libraries' versions; and the host processor."""
    try:
        import torch

        from mutatui.engine.machine import this_machine

        device = "cuda" if torch.cuda.is_available() else "cpu"
        gpu = this_machine(device).describe()
        host = this_machine("cpu")
        return f"{platform.node()}: {gpu}; host {host.processor}, {host.isa}"
    except Exception as error:  # the report says what it could not read
        return f"{platform.node()}, {platform.machine()}: torch unavailable ({error})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", ".") + "/gpu_check.md")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all steps")
    parser.add_argument("--quick", action="store_true", help="tiny steps (a dry run)")
    parser.add_argument("--model", default="smollm2", help="SmolLM2, or a model for a dry run")
    args = parser.parse_args()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    report = Path(args.out)
    report.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with report.open("w") as out:
        out.write(f"# mutatui GPU check, {datetime.now():%Y-%m-%d %H:%M}\n\n{machine()}\n\n")
        for title, command, allowed in steps(args.quick, args.model):
            left = args.budget - (time.monotonic() - began)
            shown = " ".join(Path(part).name if part == PYTHON else part for part in command)
            out.write(f"## {title}\n\n`{shown}`\n\n")
            if left < 15:
                out.write("not started: the budget is spent\n\n")
                continue
            started = time.monotonic()
            try:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    timeout=min(allowed * (0.2 if args.quick else 1) + 60, left),
                    env=environment,
                )
                text = done.stdout + "".join(
                    line + "\n"
                    for line in done.stderr.splitlines()
                    if "Warning" not in line and "warn(" not in line
                )
                status = f"exit {done.returncode}"
            except subprocess.TimeoutExpired as expired:
                text = (expired.stdout or b"").decode(errors="replace")
                status = "cut short (budget)"
            took = time.monotonic() - started
            out.write(f"```\n{text.strip()}\n```\n\n{status}, {took:.0f} s\n\n")
            out.flush()
            print(f"{title}: {status}, {took:.0f} s", flush=True)
    print(f"report: {report}")


if __name__ == "__main__":
    main()
