"""Run by test_tui_published in a subprocess whose HF_HUB_CACHE holds a random model under
Llama-2-7b's hub id (huggingface_hub and transformers read the cache path when imported): open
the published screen, go to a tile, `x` to live mode, `x` to run it, and print as JSON what the
live screen showed and whether the run matched the naive path and left the weights as they were.

usage: python live_published_app.py DB SITE
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch
from test_tui_app import SIZE, settle

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.mutations import make_mutation
from mutatui.tui.app import ExplorerApp
from mutatui.tui.screens.live import LiveScreen


async def until(condition, pilot, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        await pilot.pause(0.05)


async def run(db: str, site: str) -> dict:
    app = ExplorerApp(Path(db))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        names = [summary.name for summary in app.screen.summaries]
        await pilot.press(*["down"] * names.index("hu2024-llama2-7b"), "enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        app.screen.go_to_site(app.screen.check_site(site))
        await settle(pilot)
        await pilot.press("x")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveScreen), type(live).__name__
        await until(lambda: live.session is not None, pilot)
        lm, catalog = live.session.lm, live.session.catalog
        saved = {name: t.detach().clone() for name, t in lm.model.state_dict().items()}
        kind = live.query_one("#live-kind").value
        prompt = live.query_one("#live-prompt").value
        tokens = int(live.query_one("#live-tokens").value)
        await pilot.press("x")
        await until(lambda: live.last_result is not None, pilot)
        result = live.last_result
        mutation = make_mutation(live.query_one("#live-site").value, kind, catalog)
        naive = naive_generate(
            lm, catalog, encode_prompt(lm, prompt), mutation, Decoding(max_new_tokens=tokens)
        )
        restored = all(torch.equal(t, saved[name]) for name, t in lm.model.state_dict().items())
        return {
            "model": live.model_spec,
            "site": live.query_one("#live-site").value,
            "kind": kind,
            "status": result.status.name,
            "matches_naive": result.mutant.tokens == naive.tokens,
            "restored": restored,
            "shape": [catalog.get(0, "down").rows, catalog.get(0, "down").cols],
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1], sys.argv[2]))))
