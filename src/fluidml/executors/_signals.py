"""Holding Ctrl-C (and SIGTERM, and a timeout's alarm) back for a moment, shared by the worker pool (a message cut in half would leave its
pipe unreadable) and the Slurm executor (a submitted job must be recorded before the run stops)."""

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["interrupts_deferred"]


@contextlib.contextmanager
def interrupts_deferred(enabled: bool = True) -> Iterator[None]:
    """Holds SIGINT, SIGTERM and SIGALRM (a timeout's alarm) back until the block is done (they are
    delivered right after). Only the main thread can: elsewhere, and when not ``enabled``, the block
    runs as it is."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
