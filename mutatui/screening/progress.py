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
from collections import deque
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
)
from rich.text import Text

LOG_EVERY_SECONDS = 60.0
ETA_WINDOW_SECONDS = 1800.0
"""The log lines' ETA rates the work of the last half hour (the whole run while it is shorter),
so a pause (a suspended process, another job on the cores) stops counting once it is past."""


class ScreenProgress(Protocol):
    """`work` (total, done, per advance) weighs mutations for the ETA; None counts each as 1."""

    def start(
        self, total: int, done: int, phenotypes: int, work: tuple[float, float] | None = None
    ) -> None: ...
    def advance(self, mutations: int, phenotypes: int, work: float | None = None) -> None: ...
    def stop(self) -> None: ...
    def note(self, message: str) -> None:
        """One line worth knowing before the run (say, which engine path it takes)."""

    def step(self, what: str, done: int, total: int) -> None:
        """Where the start-up is (an `engine.steps.StepHook`), before the first batch."""


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

    def note(self, message: str) -> None:
        pass

    def step(self, what: str, done: int, total: int) -> None:
        pass


class WorkRate:
    """Work per second over the last `ETA_WINDOW_SECONDS` (the whole run while it is shorter):
    what both the bar's and the log lines' ETA divide by."""

    def __init__(self, now: float, work: float) -> None:
        self._samples: deque[tuple[float, float]] = deque([(now, work)])
        self._work = work

    def add(self, now: float, work: float) -> None:
        self._work = work
        self._samples.append((now, work))

    def per_second(self, now: float) -> float:
        """Work per second since the last sample at or before the window's start."""
        while len(self._samples) > 1 and self._samples[1][0] <= now - ETA_WINDOW_SECONDS:
            self._samples.popleft()
        since, first = self._samples[0]
        return (self._work - first) / (now - since) if now > since else 0.0

    def eta(self, now: float, total: float) -> timedelta | None:
        """The time left for the rest of `total` work at this rate; None before any is done."""
        rate = self.per_second(now)
        if rate <= 0:
            return None
        return timedelta(seconds=round(max(total - self._work, 0.0) / rate))


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

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._steps = Steps(stream=console.file, clock=clock)
        self._progress = Progress(
            TextColumn("[bold]screen"),
            BarColumn(),
            TextColumn("{task.fields[mutations]}/{task.fields[planned]}"),
            _RateColumn(),
            TextColumn("ETA [progress.remaining]{task.fields[eta]}"),
            TimeElapsedColumn(),
            TextColumn("phenotypes [bold magenta]{task.fields[phenotypes]}"),
            console=console,
            speed_estimate_period=30.0,
        )
        self._task = None
        self._phenotypes = self._mutations = 0
        self._total_work = self._done_work = 0.0
        self._rate = WorkRate(clock(), 0.0)

    def start(
        self, total: int, done: int, phenotypes: int, work: tuple[float, float] | None = None
    ) -> None:
        self._phenotypes, self._mutations = phenotypes, done
        total_work, done_work = work or (total, done)
        self._total_work, self._done_work = float(total_work), float(done_work)
        self._rate = WorkRate(self._clock(), self._done_work)
        self._steps.close()
        self._task = self._progress.add_task(
            "screen",
            total=total_work,
            completed=done_work,
            phenotypes=phenotypes,
            mutations=done,
            first=done,
            planned=total,
            eta="-:--:--",
        )
        self._progress.start()

    def advance(self, mutations: int, phenotypes: int, work: float | None = None) -> None:
        """Move the bar by one batch; the ETA is known from the first (rich's own needs two
        updates within its speed window, and a screen's batches can be minutes apart)."""
        self._phenotypes += phenotypes
        self._mutations += mutations
        self._done_work += mutations if work is None else work
        now = self._clock()
        self._rate.add(now, self._done_work)
        eta = self._rate.eta(now, self._total_work)
        self._progress.update(
            self._task,
            advance=mutations if work is None else work,
            phenotypes=self._phenotypes,
            mutations=self._mutations,
            eta="-:--:--" if eta is None else str(eta),
        )

    def stop(self) -> None:
        self._progress.stop()

    def line(self) -> str:
        """The bar as it would be drawn now, in plain text."""
        console = Console(width=self._progress.console.width, no_color=True)
        with console.capture() as captured:
            console.print(self._progress.make_tasks_table(self._progress.tasks))
        return captured.get()

    def note(self, message: str) -> None:
        self._progress.console.print(f"mutatui: {message}", markup=False, highlight=False)

    def step(self, what: str, done: int, total: int) -> None:
        self._steps(what, done, total)


