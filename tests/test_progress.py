"""Progress lines of a screen: the ETA weighs mutations by the layers they run and rates the
recent work."""

from __future__ import annotations

import io

from rich.console import Console

from mutatui.screening.progress import Bar, LogLines, Steps


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines_after(work: tuple[float, float] | None, advanced: float | None) -> str:
    """The last line after two of four mutations took 20 s."""
    clock, stream = Clock(), io.StringIO()
    progress = LogLines(stream, every=0.0, clock=clock)
    progress.start(4, 0, 0, work)
    clock.now = 20.0
    progress.advance(2, 1, advanced)
    return stream.getvalue().splitlines()[-1]


def test_eta_counts_work_not_mutations():
    """Two heavy mutations (weight 10, layer 0) done in 20 s leave two light ones (weight 1):
    2 s at the rate seen, where counting mutations would say 20 s."""
    weighted = lines_after((22.0, 0.0), 20.0)
    assert weighted == "mutatui: screen 2/4 mutations, 0.1 mut/s, ETA 0:00:02, 1 phenotypes"
    counted = lines_after(None, None)
    assert counted == "mutatui: screen 2/4 mutations, 0.1 mut/s, ETA 0:00:20, 1 phenotypes"


def test_resumed_run_rates_only_its_own_work():
    """A resumed run (half the work already done) rates what it did itself."""
    clock, stream = Clock(), io.StringIO()
    progress = LogLines(stream, every=0.0, clock=clock)
    progress.start(10, 5, 3, (100.0, 50.0))
    assert stream.getvalue().splitlines()[-1].endswith("ETA ?, 3 phenotypes")
    clock.now = 10.0
    progress.advance(1, 0, 10.0)
    assert "6/10 mutations, 0.1 mut/s, ETA 0:00:40" in stream.getvalue().splitlines()[-1]


def test_a_pause_leaves_the_eta_once_it_is_past_the_window():
    """Ten minutes at 1 work per 6 s, an hour's pause, then half an hour at the same pace: the
    ETA rates the last half hour only (1/6 per s: 590 left, 59 min), where the whole run's
    rate would say 2 h 25 min."""
    clock, stream = Clock(), io.StringIO()
    progress = LogLines(stream, every=0.0, clock=clock)
    progress.start(100, 0, 0, (1000.0, 0.0))
    for _ in range(10):
        clock.now += 60.0
        progress.advance(1, 0, 10.0)
    clock.now += 3600.0
    for _ in range(31):
        clock.now += 60.0
        progress.advance(1, 0, 10.0)
    assert stream.getvalue().splitlines()[-1].endswith("ETA 0:59:00, 0 phenotypes")


def test_the_bar_shows_an_eta_after_the_first_batch():
    """One batch of 2 of 4 weighted mutations in 20 s: the bar's ETA says 2 s at once, where
    rich's own column waits for two updates inside its speed window (a screen's batches can
    be minutes apart, so it said -:--:-- to the end)."""
    clock, out = Clock(), io.StringIO()
    bar = Bar(Console(file=out, force_terminal=True, width=200), clock=clock)
    bar.start(4, 0, 0, (22.0, 0.0))
    assert "ETA -:--:--" in bar.line()
    clock.now = 20.0
    bar.advance(2, 1, 20.0)
    assert "ETA 0:00:02" in bar.line() and "2/4" in bar.line()
    clock.now = 21.0
    bar.advance(2, 0, 2.0)
    assert "ETA 0:00:00" in bar.line()
    bar.stop()


def test_steps_in_a_log_say_each_step_once_then_at_most_a_line_a_minute():
    clock, stream = Clock(), io.StringIO()
    steps = Steps(stream=stream, clock=clock)
    steps("preparing", 0, 3)
    for done in range(1, 31):
        clock.now += 5.0
        steps("naive path", done, 30)
    steps.close()
    assert stream.getvalue().splitlines() == [
        "mutatui: preparing 0/3",
        "mutatui: naive path 1/30",
        "mutatui: naive path 13/30",  # 60 s after the step began
        "mutatui: naive path 25/30",
        "mutatui: naive path 30/30",  # its end, always
    ]
    quiet = io.StringIO()
    Steps(quiet=True, stream=quiet)("naive path", 1, 30)
    assert quiet.getvalue() == ""
