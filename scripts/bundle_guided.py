"""The bundled database's prediction and super-weight run, so that `p` and `S` in the explorer
lead somewhere on the data a newcomer opens.

    .venv/bin/python scripts/bundle_guided.py screens.db

Each is made once: a database that holds the prediction named below, or a super-weight run,
is left as it is. The commands are those of docs/guide/guided.md (sections "Predicted sensitivity" and "Super
weights"), on SmolLM2 with its greedy 48-token continuations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mutatui.cli import main as mutatui
from mutatui.store.guided import predictions, superweight_results

PREDICTION = "bundled"
PREDICT = [
    "predict", "--model", "smollm2", "--name", PREDICTION, "--quiet",
    "--prompt", "The life cycle of Drosophila:",
    "--prompt", "Explain why the sky is blue.",
    "--prompt", "Write a short email inviting a colleague to lunch on Friday.",
]  # fmt: skip
SUPERWEIGHTS = ["superweights", "--model", "smollm2", "--candidates", "4"]


def bundle(db: Path) -> int:
    if not any(info.name == PREDICTION for info in predictions(db)):
        status = mutatui([*PREDICT, "--db", str(db)])
        if status:
            return status
    if not superweight_results(db):
        return mutatui([*SUPERWEIGHTS, "--db", str(db)])
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", type=Path)
    sys.exit(bundle(parser.parse_args().db))
