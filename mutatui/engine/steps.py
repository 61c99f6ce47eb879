"""How long work reports where it is: `steps("naive path", 12, 30)` after each of 30.

The engine, the exact engine and screening call such a hook from their long loops (a doctor's
sample, an estimate's, a screen's start-up); the commands pass one that draws it
(`screening.progress.Steps`). The hook must be cheap: it is called once per unit of work.
"""

from __future__ import annotations

from collections.abc import Callable

StepHook = Callable[[str, int, int], None]
"""(what is being done, how many units are done, of how many)."""


def no_steps(what: str, done: int, total: int) -> None:
    """The hook of a caller that shows nothing."""
