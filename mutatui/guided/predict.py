"""First-order sensitivity of every weight element: one backward pass per probe.

For a probe (a prompt and the unmutated model's continuation of it), L(W) is the log-likelihood
of that continuation given the prompt. Setting the element w to the target t (the matrix's max,
its min, or zero) changes L by about `dL/dw * (t - w)`. The magnitude of that estimate, averaged
over probes, is the element's *score*: a cheap guess, for all elements at once, of which
mutations change the output. It is only a first-order guess: max and min replacements are large,
so the real change is often far from linear (docs/guide/guided.md).

A whole tile set to one value changes L by about the *signed* sum of its elements' estimates,
which is what `tile_block` holds; `tile_sum` and `tile_max` summarize element scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mutatui.engine.decoding import Decoding, encode_prompt, naive_generate
from mutatui.engine.matrices import MatrixCatalog, MatrixInfo
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Kind
from mutatui.errors import MutatuiError

PREDICTED_KINDS: tuple[str, ...] = (Kind.MAX.value, Kind.MIN.value, Kind.ZERO.value)
DEFAULT_TILE_SIZE = 64
DEFAULT_TOP_K = 256

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Probe:
    """A prompt and the baseline continuation whose log-likelihood the estimate is about.

    `continuation` ends with an EOS token when the baseline stopped on one.
    """

    prompt: str
    prompt_ids: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclass
class MatrixPrediction:
    """Predicted sensitivity of one matrix to one kind of mutation (scores are |estimates|).

    Arrays are numpy float32: `tile_block`, `tile_sum`, `tile_max` are (tile_rows, tile_cols);
    `row_sum` and `col_sum` are per matrix row and column; `top` holds the `top_k` elements with
    the highest score as (row, col, score), best first.
    """

    layer: int
    matrix: str
    kind: str
    rows: int
    cols: int
    tile_size: int
    tile_block: np.ndarray
    tile_sum: np.ndarray
    tile_max: np.ndarray
    row_sum: np.ndarray
    col_sum: np.ndarray
    top: list[tuple[int, int, float]] = field(default_factory=list)


def baseline_probe(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    prompt: str,
    decoding: Decoding,
    *,
    chat: bool = True,
) -> Probe:
    """Decode the unmutated model's continuation of `prompt` (the exact, naive path)."""
    prompt_ids = encode_prompt(lm, prompt, chat=chat)
    generation = naive_generate(lm, catalog, prompt_ids, None, decoding)
    continuation = list(generation.tokens)
    if generation.stopped:
        continuation.append(_stop_token(lm))
    if not continuation:
        raise MutatuiError(
            f"prompt {prompt!r} has an empty baseline continuation: nothing to score"
        )
    return Probe(prompt, tuple(prompt_ids), tuple(continuation))


def _stop_token(lm: LoadedModel) -> int:
    eos = lm.eos_token_ids
    preferred = getattr(lm.tokenizer, "eos_token_id", None)
    return preferred if preferred in eos else min(eos)


@contextmanager
def weight_gradients(catalog: MatrixCatalog) -> Iterator[list[MatrixInfo]]:
    """Let gradients flow into the catalog's weights only, for the duration of the block.

    The loaded model has `requires_grad` off everywhere; it is switched on for the stored
    weights that hold the matrices (a fused module's weight once) and switched back, and their
    `.grad` is dropped, also when the block raises. Weights are never written. Yields the
    matrices; `matrix_gradient` reads each one's gradient.
    """
    infos = list(catalog)
    weights = list({id(w): w for w in (catalog.parameter(i.layer, i.name) for i in infos)}.values())
    saved = [weight.requires_grad for weight in weights]
    try:
        for weight in weights:
            weight.requires_grad_(True)
            weight.grad = None
        yield infos
    finally:
        for weight, flag in zip(weights, saved, strict=True):
            weight.grad = None
            weight.requires_grad_(flag)


def matrix_gradient(catalog: MatrixCatalog, info: MatrixInfo) -> torch.Tensor:
    """The gradient of one matrix, oriented as the matrix (out features, in features)."""
    return info.layout.logical(catalog.parameter(info.layer, info.name).grad)


def _clear_gradients(catalog: MatrixCatalog, infos: Sequence[MatrixInfo]) -> None:
    for info in infos:
        catalog.parameter(info.layer, info.name).grad = None


def continuation_log_likelihood(lm: LoadedModel, probe: Probe) -> torch.Tensor:
    """Sum over the continuation of log p(token | everything before it), as a graph scalar."""
    device = next(lm.model.parameters()).device
    ids = torch.tensor([list(probe.prompt_ids) + list(probe.continuation)], device=device)
    start = len(probe.prompt_ids)
    logits = lm.model(input_ids=ids, use_cache=False).logits[0, start - 1 : -1]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    targets = ids[0, start:]
    return log_probs.gather(1, targets.unsqueeze(1)).sum()


