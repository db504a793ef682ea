"""SIGTERM during a run stops it as Ctrl-C does: the driver's loop sees a ``KeyboardInterrupt``
(``Terminated``), and ``drive`` turns it into ``RunTerminated``."""

import contextlib
import signal
import threading
from typing import Any, Iterator

__all__ = ["Terminated", "sigterm_stops_the_run"]


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run: stops it as Ctrl-C does; ``drive`` turns it into ``RunTerminated``."""

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum


@contextlib.contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """While the run goes on, SIGTERM acts as Ctrl-C (main thread only; the old handler comes back)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
