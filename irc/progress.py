"""Progress lines for long work: shown on a terminal, silent otherwise or with --quiet."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar


class Progress:
    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = time.perf_counter()

    def step(self, message: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self._start
            self.stream.write(f"\r\033[K[{elapsed:6.1f}s] {message}")
            self.stream.flush()

    def done(self, message: str = "") -> None:
        if self.enabled:
            self.stream.write("\r\033[K" + (message + "\n" if message else ""))
            self.stream.flush()

    def counter(self, label: str, total: int):
        """A callback counting items: ``cb(item_name)``."""
        seen = [0]

        def tick(item: str) -> None:
            seen[0] += 1
            self.step(f"{label} {seen[0]}/{total}: {item}")
        return tick


# ---- the reporter long-running library code writes to -----------------------------------------
# Frontends and the API call report("...") at the start of each slow stage (loading TensorFlow,
# converting, optimising, verifying); the CLI installs its Progress for the duration of a command.
# Library users see nothing unless they install one themselves.

_current: ContextVar[Progress | None] = ContextVar("irc_progress", default=None)


def report(message: str) -> None:
    """Show ``message`` as the current stage, if a Progress is installed (see :func:`reporting`)."""
    progress = _current.get()
    if progress is not None:
        progress.step(message)


@contextmanager
def reporting(progress: Progress):
    """Route :func:`report` calls made inside the block to ``progress``."""
    token = _current.set(progress)
    try:
        yield progress
    finally:
        _current.reset(token)
