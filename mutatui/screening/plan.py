"""The enumeration of a screen's mutations, and its deterministic split into shards.

A plan walks the chosen matrices in catalog order (layer, then q k v o gate up down), the
sampler's sites within each matrix, and the kinds within each site. A mutation's id is its
position in that walk, so the same spec on the same model always gives the same ids, and any
id can be turned back into its mutation without walking the plan (`mutation_at`).

Shards deal out consecutive chunks of `SHARD_CHUNK` ids round-robin: shard K of N owns the ids
whose chunk number is K-1 modulo N. Chunks keep a shard's mutations grouped by matrix (batches
stay within one matrix) while spreading every layer over all shards, so shards take about as
long as each other.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from mutatui.engine.matrices import MatrixCatalog, MatrixInfo
from mutatui.engine.mutations import Mutation, check_value, parse_kind, weight_dtype
from mutatui.engine.sites import Site
from mutatui.errors import MutatuiError
from mutatui.screening.samplers import Sampler, SiteList

SHARD_CHUNK = 64
FIXED_WORK = 0.2
"""The part of a mutation's cost that runs every layer whatever its own (decoding on from a
divergence, naive checks), as a share of the model's layers. On SmolLM2 (30 layers) a tile
mutation of layer 28 costs about a quarter of one of layer 4: (2 + 6) / (26 + 6)."""


@dataclass(frozen=True)
class Shard:
    """Part `index` (1-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, mutation_id: int) -> bool:
        return (mutation_id // SHARD_CHUNK) % self.count == self.index - 1

    def size(self, total: int) -> int:
        """How many of the ids 0..total-1 this shard owns."""
        full_rounds, rest = divmod(total, SHARD_CHUNK * self.count)
        before = (self.index - 1) * SHARD_CHUNK
        return full_rounds * SHARD_CHUNK + min(max(rest - before, 0), SHARD_CHUNK)

    def ids(self, total: int, start: int = 0) -> Iterator[int]:
        """The ids this shard owns in `start..total-1`, ascending."""
        chunk = start // SHARD_CHUNK
        chunk += (self.index - 1 - chunk) % self.count
        while chunk * SHARD_CHUNK < total:
            first = max(chunk * SHARD_CHUNK, start)
            yield from range(first, min((chunk + 1) * SHARD_CHUNK, total))
            chunk += self.count


WHOLE = Shard(1, 1)

_SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> Shard:
    match = _SHARD_PATTERN.match(text)
    if match is None:
        raise MutatuiError(f"bad shard {text!r}; valid: K/N with 1 <= K <= N, e.g. 2/8")
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise MutatuiError(f"bad shard {text!r}; K must be between 1 and N")
    return Shard(index, count)


class Plan:
    """Every mutation of a spec on a model, addressable by id."""

    def __init__(
        self,
        catalog: MatrixCatalog,
        matrices: Sequence[MatrixInfo],
        sampler: Sampler,
        kinds: Sequence[str],
    ) -> None:
        if not kinds:
            raise MutatuiError("no kinds to screen; valid: max, min, zero, or a number")
        self.kinds = [parse_kind(kind) for kind in kinds]
        self.sampler = sampler
        listed = sampler.resolved(catalog) if isinstance(sampler, SiteList) else None
        if listed is not None:
            matrices = [info for info in catalog if (info.layer, info.name) in listed]
        self._listed = listed
        self.layer_count = catalog.num_layers
        self.matrices = list(matrices)
        if not self.matrices:
            raise MutatuiError("the spec selects no matrices; check layers and matrices")
        first = self.matrices[0]
        for _kind, value in self.kinds:
            check_value(value, weight_dtype(catalog, first.layer, first.name))
        self._offsets = [0]
        for info in self.matrices:
            self._offsets.append(self._offsets[-1] + self._site_count(info) * len(self.kinds))
        if not len(self):
            raise MutatuiError(
                f"the sites select nothing in the {len(self.matrices)} matrices chosen (the "
                f"first, L{first.layer}.{first.name}, is {first.rows}x{first.cols}); check the "
                "sampler's offsets, or choose other matrices"
            )

    def _site_count(self, info: MatrixInfo) -> int:
        if self._listed is not None:
            return len(self._listed[(info.layer, info.name)])
        return self.sampler.count(info)

    def _site(self, info: MatrixInfo, index: int) -> Site:
        if self._listed is not None:
            return self._listed[(info.layer, info.name)][index]
        return self.sampler.site_at(info, index)

    def __len__(self) -> int:
        return self._offsets[-1]

    def matrix_of(self, mutation_id: int) -> MatrixInfo:
        return self.matrices[bisect.bisect_right(self._offsets, mutation_id) - 1]

    def mutation_at(self, mutation_id: int) -> Mutation:
        if not 0 <= mutation_id < len(self):
            raise IndexError(mutation_id)
        position = bisect.bisect_right(self._offsets, mutation_id) - 1
        info = self.matrices[position]
        site_index, kind_index = divmod(mutation_id - self._offsets[position], len(self.kinds))
        kind, value = self.kinds[kind_index]
        return Mutation(self._site(info, site_index), kind, value)

    def work(self, mutation_ids: Iterable[int]) -> float:
        """The mutations' expected cost in decoder-layer passes, for the ETA: the layers from
        each one's own up (teacher forcing and the choice assay run only those) plus a fixed
        `FIXED_WORK` share of the model's layers."""
        fixed = FIXED_WORK * self.layer_count
        return sum(self.layer_count - self.matrix_of(i).layer + fixed for i in mutation_ids)

    def batch_fill(self, size: int) -> int:
        """The rows of the batch a mutation of the whole plan sits in, on average, in batches
        of at most `size` (`batches` never spans two matrices, so a matrix with few mutations
        fills few rows)."""
        squares = 0
        for first, stop in itertools.pairwise(self._offsets):
            full, rest = divmod(stop - first, size)
            squares += full * size * size + rest * rest
        return max(1, round(squares / max(len(self), 1)))

    def batches(
        self, shard: Shard = WHOLE, *, start: int = 0, size: int = 32
    ) -> Iterator[list[tuple[int, Mutation]]]:
        """The shard's mutations from id `start` on, in batches of at most `size` that never
        span two matrices (the fast engine works one matrix at a time)."""
        batch: list[tuple[int, Mutation]] = []
        matrix: MatrixInfo | None = None
        for mutation_id in shard.ids(len(self), start):
            info = self.matrix_of(mutation_id)
            if batch and (len(batch) >= size or info is not matrix):
                yield batch
                batch = []
            matrix = info
            batch.append((mutation_id, self.mutation_at(mutation_id)))
        if batch:
            yield batch
