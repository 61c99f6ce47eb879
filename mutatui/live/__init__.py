"""Live mode, engine side: one mutation and the baseline decoded together, streamed, cancellable.

No UI and no SQL here: the TUI drives a `LiveSession` from a worker thread and the store saves
what it returns.
"""
