"""A random-weight Llama of 7B shape, built from a config (nothing downloaded): memory and speed
of the engine against the naive loop, and their outputs compared.

    .venv/bin/python benchmarks/big_llama.py [--device cuda] [--dtype bfloat16]
        [--arithmetic native] [--layers 32] [--hidden 4096] [--intermediate 11008]
        [--heads 32] [--elements 64] [--naive 4] [--max-new-tokens 48]

The tokenizer is SmolLM2's (the vocabulary sets the head's size: 49152 here against Llama 2's
32000). Random weights make near-random text, so this measures cost, not phenotypes; the TF32
and reduced-precision switches are turned on before the run to show they are pinned off.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from mutatui.engine.decoding import Decoding, encode_prompt
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import (
    SMOLLM2_ALIAS,
    LoadedModel,
    parse_device,
    parse_dtype,
    resolve_source,
    use_arithmetic,
)
from mutatui.exact.screener import Screener
from mutatui.exact.selfcheck import element_mutations, peak_memory, self_check

PROMPT = "The life cycle of Drosophila:"


def build(args: argparse.Namespace) -> LoadedModel:
    device = parse_device(args.device)
    dtype = parse_dtype(args.dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(resolve_source(SMOLLM2_ALIAS, print))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    started = time.perf_counter()
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    use_arithmetic(model, dtype, args.arithmetic)
    model.eval().requires_grad_(False)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=f"random Llama {args.layers}x{args.hidden}",
        source="config",
        device=torch.device(device),
        dtype=dtype,
        load_seconds=time.perf_counter() - started,
        arithmetic=args.arithmetic,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--arithmetic", default="native", choices=("native", "float32"))
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--elements", type=int, default=64)
    parser.add_argument("--naive", type=int, default=4, help="of them also on the naive loop")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    lm = build(args)
    parameters = sum(p.numel() for p in lm.model.parameters())
    print(
        f"{lm.name}: {parameters / 1e9:.2f}e9 parameters, {lm.describe()}, built in "
        f"{lm.load_seconds:.1f} s"
    )
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    catalog = MatrixCatalog(lm.model)
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    prompt = encode_prompt(lm, PROMPT)
    mutations = element_mutations(catalog, args.elements, 0)
    screener = Screener(lm, catalog, decoding)
    print(f"default batch size here: {screener.batch_size}")
    check = self_check(lm, catalog, decoding, prompt, mutations[: args.naive])
    print(
        f"self-check on {check.mutations}: {check.equal} equal, {check.settled} settled "
        f"naively, tolerance {check.tolerance.describe(lm.compute_dtype)}; naive loop "
        f"{check.mutations / check.naive_seconds:.3g} mutations/s"
    )
    screener.adopt_tolerances(check.tolerance)
    baseline = screener.baseline(prompt)
    started = time.perf_counter()
    outcomes = screener.screen_text(prompt, baseline, mutations)
    seconds = time.perf_counter() - started
    naive_rate = check.mutations / check.naive_seconds
    rate = len(mutations) / seconds
    print(
        f"engine: {len(mutations)} random elements in {seconds:.1f} s = {rate:.3g}/s "
        f"({sum(o.diverge_at is not None for o in outcomes)} changed, "
        f"{sum(o.settled_naively for o in outcomes)} settled naively); ratio to the naive "
        f"loop {rate / naive_rate:.1f}x; peak memory over the run "
        f"{peak_memory(lm.device) / 1024**3:.1f} GiB"
    )
    if check.mismatches:
        raise SystemExit(f"{len(check.mismatches)} outputs differ from the naive path")


if __name__ == "__main__":
    main()
