"""How a mutatui process ends: signals, and the loss of its terminal.

SIGTERM and SIGHUP end a command as Ctrl-C does: `Stopped` (a KeyboardInterrupt) is raised in
the main thread, so every `finally` runs: the batch in flight is rolled back (or was committed
whole), the screen is marked interrupted, the writer lock is released, and one line says so.

A terminal that vanishes (an SSH drop, a killed tmux window) does not always send SIGHUP: under
`make run` the terminal's hangup reaches make, not mutatui, and the process would live on,
holding the model and the GPU. So a watcher thread asks the terminal every second whether it is
still there and raises SIGHUP itself when it is gone; if the process has not ended
`GRACE_SECONDS` later (a forward pass that does not return to Python, an app that cannot
restore a dead terminal), it ends at once, which loses nothing committed.

A process started with SIGHUP ignored (`nohup`, `screen --detach`) is left to outlive its
terminal, as the user asked; but not an app (the explorer, live mode), which can do nothing
without its terminal: it ends on the terminal's loss, or its hangup, all the same.
"""

from __future__ import annotations

import os
import signal
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
POLL_SECONDS = 1.0
GRACE_SECONDS = 10.0


class Stopped(KeyboardInterrupt):
    """The process was told to stop by `signum` (SIGTERM, SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_number(stop: KeyboardInterrupt) -> int:
    """The signal behind an interruption: a `Stopped`'s, else Ctrl-C's SIGINT."""
    return stop.signum if isinstance(stop, Stopped) else int(signal.SIGINT)


def signal_name(stop: KeyboardInterrupt) -> str:
    return signal.Signals(signal_number(stop)).name


_received: list[int] = []
_on_stop: Callable[[], None] | None = None


def interruption(error: BaseException) -> KeyboardInterrupt | None:
    """The stop behind a library call that a stop signal cut short, or None. DuckDB turns the
    KeyboardInterrupt a signal raises inside a query into `RuntimeError('Query interrupted')`:
    the stop must still end the command as a stop (one line), not as an error's traceback."""
    if not isinstance(error, RuntimeError) or "interrupted" not in str(error).lower():
        return None
    return Stopped(_received[-1]) if _received else KeyboardInterrupt()


def _stop(signum: int, frame: object) -> None:
    _received.append(signum)
    if _on_stop is None:
        raise Stopped(signum)
    import asyncio  # loaded already where an app runs

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise Stopped(signum) from None
    loop.call_soon_threadsafe(_on_stop)


def install() -> None:
    """Stop on SIGTERM and SIGHUP (unless ignored), and watch the terminal, for this process.

    Called once by the CLI; only the main thread may set signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    hangup_ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    _handle_stops()
    if not hangup_ignored:
        _watch_the_terminal()


_watching = False


def _watch_the_terminal() -> None:
    """Start the terminal's watcher, once, when the process has a terminal."""
    global _watching
    terminal = _terminal_descriptor()
    if terminal is not None and not _watching:
        _watching = True
        threading.Thread(
            target=_watch_terminal, args=(terminal,), name="mutatui-terminal", daemon=True
        ).start()


def _handle_stops() -> dict[int, object]:
    """Raise `Stopped` on each stop signal not ignored; return the handlers replaced."""
    replaced = {}
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if previous is not signal.SIG_IGN:
            replaced[signum] = previous
            signal.signal(signum, _stop)
    return replaced


@contextmanager
def handling_stops() -> Iterator[None]:
    """mutatui's stop handlers for the block, also after a library replaced them (`ray.init`
    installs its own SIGTERM handler in the driver). Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced = _handle_stops()
    try:
        yield
    finally:
        for signum, previous in replaced.items():
            signal.signal(signum, previous)


@contextmanager
def stopping_with(exit_app: Callable[[], None]) -> Iterator[None]:
    """Within the block, a stop signal calls `exit_app` on the running event loop instead of
    raising (a Textual app restores the terminal and returns); after it, the signal is raised
    as `Stopped`, so the command still ends with its status. An app cannot outlive its
    terminal, so here SIGHUP and the terminal's loss end it even where SIGHUP was ignored."""
    global _on_stop
    before = len(_received)
    _on_stop = exit_app
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGHUP) if in_main else None
    if in_main:
        signal.signal(signal.SIGHUP, _stop)
        _watch_the_terminal()
    try:
        yield
    finally:
        _on_stop = None
        if in_main:
            signal.signal(signal.SIGHUP, previous if previous is not None else signal.SIG_DFL)
    if len(_received) > before:
        raise Stopped(_received[-1])


def _terminal_descriptor() -> int | None:
    """The first of stdin, stdout and stderr that is a terminal, or None."""
    for descriptor in (0, 1, 2):
        try:
            if os.isatty(descriptor):
                return descriptor
        except OSError:
            continue
    return None


def terminal_alive(descriptor: int) -> bool:
    """False once the terminal has hung up: its attributes can no longer be read (EIO)."""
    try:
        termios.tcgetattr(descriptor)
    except (termios.error, OSError):
        return False
    return True


def _watch_terminal(descriptor: int) -> None:
    while terminal_alive(descriptor):
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(GRACE_SECONDS)
    os._exit(128 + signal.SIGHUP)
