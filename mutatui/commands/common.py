"""Arguments shared by several commands: which model, on which device, and how to decode."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mutatui.engine.forms import MODEL_FORMS

if TYPE_CHECKING:  # torch and transformers load only when a command runs, not for --help
    from mutatui.engine.decoding import Decoding
    from mutatui.engine.models import LoadedModel


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
        "--trust-remote-code",
        action="store_true",
        help="allow the model's own code (off by default)",
    )


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding")
    group.add_argument("--decoding", choices=("greedy", "sample"), default="greedy")
    group.add_argument("--temperature", type=float, default=0.7, help="for --decoding sample")
    group.add_argument("--seed", type=int, default=0, help="for --decoding sample")
    group.add_argument("--max-new-tokens", type=int, default=48)
    group.add_argument(
        "--no-chat", action="store_true", help="do not wrap prompts in the chat template"
    )


def decoding_from_args(args: argparse.Namespace) -> Decoding:
    from mutatui.engine.decoding import Decoding

    return Decoding(
        mode=args.decoding,
        temperature=args.temperature,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )


def load_from_args(args: argparse.Namespace, *, quiet: bool = False) -> LoadedModel:
    from mutatui.engine.models import load_model

    def say(message: str) -> None:
        if not quiet:
            print(f"mutatui: {message}", file=sys.stderr)

    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        progress=say,
    )
