"""A live run: the baseline and one mutant decoded in one batched pass per step, streamed.

`LiveSession.run` is meant for a worker thread. It delivers `LiveUpdate`s through a callback,
throttled so that a UI repaints at most ~30 times a second however fast tokens come; the first
mutant token and the end are always delivered at once. Cancellation is checked between steps.

Exactness: the streamed rows come from `stream_batch` (per-sample deltas, the weights are never
written). When the stream ends, a row with a near tie is settled on the naive path
(`decoding.settle`: edit the weight, generate, restore), so the final result is what editing the
weight and calling `generate` gives. Either way the weights end bit-exactly as they were: a
`SiteGuard` snapshots the mutated site before the run and checks it afterwards, however the run
ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from enum import StrEnum

import torch

from mutatui.engine.compare import first_divergence
from mutatui.engine.decoding import (
    Decoding,
    Generation,
    decode_tokens,
    encode_prompt,
    settle,
    stream_batch,
)
from mutatui.engine.matrices import MatrixCatalog
from mutatui.engine.models import LoadedModel
from mutatui.engine.mutations import Mutation

REFRESH_INTERVAL = 1 / 30
"""Seconds between two deliveries of streamed tokens (at most ~30 repaints per second)."""


class RunStatus(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class LiveRequest:
    """What to run: a prompt (plain text), one mutation, and how to decode."""

    prompt: str
    mutation: Mutation
    decoding: Decoding
    chat: bool = True


@dataclass(frozen=True)
class PaneText:
    """A continuation as text, split where it leaves the other one (`diverged` is empty if not)."""

    same: str
    diverged: str
    stopped: bool


@dataclass(frozen=True)
class LiveUpdate:
    """A snapshot of the run, delivered to the UI: everything so far, not a delta."""

    baseline: PaneText
    mutant: PaneText
    diverge_at: int | None
    steps: int
    elapsed: float
    final: bool = False
    status: RunStatus | None = None
    settled_naively: bool = False


@dataclass
class LiveResult:
    """How a run ended. `baseline` and `mutant` hold the tokens produced (partial if cancelled)."""

    request: LiveRequest
    prompt_tokens: list[int]
    status: RunStatus
    baseline: Generation = field(default_factory=Generation)
    mutant: Generation = field(default_factory=Generation)
    diverge_at: int | None = None
    first_token_seconds: float | None = None
    stream_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    steps: int = 0
    error: str | None = None

    @property
    def tokens_per_second(self) -> float | None:
        """Mutant tokens streamed per second (the stream only, not the naive settling)."""
        if self.steps == 0 or self.stream_seconds <= 0:
            return None
        return self.steps / self.stream_seconds


class Throttle:
    """Says when an update is due: the first one at once, then at most one per `interval`."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


