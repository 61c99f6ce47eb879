"""`mutatui mutate`: one mutation, baseline and mutant side by side, divergence marked."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mutatui.commands.common import (
    add_decoding_arguments,
    add_model_arguments,
    decoding_from_args,
    load_from_args,
)
from mutatui.engine.forms import DROSOPHILA_PROMPT, KIND_FORMS
from mutatui.engine.sites import SITE_FORMS, check_site_syntax

if TYPE_CHECKING:
    from mutatui.engine.models import LoadedModel


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("mutate", help="mutate one site and compare with the baseline")
    add_model_arguments(parser)
    parser.add_argument(
        "--prompt",
        action="append",
        help=f"a prompt (repeatable; default: the paper's probe {DROSOPHILA_PROMPT!r})",
    )
    parser.add_argument("--site", required=True, help=SITE_FORMS)
    parser.add_argument("--kind", default="max", help=KIND_FORMS)
    add_decoding_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(run=run)


def _marked(lm: LoadedModel, tokens: list[int], diverge_at: int | None, style: str) -> Text:
    """The continuation with everything from the first diverging token on highlighted."""
    from mutatui.engine.decoding import decode_tokens

    if diverge_at is None:
        return Text(decode_tokens(lm, tokens))
    text = Text(decode_tokens(lm, tokens[:diverge_at]))
    text.append("▶", style="bold")
    text.append(decode_tokens(lm, tokens[diverge_at:]) or "⟨end⟩", style=style)
    return text


def run(args: argparse.Namespace) -> int:
    check_site_syntax(args.site)
    if args.prompt is None:
        args.prompt = [DROSOPHILA_PROMPT]
        print(f"mutatui: no --prompt: the paper's probe {DROSOPHILA_PROMPT!r}", file=sys.stderr)
    from mutatui.engine.compare import first_divergence
    from mutatui.engine.decoding import decode_tokens, encode_prompt, generate_exact
    from mutatui.engine.matrices import MatrixCatalog
    from mutatui.engine.mutations import make_mutation, parse_kind

    parse_kind(args.kind)
    decoding = decoding_from_args(args)
    lm = load_from_args(args, quiet=args.json)
    catalog = MatrixCatalog(lm.model)
    mutation = make_mutation(args.site, args.kind, catalog)
    info = catalog.get(mutation.site.layer, mutation.site.matrix)
    records = []
    for prompt in args.prompt:
        ids = encode_prompt(lm, prompt, chat=not args.no_chat)
        baseline, mutant = generate_exact(lm, catalog, ids, [None, mutation], decoding)
        records.append((prompt, baseline, mutant, first_divergence(baseline.tokens, mutant.tokens)))
    if args.json:
        for prompt, baseline, mutant, diverge_at in records:
            print(
                json.dumps(
                    {
                        "site": str(mutation.site),
                        "kind": mutation.kind_text,
                        "value": mutation.target(info),
                        "prompt": prompt,
                        "decoding": decoding.describe(),
                        "baseline": decode_tokens(lm, baseline.tokens),
                        "mutant": decode_tokens(lm, mutant.tokens),
                        "baseline_tokens": baseline.tokens,
                        "mutant_tokens": mutant.tokens,
                        "changed": diverge_at is not None,
                        "diverge_at": diverge_at,
                        "nonfinite": mutant.nonfinite,
                        "settled_naively": mutant.settled_naively,
                    }
                )
            )
        return 0
    console = Console()
    for prompt, baseline, mutant, diverge_at in records:
        verdict = (
            "silent (same output)" if diverge_at is None else f"diverges at token {diverge_at}"
        )
        table = Table(
            title=f"{mutation.site} := {mutation.kind_text} ({mutation.target(info):.5g}) · {verdict}",
            caption=f"prompt: {prompt}",
            expand=True,
            show_lines=True,
        )
        table.add_column("baseline", ratio=1)
        table.add_column("mutant", ratio=1)
        table.add_row(
            _marked(lm, baseline.tokens, diverge_at, "reverse green"),
            _marked(lm, mutant.tokens, diverge_at, "reverse red"),
        )
        console.print(table)
    return 0
