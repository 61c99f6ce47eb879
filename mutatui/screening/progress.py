"""Progress of a running screen on stderr: mutations done, mutations/s, ETA, phenotypes found.

On a terminal it is a live rich progress bar. Under nohup or in a log file a bar would be noise,
so there it prints one plain line every `LOG_EVERY_SECONDS`. `--quiet` shows nothing.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
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
    def start(self, total: int, done: int, phenotypes: int) -> None: ...
    def advance(self, mutations: int, phenotypes: int) -> None: ...
    def stop(self) -> None: ...


class Silent:
    """`--quiet`: nothing at all."""

    def start(self, total: int, done: int, phenotypes: int) -> None:
        pass

    def advance(self, mutations: int, phenotypes: int) -> None:
        pass

    def stop(self) -> None:
        pass


class _RateColumn(ProgressColumn):
    """Mutations per second, averaged by rich over the last half minute."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- mut/s" if speed is None else f"{speed:.3g} mut/s", style="cyan")


class Bar:
    """A live bar on a terminal."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]screen"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("phenotypes [bold magenta]{task.fields[phenotypes]}"),
            console=console,
            speed_estimate_period=30.0,
        )
        self._task = None
        self._phenotypes = 0

    def start(self, total: int, done: int, phenotypes: int) -> None:
        self._phenotypes = phenotypes
        self._task = self._progress.add_task(
            "screen", total=total, completed=done, phenotypes=phenotypes
        )
        self._progress.start()

    def advance(self, mutations: int, phenotypes: int) -> None:
        self._phenotypes += phenotypes
        self._progress.update(self._task, advance=mutations, phenotypes=self._phenotypes)

    def stop(self) -> None:
        self._progress.stop()


class LogLines:
    """Plain lines for logs: progress, rate since this run started, ETA, phenotypes."""

    def __init__(self, stream: TextIO, every: float = LOG_EVERY_SECONDS) -> None:
        self._stream = stream
        self._every = every
        self._total = self._done = self._phenotypes = self._started_at_done = 0
        self._started = self._last = 0.0

    def start(self, total: int, done: int, phenotypes: int) -> None:
        self._total, self._done, self._phenotypes = total, done, phenotypes
        self._started_at_done = done
        self._started = self._last = time.monotonic()
        self._line()

    def advance(self, mutations: int, phenotypes: int) -> None:
        self._done += mutations
        self._phenotypes += phenotypes
        if time.monotonic() - self._last >= self._every:
            self._line()

    def stop(self) -> None:
        self._line()

    def _line(self) -> None:
        self._last = time.monotonic()
        elapsed = self._last - self._started
        rate = (self._done - self._started_at_done) / elapsed if elapsed > 0 else 0.0
        left = self._total - self._done
        eta = str(timedelta(seconds=round(left / rate))) if rate > 0 else "?"
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