class SiteGuard:
    """A copy of a mutation's site taken before a run, to prove the weights are unchanged after.

    The live path never writes weights (per-sample deltas) and the naive path restores them
    itself; this is the independent check of both. `restore` puts the saved values back and
    says whether it had to (which would be a bug worth reporting, not a silent fix).
    """

    def __init__(self, catalog: MatrixCatalog, mutation: Mutation) -> None:
        site = mutation.site
        self._weight = catalog.weight(site.layer, site.matrix)
        self._site = site
        self._saved = self._weight[site.rows, site.cols].detach().clone()

    def restore(self) -> bool:
        current = self._weight[self._site.rows, self._site.cols]
        if _same_bits(current, self._saved):
            return False
        with torch.no_grad():
            self._weight[self._site.rows, self._site.cols] = self._saved
        return True


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality (NaN payloads and signed zeros included)."""
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class LiveSession:
    """A loaded model ready for live runs. One run at a time: a new run waits for the old one
    to stop (it does so at its next step once cancelled), so runs never overlap on the model."""

    def __init__(self, lm: LoadedModel, catalog: MatrixCatalog | None = None) -> None:
        self.lm = lm
        self.catalog = catalog or MatrixCatalog(lm.model)
        self._lock = threading.Lock()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no run holds the model (after a cancel, or when the app quits)."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True

    def pane_text(self, tokens: list[int], diverge_at: int | None, stopped: bool) -> PaneText:
        if diverge_at is None:
            return PaneText(decode_tokens(self.lm, tokens), "", stopped)
        return PaneText(
            decode_tokens(self.lm, tokens[:diverge_at]),
            decode_tokens(self.lm, tokens[diverge_at:]),
            stopped,
        )

    def snapshot(self, result: LiveResult, started: float, *, final: bool) -> LiveUpdate:
        baseline, mutant = result.baseline, result.mutant
        return LiveUpdate(
            baseline=self.pane_text(baseline.tokens, result.diverge_at, baseline.stopped),
            mutant=self.pane_text(mutant.tokens, result.diverge_at, mutant.stopped),
            diverge_at=result.diverge_at,
            steps=result.steps,
            elapsed=time.perf_counter() - started,
            final=final,
            status=result.status if final else None,
            settled_naively=baseline.settled_naively or mutant.settled_naively,
        )

    def run(
        self,
        request: LiveRequest,
        on_update: Callable[[LiveUpdate], None],
        cancelled: Callable[[], bool] = lambda: False,
        *,
        interval: float = REFRESH_INTERVAL,
    ) -> LiveResult:
        """Stream baseline and mutant; return how it ended. Never raises for a failed run:
        the error is in `result.error` (one line) and the final update says FAILED."""
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            result = LiveResult(request, [], RunStatus.COMPLETED)
            guard = SiteGuard(self.catalog, request.mutation)
            try:
                self._stream(request, result, on_update, cancelled, Throttle(interval), started)
                if result.status is RunStatus.COMPLETED:
                    self._settle(request, result, cancelled)
            except Exception as error:
                result.status = RunStatus.FAILED
                result.error = _one_line(error)
            finally:
                if guard.restore():
                    result.status = RunStatus.FAILED
                    result.error = f"weights of {request.mutation.site} were changed; restored"
            result.elapsed_seconds = time.perf_counter() - started
            on_update(self.snapshot(result, started, final=True))
            return result

    def _stream(
        self,
        request: LiveRequest,
        result: LiveResult,
        on_update: Callable[[LiveUpdate], None],
        cancelled: Callable[[], bool],
        throttle: Throttle,
        started: float,
    ) -> None:
        result.prompt_tokens = encode_prompt(self.lm, request.prompt, chat=request.chat)
        generations: list[Generation] = []
        steps = stream_batch(
            self.lm,
            self.catalog,
            result.prompt_tokens,
            [None, request.mutation],
            request.decoding,
            generations,
        )
        # closing(): a cancelled stream must remove its hooks now, not when garbage-collected.
        with closing(steps):
            for step in steps:
                result.baseline, result.mutant = generations
                result.steps = step.index + 1
                if result.first_token_seconds is None:
                    result.first_token_seconds = time.perf_counter() - started
                if result.diverge_at is None:
                    result.diverge_at = first_divergence(
                        result.baseline.tokens, result.mutant.tokens
                    )
                if throttle.due():
                    on_update(self.snapshot(result, started, final=False))
                if cancelled():
                    result.status = RunStatus.CANCELLED
                    break
        result.stream_seconds = time.perf_counter() - started

    def _settle(
        self, request: LiveRequest, result: LiveResult, cancelled: Callable[[], bool]
    ) -> None:
        """Redo a row on the naive path when its batched decoding had a near tie."""
        args = (self.lm, self.catalog, result.prompt_tokens)
        result.baseline = settle(*args, None, request.decoding, result.baseline)
        if cancelled():
            result.status = RunStatus.CANCELLED
            return
        result.mutant = settle(*args, request.mutation, request.decoding, result.mutant)
        result.diverge_at = first_divergence(result.baseline.tokens, result.mutant.tokens)
