"""Arguments shared by several commands: which model, on which device, and how to decode."""

from __future__ import annotations

import argparse
import sys

from mutatui.engine.decoding import DEFAULT_MAX_NEW_TOKENS, Decoding
from mutatui.engine.models import MODEL_FORMS, LoadedModel, load_model


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
    group.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    group.add_argument(
        "--no-chat", action="store_true", help="do not wrap prompts in the chat template"
    )


def decoding_from_args(args: argparse.Namespace) -> Decoding:
    return Decoding(
        mode=args.decoding,
        temperature=args.temperature,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )


def load_from_args(args: argparse.Namespace, *, quiet: bool = False) -> LoadedModel:
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
