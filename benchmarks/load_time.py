"""First and second load of smollm2: dequantizing the GGUF, then reading the safetensors cache.

Each load runs in a fresh process with an empty cache directory shared by both, so the first
load pays for dequantization and the second reads the cache.

    .venv/bin/python benchmarks/load_time.py [--model smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, time
started = time.perf_counter()
from mutatui.engine.models import load_model
imported = time.perf_counter()
lm = load_model(sys.argv[1])
print(json.dumps({"import": imported - started, "load": lm.load_seconds}))
"""


def timed_load(cache: str, model: str) -> dict[str, float]:
    env = {**os.environ, "MUTATUI_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", CHILD, model], env=env, capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    figures["process"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="smollm2", help="smollm2 (default), a .gguf file or a model folder"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        for label in ("first load (dequantize + cache)", "second load (from cache)"):
            figures = timed_load(cache, args.model)
            print(
                f"{label}: load_model {figures['load']:.1f} s, "
                f"whole process {figures['process']:.1f} s (imports {figures['import']:.1f} s)"
            )


if __name__ == "__main__":
    main()
