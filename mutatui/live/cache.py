"""Loaded models for live mode, kept between live screens and loaded once even when asked twice.

A load can take minutes for a large model, so it is single-flight: a second request for the
model being loaded waits for that load instead of starting another. Only the most recent model
is kept (a 7B model fills a GPU; two would not fit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from mutatui.live.session import LiveSession

LoadOptions = dict[str, object]


class SessionCache:
    """Live sessions by model spec and load options; thread-safe."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._loads: dict[tuple, threading.Lock] = {}
        self._key: tuple | None = None
        self._session: LiveSession | None = None

    @staticmethod
    def _key_of(spec: str, options: LoadOptions) -> tuple:
        return (spec, tuple(sorted((name, repr(value)) for name, value in options.items())))

    def loaded(self, spec: str, options: LoadOptions | None = None) -> LiveSession | None:
        """The session for this model if it is loaded already, without waiting."""
        with self._guard:
            if self._key == self._key_of(spec, options or {}):
                return self._session
        return None

    def get(
        self,
        spec: str,
        options: LoadOptions | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> LiveSession:
        """Load (or wait for the load already under way of) a model; raises MutatuiError."""
        from mutatui.engine.models import load_model

        options = options or {}
        key = self._key_of(spec, options)
        with self._guard:
            load_lock = self._loads.setdefault(key, threading.Lock())
        with load_lock:
            found = self.loaded(spec, options)
            if found is not None:
                return found
            session = LiveSession(load_model(spec, progress=progress, **options))
            with self._guard:
                self._key, self._session = key, session
            return session

    def keep(self, session: LiveSession, options: LoadOptions | None = None) -> None:
        """Remember a session loaded elsewhere (e.g. a model the app already had)."""
        with self._guard:
            self._key, self._session = self._key_of(session.lm.name, options or {}), session


SESSIONS = SessionCache()
"""The process's live sessions: every live screen shares it unless given another."""