class LogLines:
    """Plain lines for logs: progress, mutations/s since this run started, ETA (at the rate of
    the last `ETA_WINDOW_SECONDS`), phenotypes."""

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
        self._total_work = self._done_work = 0.0
        self._rate = WorkRate(0.0, 0.0)
        self._started = self._last = 0.0
        self._steps = Steps(stream=stream, clock=clock)

    def start(
        self, total: int, done: int, phenotypes: int, work: tuple[float, float] | None = None
    ) -> None:
        self._total, self._done, self._phenotypes = total, done, phenotypes
        self._started_at_done = done
        total_work, done_work = work or (total, done)
        self._total_work, self._done_work = float(total_work), float(done_work)
        self._started = self._last = self._clock()
        self._rate = WorkRate(self._started, self._done_work)
        self._line()

    def advance(self, mutations: int, phenotypes: int, work: float | None = None) -> None:
        self._done += mutations
        self._phenotypes += phenotypes
        self._done_work += mutations if work is None else work
        now = self._clock()
        self._rate.add(now, self._done_work)
        if now - self._last >= self._every:
            self._line()

    def stop(self) -> None:
        self._line()

    def note(self, message: str) -> None:
        print(f"mutatui: {message}", file=self._stream, flush=True)

    def step(self, what: str, done: int, total: int) -> None:
        self._steps(what, done, total)

    def _line(self) -> None:
        self._last = self._clock()
        elapsed = self._last - self._started
        rate = (self._done - self._started_at_done) / elapsed if elapsed > 0 else 0.0
        left = self._rate.eta(self._last, self._total_work)
        eta = "?" if left is None else str(left)
        print(
            f"mutatui: screen {self._done}/{self._total} mutations, {rate:.3g} mut/s, "
            f"ETA {eta}, {self._phenotypes} phenotypes",
            file=self._stream,
            flush=True,
        )


class Steps:
    """What a long command is doing, and how far along (an `engine.steps.StepHook`): on a
    terminal one live line, replaced as the work moves ("naive path 12/30"); in a log a line
    when a step begins and then at most one every `LOG_EVERY_SECONDS`; nothing when quiet."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._clock = clock
        self._live = not quiet and self._stream.isatty()
        self._console = Console(file=self._stream) if self._live else None
        self._status = None
        self._what: str | None = None
        self._last = 0.0

    def __call__(self, what: str, done: int, total: int) -> None:
        if self._quiet:
            return
        line = f"{what} {done}/{total}"
        if self._console is not None:
            if self._status is None:
                self._status = self._console.status(f"mutatui: {line}")
                self._status.start()
            else:
                self._status.update(f"mutatui: {line}")
            return
        now = self._clock()
        if what != self._what or now - self._last >= LOG_EVERY_SECONDS or done == total:
            self._what, self._last = what, now
            print(f"mutatui: {line}", file=self._stream, flush=True)

    def close(self) -> None:
        """Take the live line away (before the command prints its result)."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def make_progress(*, quiet: bool) -> ScreenProgress:
    """Silent, a live bar on a terminal, or log lines when stderr is not one."""
    if quiet:
        return Silent()
    console = Console(stderr=True)
    if console.is_terminal:
        return Bar(console)
    return LogLines(sys.stderr)
