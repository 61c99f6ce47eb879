"""`mutatui superweights`: find super-weight candidates from activation spikes, verify each."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from mutatui.commands.common import (
    add_decoding_arguments,
    add_model_arguments,
    check_at_least,
    decoding_from_args,
    load_from_args,
    whole,
)
from mutatui.engine.decoding import decode_tokens, encode_prompt, naive_generate
from mutatui.engine.forms import DROSOPHILA_PROMPT
from mutatui.engine.matrices import MatrixCatalog
from mutatui.guided.superweights import (
    DEFAULT_PROBE_TEXT,
    encode_text,
    find_candidates,
    perplexity,
    verify,
)
from mutatui.store.database import check_writable
from mutatui.store.guided import SUPER_PERPLEXITY_RATIO, SuperweightResult, save_superweights

DEFAULT_PROMPT = DROSOPHILA_PROMPT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "superweights",
        help="find super weights (Yu et al. 2024) from down-projection spikes; verify by zeroing",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--probe-text", default=DEFAULT_PROBE_TEXT, help="text for activations and perplexity"
    )
    parser.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help="prompt whose continuation is compared"
    )
    parser.add_argument(
        "--candidates",
        type=whole("--candidates"),
        default=5,
        help="how many layers' spikes to verify (default 5)",
    )
    parser.add_argument("--matrix", help="the down projection's name, if not detected")
    parser.add_argument("--db", help="also store the results in this database")
    add_decoding_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per candidate")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_at_least(args.candidates, "--candidates")
    if args.db is not None:
        check_writable(args.db)
    lm = load_from_args(args, quiet=args.json)
    catalog = MatrixCatalog(lm.model)
    decoding = decoding_from_args(args)
    probe_ids = encode_text(lm, args.probe_text)
    prompt_ids = encode_prompt(lm, args.prompt, chat=not args.no_chat)
    from mutatui.screening.progress import Steps

    with Steps(quiet=args.json) as steps:  # its live line goes, an error or not
        steps("baseline and candidates", 0, 1)
        baseline = naive_generate(lm, catalog, prompt_ids, None, decoding)
        baseline_perplexity = perplexity(lm, probe_ids)
        candidates = find_candidates(
            lm, catalog, probe_ids, matrix=args.matrix, count=args.candidates
        )
        steps("baseline and candidates", 1, 1)
        results = []
        for rank, candidate in enumerate(candidates):
            checked = verify(
                lm,
                catalog,
                candidate,
                probe_ids=probe_ids,
                prompt_ids=prompt_ids,
                baseline_tokens=baseline.tokens,
                decoding=decoding,
            )
            results.append(
                SuperweightResult(
                    rank=rank,
                    layer=candidate.layer,
                    matrix=candidate.matrix,
                    row=candidate.row,
                    col=candidate.col,
                    weight=candidate.weight,
                    output_activation=candidate.output_activation,
                    input_activation=candidate.input_activation,
                    spike_ratio=candidate.spike_ratio,
                    position=candidate.position,
                    perplexity=checked.perplexity,
                    changed=checked.changed,
                    diverge_at=checked.diverge_at,
                    text=decode_tokens(lm, checked.tokens),
                )
            )
            steps("zeroing each candidate", rank + 1, len(candidates))
    baseline_text = decode_tokens(lm, baseline.tokens)
    if args.db:
        save_superweights(
            args.db,
            model=args.model,
            probe_text=args.probe_text,
            prompt=args.prompt,
            decoding=decoding.describe(),
            max_new_tokens=decoding.max_new_tokens,
            baseline_perplexity=baseline_perplexity,
            baseline_text=baseline_text,
            results=results,
        )
    if args.json:
        for result in results:
            print(
                json.dumps(
                    {
                        "site": result.site,
                        **{k: v for k, v in vars(result).items() if k != "text"},
                        "baseline_perplexity": baseline_perplexity,
                        "text": result.text,
                    }
                )
            )
        return 0
    _print_table(args, results, baseline_perplexity, baseline_text)
    return 0


def _print_table(
    args: argparse.Namespace,
    results: list[SuperweightResult],
    baseline_perplexity: float,
    baseline_text: str,
) -> None:
    table = Table(
        title=f"super-weight candidates of {args.model} (zeroed one at a time)",
        expand=True,
        caption=f"probe perplexity unmutated: {baseline_perplexity:.4g} · baseline: "
        f"{baseline_text[:70]!r}" + (f" · stored in {args.db}" if args.db else ""),
    )
    site_width = max((len(result.site) for result in results), default=4)
    table.add_column("site", no_wrap=True, min_width=site_width)
    for column in ("weight", "spike", "out act", "in act", "pos", "ppl zeroed", "x ppl"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("output when zeroed", no_wrap=True, overflow="ellipsis", min_width=12)
    for result in results:
        ratio = result.perplexity / baseline_perplexity
        style = "bold red" if ratio >= SUPER_PERPLEXITY_RATIO else None
        table.add_row(
            result.site,
            f"{result.weight:.4g}",
            f"{result.spike_ratio:.1f}x",
            f"{result.output_activation:.4g}",
            f"{result.input_activation:.4g}",
            str(result.position),
            f"{result.perplexity:.4g}",
            f"{ratio:.2f}",
            "(unchanged)" if not result.changed else f"@{result.diverge_at}: {result.text[:60]}",
            style=style,
        )
    Console().print(table)
