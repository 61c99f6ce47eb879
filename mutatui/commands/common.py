"""Arguments shared by several commands: which model, on which device, how to decode, and which
results of a screen to analyse."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from mutatui.engine.forms import LARGEST_SEED, MODEL_FORMS, parse_real, parse_whole
from mutatui.errors import MutatuiError
from mutatui.store.effects import ROBUST_MARGIN

if TYPE_CHECKING:  # torch and transformers load only when a command runs, not for --help
    from textual.app import App

    from mutatui.analysis.grades import EffectGrade
    from mutatui.engine.decoding import Decoding
    from mutatui.engine.models import LoadedModel, ModelOptions


def whole(flag: str, *, maximum: int = LARGEST_SEED) -> Callable[[str], int]:
    """An argparse type: a whole number in ASCII digits, at most `maximum` (`parse_whole`),
    refused in one line that names its flag."""

    def read(text: str) -> int:
        return parse_whole(text, flag, maximum=maximum)

    return read


def real(flag: str) -> Callable[[str], float]:
    """An argparse type: a decimal number as written, finite (`parse_real`)."""

    def read(text: str) -> float:
        return parse_real(text, flag)

    return read


def add_model_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, help=f"the model: {MODEL_FORMS}")
    group.add_argument(
        "--device", default="auto", help="auto (CUDA if present), cpu, cuda[:N], balanced"
    )
    group.add_argument(
        "--dtype",
        default="auto",
        help="auto (bfloat16 on CUDA, float32 on CPU), float32, float16, bfloat16",
    )
    group.add_argument(
        "--arithmetic",
        choices=("native", "float32"),
        default=None,
        help="native: compute in --dtype; float32: half-precision weights upcast exactly and "
        "computed in float32 (twice the memory; the fast engine's near ties become rare). "
        "Default: native, except that a screen whose native half precision would run near "
        "the naive loop's speed on this machine says so and takes float32",
    )
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the model's own code (off by default)",
    )


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding")
    group.add_argument(
        "--decoding",
        choices=("greedy", "sample"),
        default="greedy",
        help="greedy, or sampling with Gumbel noise fixed by --seed (default %(default)s)",
    )
    group.add_argument(
        "--temperature", type=real("--temperature"), default=0.7, help="for --decoding sample"
    )
    group.add_argument("--seed", type=whole("--seed"), default=0, help="for --decoding sample")
    group.add_argument(
        "--max-new-tokens",
        type=whole("--max-new-tokens"),
        default=48,
        help="tokens generated (default %(default)s)",
    )
    group.add_argument(
        "--no-chat", action="store_true", help="do not wrap prompts in the chat template"
    )


PHENOTYPES = {
    1: "a changed text output",
    2: "a changed text output graded moderate or severe",
    3: "a changed text output graded severe",
}
"""What counts as a phenotype, by minimum severity: a changed text output, and the mutation's
grade (its worst probe, or with --text-severity its worst text probe)."""


def add_phenotype_arguments(parser: argparse.ArgumentParser) -> None:
    """Which screen, which of its text probes, and which changed outputs count as phenotypes."""
    parser.add_argument("--screen", help="the screen's name (default: the largest screen)")
    parser.add_argument(
        "--probe", action="append", help="only these text probes (repeatable; default: all)"
    )
    parser.add_argument(
        "--min-severity",
        type=whole("--min-severity"),
        default=min(PHENOTYPES),
        help="a phenotype is a changed output graded at least this (1 any change, the default; "
        "2 moderate; 3 severe)",
    )
    parser.add_argument(
        "--text-severity",
        action="store_true",
        help="grade a mutation on its text probes only (default: its worst probe, the choice "
        "assay included, as the explorer shows it)",
    )
    effects = parser.add_argument_group(
        "phenotypes from effect sizes (screens that recorded them)"
    ).add_mutually_exclusive_group()
    effects.add_argument(
        "--robust",
        nargs="?",
        type=real("--robust"),
        const=ROBUST_MARGIN,
        metavar="MARGIN",
        help="a phenotype is a change not at a fragile step: the unmutated model's margin "
        f"(top-1 minus top-2 logit) where it diverged is at least MARGIN (default "
        f"{ROBUST_MARGIN:g}: the baseline's token e times as likely as the runner-up)",
    )
    effects.add_argument(
        "--min-effect",
        type=real("--min-effect"),
        metavar="KL",
        help="a phenotype is a mean KL divergence over the continuation of at least KL nats, "
        "changed or not",
    )
    effects.add_argument(
        "--top-effect",
        type=real("--top-effect"),
        metavar="SHARE",
        help="a phenotype is among the top SHARE (0..1) of its matrix by effect size",
    )


def describe_phenotype(min_severity: int, text_severity: bool, effect: str | None = None) -> str:
    """What counted as a phenotype, for headers and captions (`effect`: an effect grade's)."""
    if min_severity == min(PHENOTYPES):
        return effect or PHENOTYPES[min_severity]
    graded = "text probes only" if text_severity else "worst of text and choice probes"
    described = f"{PHENOTYPES[min_severity]} ({graded})"
    return f"{described}, {effect}" if effect else described


def effect_grade_from_args(args: argparse.Namespace) -> EffectGrade | None:
    """The effect grade the flags ask for, or None (any change)."""
    from mutatui.analysis.grades import EffectGrade

    if args.robust is None and args.min_effect is None and args.top_effect is None:
        return None
    return EffectGrade(args.robust, args.min_effect, args.top_effect)


def min_severity_from_args(args: argparse.Namespace) -> int:
    if args.min_severity not in PHENOTYPES:
        raise MutatuiError(
            f"--min-severity must be 1 (any change), 2 (moderate) or 3 (severe), "
            f"got {args.min_severity}"
        )
    return args.min_severity


def decoding_from_args(args: argparse.Namespace) -> Decoding:
    from mutatui.engine.decoding import Decoding

    return Decoding(
        mode=args.decoding,
        temperature=args.temperature,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )


def check_prompts(args: argparse.Namespace) -> None:
    """Refuse an empty --prompt before a model is loaded (a long one is measured in tokens
    once it is: `encode_prompt`)."""
    given = getattr(args, "prompt", None)
    prompts = [given] if isinstance(given, str) else list(given or [])
    if any(not prompt.strip() for prompt in prompts):
        raise MutatuiError("--prompt is empty; give the text the model continues")


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The model flags of `add_model_arguments`, typed."""
    from mutatui.engine.models import ModelOptions

    return ModelOptions(args.device, args.dtype, args.trust_remote_code, args.arithmetic)


def load_from_args(
    args: argparse.Namespace, *, quiet: bool = False, model: str | None = None
) -> LoadedModel:
    """The model of `args.model` (or `model`) loaded with the model flags, its progress on
    stderr unless `quiet`."""
    from mutatui.engine.models import load_with

    check_prompts(args)

    def say(message: str) -> None:
        if not quiet:
            print(f"mutatui: {message}", file=sys.stderr)

    return load_with(model or args.model, model_options(args), progress=say)


def run_app(app: App) -> int:
    """Run a Textual app until it exits or a stop signal (or the terminal's loss) ends it: the
    app then exits as by its quit key, and the command ends with the signal's status."""
    from mutatui import process

    with process.stopping_with(app.exit):
        app.run()
    return 0


def check_output_file(path: str | Path, flag: str) -> None:
    """Refuse now, before a model loads, an output file that could not be written."""
    from mutatui.engine.forms import shown

    target = Path(path)
    if target.is_dir():
        raise MutatuiError(f"{flag} {shown(target)} is a folder; give a file")
    if not target.parent.is_dir():
        raise MutatuiError(f"{flag} {shown(target)}: no folder {shown(target.parent)}")


def check_at_least(value: int, flag: str, minimum: int = 1) -> None:
    if value < minimum:
        raise MutatuiError(f"{flag} must be at least {minimum}, got {value}")


REPORT_WIDTH = 120
"""Columns of a report printed to a file or pipe (rich's default of 80 wraps its tables)."""


def report_console() -> Console:
    """Standard output for a report: 120 columns wide when it is a file or pipe; a terminal's
    width, or COLUMNS, wins."""
    redirected = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=REPORT_WIDTH if redirected else None)
