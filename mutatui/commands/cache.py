"""`mutatui cache`: list mutatui's cached model folders, and clear them.

The dequantized copy of a GGUF file (SmolLM2's is about 520 MB) and SmolLM2 in other families'
configs are made on first use and kept in the cache folder (`MUTATUI_CACHE_DIR`, else the
user's cache directory); `clear` removes them, and the next use makes them again.
"""

from __future__ import annotations

import argparse
import time

from mutatui.engine.forms import byte_count, shown


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list the cached model folders (dequantized GGUF files, refamilied weights), "
        "or clear them",
        description="Without an action: list the cache. `clear KIND/NAME ...` removes those "
        "folders, `clear --all` every one; each is made again on its next use.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="list the cached folders (the default)")
    clear = actions.add_parser("clear", help="remove cached folders")
    clear.add_argument("keys", nargs="*", metavar="KIND/NAME", help="as `mutatui cache` lists")
    clear.add_argument("--all", action="store_true", help="remove every cached folder")
    parser.set_defaults(run=run, action="list")


def run(args: argparse.Namespace) -> int:
    from mutatui.engine.model_cache import (
        cached_models,
        pick_cached,
        remove_cached,
        smollm2_copies,
    )
    from mutatui.engine.models import cache_root
    from mutatui.errors import MutatuiError

    if args.action == "list":
        models = cached_models()
        current = smollm2_copies()
        print(f"cache folder: {shown(cache_root())}")
        for model in models:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(model.modified))
            note = (
                "  (partial: a copy left by a stopped process)"
                if model.partial
                else "  (smollm2 now)"
                if model.name.startswith(current)
                else ""
            )
            print(f"  {model.key}  {byte_count(model.size)}  {when}{note}")
        total = sum(model.size for model in models)
        print(f"{len(models)} cached, {byte_count(total)} in all" if models else "nothing cached")
        return 0
    if args.all == bool(args.keys):
        raise MutatuiError("cache clear: name the folders (KIND/NAME, as listed) or give --all")
    models = cached_models() if args.all else pick_cached(args.keys)
    freed = remove_cached(models)
    print(
        f"removed {len(models)} cached folder{'s' * (len(models) != 1)}, {byte_count(freed)} freed"
    )
    return 0
