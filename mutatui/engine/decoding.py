"""Deterministic decoding of a baseline and its mutants in one batched forward pass per step.

Greedy decoding is the default. Seeded sampling draws, at step t, Gumbel noise g_t fixed in
advance by the seed and takes argmax(logits / T + g_t): a sample from softmax(logits / T) whose
random draw is the same for every mutant, so sampled outputs compare token by token.

Exactness: a batched pass and a lone pass can differ in the last bits of a logit. A step whose
winning score beats the runner-up by less than `near_tie_tolerance` could flip, so a row with
such a step is settled on the naive path (edit the weight, generate alone, restore).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from mutatui.engine.forms import LARGEST_SEED, quoted
from mutatui.engine.interventions import sample_deltas
from mutatui.engine.kv import with_cache
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel, pin_precision
from mutatui.engine.mutations import Mutation, mutated
from mutatui.errors import MutatuiError

DEFAULT_MAX_NEW_TOKENS = 48


@dataclass(frozen=True)
class Decoding:
    """How continuations are decoded: `greedy`, or `sample` with a temperature and a seed."""

    mode: str = "greedy"
    temperature: float = 0.7
    seed: int = 0
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __post_init__(self) -> None:
        if self.mode not in ("greedy", "sample"):
            raise MutatuiError(f"unknown decoding {self.mode!r}; valid: greedy, sample")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise MutatuiError(f"temperature must be positive and finite, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise MutatuiError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not 0 <= self.seed <= LARGEST_SEED:
            raise MutatuiError(f"seed must be between 0 and 2**63-1, got {quoted(str(self.seed))}")

    def describe(self) -> str:
        if self.mode == "greedy":
            return "greedy"
        return f"sample(T={self.temperature}, seed={self.seed})"


@dataclass
class Generation:
    """One decoded continuation. `tokens` excludes the EOS that ended it (`stopped`)."""

    tokens: list[int] = field(default_factory=list)
    stopped: bool = False
    min_margin: float = float("inf")
    nonfinite: bool = False
    settled_naively: bool = False


@dataclass(frozen=True)
class Step:
    """What one decoding step produced: a token per row, `None` for rows already finished."""

    index: int
    tokens: tuple[int | None, ...]


def encode_prompt(lm: LoadedModel, text: str, *, chat: bool = True) -> list[int]:
    """Token ids of a prompt, through the tokenizer's chat template when it has one. An empty
    prompt, or one longer than the model reads, is refused in one line."""
    if not text.strip():
        raise MutatuiError("the prompt is empty; give the text the model continues")
    tokenizer = lm.tokenizer
    if chat and getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        ids = list(tokenizer(rendered, add_special_tokens=False).input_ids)
    else:
        ids = list(tokenizer(text).input_ids)
    context = getattr(lm.model.config, "max_position_embeddings", None)
    if isinstance(context, int) and len(ids) >= context:
        raise MutatuiError(
            f"the prompt is {len(ids):,} tokens ({len(text):,} characters); {lm.name} reads at "
            f"most {context:,}, and needs room for the tokens it generates"
        )
    return ids


def decode_tokens(lm: LoadedModel, tokens: Sequence[int]) -> str:
    return lm.tokenizer.decode(list(tokens), skip_special_tokens=True)


class GumbelNoise:
    """Gumbel noise per step, drawn from the seed in step order and kept, so step t's noise
    does not depend on how many rows are decoded or how far anyone else has got."""

    def __init__(self, seed: int, vocab: int) -> None:
        self._generator = torch.Generator().manual_seed(seed)
        self._vocab = vocab
        self._steps: list[torch.Tensor] = []

    def at(self, step: int) -> torch.Tensor:
        while len(self._steps) <= step:
            uniform = torch.rand(self._vocab, generator=self._generator, dtype=torch.float64)
            uniform = uniform.clamp_(min=1e-20, max=1.0 - 1e-16)
            self._steps.append((-torch.log(-torch.log(uniform))).to(torch.float32))
        return self._steps[step]


NEAR_TIE_EPSILONS: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (256.0, 2048.0),
    torch.bfloat16: (16.0, 16.0),
    torch.float16: (16.0, 16.0),
}
"""Near-tie tolerances before any measurement, in machine epsilons of the arithmetic, for
(elements and the unmutated model, blocks). float32: the largest difference between a batched
and a lone logit, relative to `1 + |top1|`, measured on SmolLM2 (benchmarks/near_ties.py) was
32 epsilons for element mutants and 676 for a 64x64 block set to its matrix's minimum, whose
huge activations amplify rounding; a margin can move by twice that, and the tolerances leave a
factor of 4 (elements) and 1.5 or more (blocks) on top. Half precision: a logit's own rounding
step is an epsilon or more. The fast engine measures its own (`exact.tolerance`); these are its
floors, and the tolerances of the batched path and live mode."""


def near_tie_tolerance(dtype: torch.dtype, mutation: Mutation | None = None) -> float:
    """Relative score gap below which batched and lone passes may pick different tokens, for
    an arithmetic `dtype`. Margins are `(top1 - top2) / (1 + |top1|)`."""
    element, block = NEAR_TIE_EPSILONS.get(dtype, NEAR_TIE_EPSILONS[torch.float16])
    epsilons = element if mutation is None or mutation.site.is_element else block
    return epsilons * torch.finfo(dtype).eps


def too_close(margin: float, tolerance: float) -> bool:
    """Whether a decision's relative margin is too close to call: under the tolerance, or NaN
    (non-finite scores; batched and lone passes may put the NaN in different places)."""
    return math.isnan(margin) or margin < tolerance


class Chooser:
    """Picks the next token from logits, greedily or by seeded Gumbel-max sampling."""

    def __init__(self, decoding: Decoding, vocab: int) -> None:
        self.decoding = decoding
        self._noise = GumbelNoise(decoding.seed, vocab) if decoding.mode == "sample" else None

    def scores(
        self, logits: torch.Tensor, step: int | Sequence[int], tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores of the vocabulary (or of `tokens`, when the logits are theirs) at `step`, or
        at `step[r]` for row r of the logits."""
        scores = logits.float()
        if self._noise is None:
            return scores
        if isinstance(step, int):
            noise = self._noise.at(step)
        else:
            noise = torch.stack([self._noise.at(row_step) for row_step in step])
        noise = noise[..., : scores.shape[-1]] if tokens is None else noise[..., tokens]
        return scores / self.decoding.temperature + noise.to(scores.device)

    def choose(
        self, logits: torch.Tensor, step: int | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token per row and its relative margin over the runner-up (NaN for non-finite scores);
        `step` is every row's, or one per row."""
        scores = self.scores(logits, step)
        top = scores.topk(2, dim=-1).values
        tokens = scores.argmax(dim=-1)
        margin = (top[..., 0] - top[..., 1]) / (1.0 + top[..., 0].abs())
        return tokens, margin


def stream_batch(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    prompt: Sequence[int],
    mutations: Sequence[Mutation | None],
    decoding: Decoding,
    results: list[Generation] | None = None,
) -> Iterator[Step]:
    """Decode one prompt for every row of `mutations` (None = the unmutated model) together.

    One forward pass per step for the whole batch; each row's mutation is a per-sample delta on
    its matrix's output. Yields after every step; `results` (if given) is filled as it goes.
    """
    rows = len(mutations)
    out = results if results is not None else []
    out[:] = [Generation() for _ in range(rows)]
    eos = lm.eos_token_ids
    device = next(lm.model.parameters()).device
    input_ids = torch.tensor([list(prompt)] * rows, dtype=torch.long, device=device)
    chooser: Chooser | None = None
    cache = DynamicCache()
    finished = [False] * rows
    assignments = [(row, m) for row, m in enumerate(mutations) if m is not None]
    # Only the last position's logits, as model.generate asks for them, where the model allows.
    forward_parameters = inspect.signature(lm.model.forward).parameters
    last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in forward_parameters else {}
    with torch.inference_mode(), sample_deltas(catalog, assignments):
        for step in range(decoding.max_new_tokens):
            output = lm.model(
                input_ids=input_ids, **with_cache(lm.model, cache), **last_logits_only
            )
            logits = output.logits[:, -1, :]
            chooser = chooser or Chooser(decoding, logits.shape[-1])
            tokens, margins = chooser.choose(logits, step)
            nonfinite = ~torch.isfinite(logits).all(dim=-1)
            emitted: list[int | None] = []
            for row in range(rows):
                if finished[row]:
                    emitted.append(None)
                    continue
                generation, token = out[row], int(tokens[row])
                margin = float(margins[row])
                generation.nonfinite |= bool(nonfinite[row])
                if math.isnan(margin) or margin < generation.min_margin:  # NaN, once seen, stays
                    generation.min_margin = margin
                if token in eos:
                    generation.stopped = finished[row] = True
                    emitted.append(None)
                else:
                    generation.tokens.append(token)
                    emitted.append(token)
            yield Step(step, tuple(emitted))
            if all(finished):
                return
            input_ids = tokens.view(rows, 1)


def is_near_tie(generation: Generation, dtype: torch.dtype, mutation: Mutation | None) -> bool:
    """True when some step of this row was too close to call for a batched pass."""
    return too_close(generation.min_margin, near_tie_tolerance(dtype, mutation))


def naive_generate(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    prompt: Sequence[int],
    mutation: Mutation | None,
    decoding: Decoding,
) -> Generation:
    """The reference path: edit the weight, generate alone, restore.

    Greedy runs `model.generate`; seeded sampling runs the same sampler alone (batch of one).
    """
    pin_precision()
    if mutation is None:
        return _generate_alone(lm, catalog, prompt, decoding)
    with mutated(catalog, mutation):
        return _generate_alone(lm, catalog, prompt, decoding)


def greedy_generate_kwargs(lm: LoadedModel, input_ids: torch.Tensor, decoding: Decoding) -> dict:
    """The arguments the naive path passes `model.generate`: plain greedy decoding with the
    default dynamic cache, none of the model's own generation defaults (penalties, sampling, a
    static cache) applied."""
    eos = sorted(lm.eos_token_ids)
    return {
        "attention_mask": torch.ones_like(input_ids),
        "max_new_tokens": decoding.max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "eos_token_id": eos,
        "pad_token_id": eos[0] if eos else 0,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "repetition_penalty": None,
        "cache_implementation": "dynamic",
    }


def _generate_alone(
    lm: LoadedModel, catalog: MatrixCatalog, prompt: Sequence[int], decoding: Decoding
) -> Generation:
    if decoding.mode == "sample":
        results: list[Generation] = []
        for _ in stream_batch(lm, catalog, prompt, [None], decoding, results):
            pass
        return results[0]
    device = next(lm.model.parameters()).device
    input_ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    with torch.inference_mode():
        output = lm.model.generate(input_ids, **greedy_generate_kwargs(lm, input_ids, decoding))
    generated = output[0, input_ids.shape[1] :].tolist()
    result = Generation()
    for token in generated:
        if token in lm.eos_token_ids:
            result.stopped = True
            break
        result.tokens.append(token)
    return result


def generate_exact(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    prompt: Sequence[int],
    mutations: Sequence[Mutation | None],
    decoding: Decoding,
) -> list[Generation]:
    """Batched decoding of all rows, with near-tie rows settled on the naive path."""
    results: list[Generation] = []
    for _ in stream_batch(lm, catalog, prompt, mutations, decoding, results):
        pass
    return [
        settle(lm, catalog, prompt, m, decoding, g) for m, g in zip(mutations, results, strict=True)
    ]


def settle(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    prompt: Sequence[int],
    mutation: Mutation | None,
    decoding: Decoding,
    generation: Generation,
) -> Generation:
    """Keep a batched result unless a near tie makes it uncertain; then redo it naively."""
    if not is_near_tie(generation, lm.compute_dtype, mutation):
        return generation
    redone = naive_generate(lm, catalog, prompt, mutation, decoding)
    redone.nonfinite = generation.nonfinite
    redone.min_margin = generation.min_margin
    redone.settled_naively = True
    return redone
