"""Progress of a running screen on stderr: mutations done, mutations/s, ETA, phenotypes found.

On a terminal it is a live rich progress bar. Under nohup or in a log file a bar would be noise,
so there it prints one plain line every `LOG_EVERY_SECONDS`. `--quiet` shows nothing.

The ETA counts work, not mutations, when the runner says what each mutation weighs
(`Plan.work`): a screen walks the model layer by layer, and a mutation of layer 0 runs every
layer where one of the last layer runs one, so a rate measured on the first layers would put
the end days too late.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LOG_EVERY_SECONDS = 60.0


class ScreenProgress(Protocol):
    """`work` (total, done, per advance) weighs mutations for the ETA; None counts each as 1."""

    def start(
        self, total: int, done: int, phenotypes: int, work: tuple[float, float] | None = None
    ) -> None: ...
    def advance(self, mutations: int, phenotypes: int, work: float | None = None) -> None: ...
    def stop(self) -> None: ...


class Silent:
    """`--quiet`: nothing at all."""

    def start(
        self, total: int, done: int, phenotypes: int, work: tuple[float, float] | None = None
    ) -> None:
        pass

    def advance(self, mutations: int, phenotypes: int, work: float | None = None) -> None:
        pass

    def stop(self) -> None:
        pass


class _RateColumn(ProgressColumn):
    """Mutations per second since this run started (the bar itself counts work)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        ran = task.fields["mutations"] - task.fields["first"]
        if not elapsed or not ran:
            return Text("-- mut/s", style="cyan")
        return Text(f"{ran / elapsed:.3g} mut/s", style="cyan")


class Bar:
    """A live bar on a terminal."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]screen"),
            BarColumn(),
            TextColumn("{task.fields[mutations]}/{task.fields[planned]}"),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("phenotypes [bold magenta]{task.fields[phenotypes]}"),
            console=console,
            speed_estimate_period=30.0,
        )
        self._task = None
        self._phenotypes = self._mutations = 0

    def start(
        self, total: int, done: int, phenotypes: int, work: tuple[float, float] | None = None
    ) -> None:
        self._phenotypes, self._mutations = phenotypes, done
        total_work, done_work = work or (total, done)
        self._task = self._progress.add_task(
            "screen",
            total=total_work,
            completed=done_work,
            phenotypes=phenotypes,
            mutations=done,
            first=done,
            planned=total,
        )
        self._progress.start()

    def advance(self, mutations: int, phenotypes: int, work: float | None = None) -> None:
        self._phenotypes += phenotypes
        self._mutations += mutations
        self._progress.update(
            self._task,
            advance=mutations if work is None else work,
            phenotypes=self._phenotypes,
            mutations=self._mutations,
        )

    def stop(self) -> None:
        self._progress.stop()


class LogLines:
    """Plain lines for logs: progress, rate since this run started, ETA, phenotypes."""

    def __init__(
        self,
        stream: TextIO,
        every: float = LOG_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._every = every
        self._clock = clock
        self._total = self._done = self._phenotypes = self._started_at_done = 0
        self._work = [0.0, 0.0, 0.0]  # total, done, done when this run started
        self._started = self._last = 0.0

    def start(
        self, total: int, done: int, phenotypes: int, work: tuple[float, float] | None = None
    ) -> None:
        self._total, self._done, self._phenotypes = total, done, phenotypes
        self._started_at_done = done
        total_work, done_work = work or (total, done)
        self._work = [float(total_work), float(done_work), float(done_work)]
        self._started = self._last = self._clock()
        self._line()

    def advance(self, mutations: int, phenotypes: int, work: float | None = None) -> None:
        self._done += mutations
        self._phenotypes += phenotypes
        self._work[1] += mutations if work is None else work
        if self._clock() - self._last >= self._every:
            self._line()

    def stop(self) -> None:
        self._line()

    def _line(self) -> None:
        self._last = self._clock()
        elapsed = self._last - self._started
        rate = (self._done - self._started_at_done) / elapsed if elapsed > 0 else 0.0
        total_work, done_work, first_work = self._work
        work_rate = (done_work - first_work) / elapsed if elapsed > 0 else 0.0
        left = max(total_work - done_work, 0.0)
        eta = str(timedelta(seconds=round(left / work_rate))) if work_rate > 0 else "?"
        print(
            f"mutatui: screen {self._done}/{self._total} mutations, {rate:.3g} mut/s, "
            f"ETA {eta}, {self._phenotypes} phenotypes",
            file=self._stream,
            flush=True,
        )


def make_progress(*, quiet: bool) -> ScreenProgress:
    """Silent, a live bar on a terminal, or log lines when stderr is not one."""
    if quiet:
        return Silent()
    console = Console(stderr=True)
    if console.is_terminal:
        return Bar(console)
    return LogLines(sys.stderr)
