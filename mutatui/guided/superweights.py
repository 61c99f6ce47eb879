"""Super weights (Yu et al., "The Super Weight in Large Language Models", 2024): find, then verify.

Detection: run a probe text once with hooks on every layer's down projection (the MLP's output
matrix) and record its input x and output y. A super weight W[r, c] makes a *super activation*:
y[p, r] is far larger than any other layer's down-projection output. So each layer's largest
|y[p, r]| is compared with the median of all layers' largest; the ratio is the spike. The output
channel r gives the weight's row; the column is the input channel c with the largest
contribution |x[p, c] * W[r, c]| at that position (Yu et al. take the largest input activation
|x[p, c]|: in real models that is the same channel, because the super weight multiplies a
massive input activation; the contribution is also right when only the weight is large, and the
largest-input channel is reported beside it).

Verification: zero the weight (an exact in-place mutation, restored after) and measure the probe
text's perplexity and the prompt's continuation, before and after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import Decoding, naive_generate
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Kind, Mutation, mutated
from mutatui.engine.sites import Site
from mutatui.errors import MutatuiError

DOWN_PROJECTION_NAMES = ("down", "mlp.fc2", "mlp.dense_4h_to_h", "mlp.w2")
"""The MLP output matrix: `down` in every family with an architecture entry, else a module path
of common architectures (as `MatrixCatalog` names a model without an entry)."""

DEFAULT_PROBE_TEXT = (
    "Apple Inc. is a worldwide tech company. The life cycle of Drosophila begins with an egg, "
    "which hatches into a larva; the larva grows, pupates and emerges as an adult fly."
)


@dataclass(frozen=True)
class Candidate:
    """A super-weight candidate: the weight at (row, col) of `matrix` in `layer` (row an output
    feature, col an input feature, as every site)."""

    layer: int
    matrix: str
    row: int
    col: int
    weight: float
    position: int
    output_activation: float
    input_activation: float
    spike_ratio: float
    largest_input_channel: int

    @property
    def site(self) -> Site:
        return Site.element(self.layer, self.matrix, self.row, self.col)


@dataclass(frozen=True)
class Verification:
    """What zeroing a candidate does: probe perplexity and the prompt's continuation."""

    candidate: Candidate
    perplexity: float
    tokens: tuple[int, ...]
    diverge_at: int | None

    @property
    def changed(self) -> bool:
        return self.diverge_at is not None


def down_projection(catalog: MatrixCatalog, name: str | None = None) -> str:
    """The name of the MLP output matrix in `catalog`, or a one-line error naming the choices."""
    if name is not None:
        if name not in catalog.names:
            raise MutatuiError(f"unknown matrix {name!r}; valid: {', '.join(catalog.names)}")
        return name
    for candidate in DOWN_PROJECTION_NAMES:
        if candidate in catalog.names:
            return candidate
    raise MutatuiError(
        f"no down projection found among {', '.join(catalog.names)}; pass --matrix NAME"
    )


def encode_text(lm: LoadedModel, text: str) -> list[int]:
    """Plain text to ids (no chat template: a perplexity probe is running text)."""
    ids = list(lm.tokenizer(text).input_ids)
    if len(ids) < 2:
        raise MutatuiError(f"probe text {text!r} is too short: it needs at least two tokens")
    return ids


def _forward(lm: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    device = next(lm.model.parameters()).device
    tensor = torch.tensor([list(ids)], dtype=torch.long, device=device)
    return lm.model(input_ids=tensor, use_cache=False).logits[0]


def perplexity(lm: LoadedModel, ids: Sequence[int]) -> float:
    """exp of the mean negative log-likelihood of every token after the first."""
    with torch.inference_mode():
        logits = _forward(lm, ids)[:-1].float()
        targets = torch.tensor(list(ids[1:]), device=logits.device)
        nll = torch.nn.functional.cross_entropy(logits, targets)
    value = float(torch.exp(nll))
    return value if math.isfinite(value) else float("inf")


def record_down_activations(
    lm: LoadedModel, catalog: MatrixCatalog, ids: Sequence[int], matrix: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Input and output of every layer's `matrix` on one probe: [(x, y)] with x (positions, in)."""
    records: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []

    def hook_for(layer: int):
        def hook(_module, args, output):
            output = catalog.outputs(layer, matrix, output)
            records[layer] = (args[0][0].detach().float(), output[0].detach().float())

        return hook

    try:
        for layer in range(catalog.num_layers):
            module = catalog.module(layer, matrix)
            handles.append(module.register_forward_hook(hook_for(layer)))
        with torch.inference_mode():
            _forward(lm, ids)
    finally:
        for handle in handles:
            handle.remove()
    return [records[layer] for layer in range(catalog.num_layers)]


def find_candidates(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    ids: Sequence[int],
    *,
    matrix: str | None = None,
    count: int = 5,
) -> list[Candidate]:
    """One candidate per layer (its largest down-projection output), strongest spike first.

    Returns the `count` layers with the highest spike ratio; a ratio near 1 means no spike.
    """
    name = down_projection(catalog, matrix)
    records = record_down_activations(lm, catalog, ids, name)
    peaks = [float(y.abs().max()) for _x, y in records]
    median = float(torch.tensor(peaks).median())
    candidates = []
    for layer, (x, y) in enumerate(records):
        position, row = divmod(int(y.abs().argmax()), y.shape[-1])
        weight = catalog.weight(layer, name).detach().float()
        contribution = (x[position] * weight[row]).abs()
        col = int(contribution.argmax())
        candidates.append(
            Candidate(
                layer=layer,
                matrix=name,
                row=row,
                col=col,
                weight=float(weight[row, col]),
                position=position,
                output_activation=float(y[position, row]),
                input_activation=float(x[position, col]),
                spike_ratio=peaks[layer] / median if median > 0 else math.inf,
                largest_input_channel=int(x[position].abs().argmax()),
            )
        )
    candidates.sort(key=lambda c: c.spike_ratio, reverse=True)
    return candidates[:count]


def verify(
    lm: LoadedModel,
    catalog: MatrixCatalog,
    candidate: Candidate,
    *,
    probe_ids: Sequence[int],
    prompt_ids: Sequence[int],
    baseline_tokens: Sequence[int],
    decoding: Decoding,
) -> Verification:
    """Zero the candidate, measure perplexity and regenerate on the naive path, restore."""
    mutation = Mutation(candidate.site, Kind.ZERO)
    with mutated(catalog, mutation):
        zeroed_perplexity = perplexity(lm, probe_ids)
    generation = naive_generate(lm, catalog, prompt_ids, mutation, decoding)
    return Verification(
        candidate=candidate,
        perplexity=zeroed_perplexity,
        tokens=tuple(generation.tokens),
        diverge_at=first_divergence(list(baseline_tokens), generation.tokens),
    )
