"""Progress lines for long work: shown on a terminal, silent otherwise or with --quiet."""
from __future__ import annotations

import sys
import time


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
