"""Worker threads that leave signals to the main thread.

The kernel delivers a process-directed signal (Ctrl-C's SIGINT, a SIGTERM) to any thread that
does not block it, while Python runs signal handlers only on the main thread. A signal that
lands on a worker therefore waits until the main thread next runs Python code: a main thread
asleep or blocked in a system call does not wake, and irc's "interrupted, nothing written"
exit comes late or not at all. Threads started inside :func:`signals_blocked_while_starting`
inherit a mask that blocks those signals, so the kernel hands them to the main thread.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_KEPT_FOR_MAIN = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def signals_blocked_while_starting() -> Iterator[None]:
    """Start threads inside this block; the caller's own mask is restored on leaving, so a
    signal arriving meanwhile is only deferred to that moment, never lost."""
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "pthread_sigmask")):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _KEPT_FOR_MAIN)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