def _tile_reduce(values: torch.Tensor, tile: int, how: str) -> torch.Tensor:
    """Sum or max over non-overlapping tile x tile squares (edge tiles may be smaller)."""
    rows, cols = values.shape
    tile_rows, tile_cols = math.ceil(rows / tile), math.ceil(cols / tile)
    padded = F.pad(values, (0, tile_cols * tile - cols, 0, tile_rows * tile - rows))
    squares = padded.view(tile_rows, tile, tile_cols, tile)
    if how == "sum":
        return squares.sum(dim=(1, 3))
    return squares.amax(dim=(1, 3))


def _targets(info: MatrixInfo, kinds: Sequence[str]) -> dict[str, float]:
    return {
        kind: {Kind.MAX.value: info.max, Kind.MIN.value: info.min, Kind.ZERO.value: 0.0}[kind]
        for kind in kinds
    }


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """Validate predicted kinds (a typed value has no fixed target per matrix)."""
    for kind in kinds:
        if kind not in PREDICTED_KINDS:
            raise MutatuiError(f"cannot predict kind {kind!r}; valid: {', '.join(PREDICTED_KINDS)}")
    if not kinds:
        raise MutatuiError(f"no kinds to predict; valid: {', '.join(PREDICTED_KINDS)}")
    return tuple(dict.fromkeys(kinds))


def predict(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    probes: Sequence[Probe],
    *,
    kinds: Sequence[str] = PREDICTED_KINDS,
    tile_size: int = DEFAULT_TILE_SIZE,
    top_k: int = DEFAULT_TOP_K,
    progress: Progress | None = None,
) -> list[MatrixPrediction]:
    """First-order sensitivity maps of every matrix for every kind, from one backward per probe.

    Memory: besides the model, the gradients of all matrices and one accumulator of their
    magnitudes, each the size of the matrices in the weights' dtype (a 7B model in bfloat16:
    about 14 GB each). It needs gradients, so it cannot run inside `torch.inference_mode`
    (call it from ordinary code, e.g. a worker thread that has not entered inference mode).
    """
    kinds = check_kinds(kinds)
    if not probes:
        raise MutatuiError("predict needs at least one probe prompt")
    if tile_size < 1 or top_k < 0:
        raise MutatuiError(f"tile size must be >= 1 and top-k >= 0, got {tile_size} and {top_k}")
    if torch.is_inference_mode_enabled():
        raise MutatuiError("predict cannot run inside torch.inference_mode (it needs gradients)")
    report = progress or (lambda _message: None)
    magnitude: dict[tuple[int, str], torch.Tensor] = {}
    blocks: dict[tuple[int, str, str], torch.Tensor] = {}
    with weight_gradients(catalog) as infos, torch.enable_grad():
        for number, probe in enumerate(probes, start=1):
            report(f"backward pass {number}/{len(probes)}: {probe.prompt[:40]!r}")
            continuation_log_likelihood(lm, probe).backward()
            with torch.no_grad():
                for info in infos:
                    key = (info.layer, info.name)
                    weight = catalog.weight(info.layer, info.name)
                    gradient = matrix_gradient(catalog, info)
                    grad = gradient.float()
                    # Kept in the weights' dtype: a float32 copy of a 7B model's gradients is 28 GB.
                    magnitude[key] = magnitude.get(key, 0) + gradient.abs()
                    # sum over a tile of g * (t - w) = t * sum(g) - sum(g * w), for every t.
                    grad_sum = _tile_reduce(grad, tile_size, "sum")
                    grad_weight_sum = _tile_reduce(grad * weight.float(), tile_size, "sum")
                    for kind, target in _targets(info, kinds).items():
                        block = (target * grad_sum - grad_weight_sum).abs()
                        blocks[(*key, kind)] = blocks.get((*key, kind), 0) + block
                _clear_gradients(catalog, infos)
    count = len(probes)
    results: list[MatrixPrediction] = []
    with torch.no_grad():
        for info in infos:
            key = (info.layer, info.name)
            weight = catalog.weight(info.layer, info.name)
            mean_magnitude = magnitude.pop(key).float() / count
            for kind, target in _targets(info, kinds).items():
                score = mean_magnitude * (target - weight.float()).abs()
                results.append(
                    _summarize(info, kind, score, blocks[(*key, kind)] / count, tile_size, top_k)
                )
    return results


def _summarize(
    info: MatrixInfo,
    kind: str,
    score: torch.Tensor,
    block: torch.Tensor,
    tile_size: int,
    top_k: int,
) -> MatrixPrediction:
    def to_numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to("cpu", torch.float32).numpy()

    flat = score.flatten()
    count = min(top_k, flat.numel())
    values, indices = flat.topk(count) if count else (flat[:0], flat[:0].long())
    cols = info.cols
    top = [
        (int(index) // cols, int(index) % cols, float(value))
        for value, index in zip(values.tolist(), indices.tolist(), strict=True)
    ]
    return MatrixPrediction(
        layer=info.layer,
        matrix=info.name,
        kind=kind,
        rows=info.rows,
        cols=info.cols,
        tile_size=tile_size,
        tile_block=to_numpy(block),
        tile_sum=to_numpy(_tile_reduce(score, tile_size, "sum")),
        tile_max=to_numpy(_tile_reduce(score, tile_size, "max")),
        row_sum=to_numpy(score.sum(dim=1)),
        col_sum=to_numpy(score.sum(dim=0)),
        top=top,
    )
