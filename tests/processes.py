"""Child processes started as a terminal or an interactive shell starts them."""

import signal


def default_stop_signals() -> None:
    """In a child before it runs its command: SIGHUP, SIGINT and SIGTERM at their defaults,
    as a login shell leaves them, whatever the test run inherited (`nohup make test` ignores
    SIGHUP, a non-interactive shell's `&` ignores SIGINT, and a child keeps an ignored signal
    ignored)."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
