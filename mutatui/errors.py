"""The one error type the user sees: a single line that says what was wrong and what is valid."""


class MutatuiError(Exception):
    """A user-facing error. The CLI prints `mutatui: <message>` and exits with status 2."""
