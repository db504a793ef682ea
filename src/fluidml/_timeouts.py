"""Task timeouts inside the process that runs the task: ``SIGALRM`` from ``setitimer``, no thread
and no polling.

At the deadline the alarm raises ``TaskTimeoutError`` in the task, so its ``finally`` blocks run.
If the task is still running ``grace`` seconds later (it caught the error, or sits in native code),
the second alarm ends it: a worker process dies of ``SIGALRM`` (the kernel's default action, which
works even inside C code; the executor reports it as a timeout), while the calling process, which
must live on, raises ``Overtime`` instead, an exception that ``except Exception`` does not catch.
"""

import contextlib
import signal
import threading
import time
from typing import Any, Iterator

from fluidml.exception import TaskTimeoutError

__all__ = ["TIMEOUT_GRACE", "Overtime", "can_interrupt_here", "deadline", "overtime_error", "seconds_text",
           "timeout_error"]

#: Seconds a task gets to stop after its timeout interrupted it, before it is killed.
TIMEOUT_GRACE = 10.0


class Overtime(BaseException):
    """The second interrupt of a task in the calling process that did not stop after its timeout."""


def can_interrupt_here() -> bool:
    """True where a timer signal can interrupt a task: the main thread of a POSIX process."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def seconds_text(seconds: float) -> str:
    """``90 s``, ``0.5 s``."""
    return f"{seconds:g} s"


def timeout_error(task_name: str, limit: float) -> TaskTimeoutError:
    """The error raised in a task at its deadline."""
    return TaskTimeoutError(f'Task "{task_name}" exceeded its timeout of {seconds_text(limit)} (Requests(timeout=...)) '
                            f"and was interrupted.", task_name=task_name, limit=limit)


def overtime_error(task_name: str, limit: float, grace: float, how: str = "killed") -> TaskTimeoutError:
    """The error of a task that did not stop within the grace period after its deadline."""
    return TaskTimeoutError(f'Task "{task_name}" exceeded its timeout of {seconds_text(limit)} (Requests(timeout=...)) '
                            f"and did not stop within {seconds_text(grace)} of the interrupt; it was {how}.",
                            task_name=task_name, limit=limit)


@contextlib.contextmanager
def deadline(task_name: str, limit: float, grace: float, worker: bool) -> Iterator[None]:
    """Interrupts the code inside after ``limit`` seconds, then ends it after ``grace`` more (see
    the module docstring; ``worker``: this process may die). Main thread only."""
    fired = False

    def on_alarm(signum: int, frame: Any) -> None:
        nonlocal fired
        if fired:
            raise Overtime
        fired = True
        if worker:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the next alarm ends this process
        signal.setitimer(signal.ITIMER_REAL, grace)
        raise timeout_error(task_name, limit)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    old_delay, _ = signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay:  # someone else's timer was running: it goes on
            signal.setitimer(signal.ITIMER_REAL, max(0.001, old_delay - (time.monotonic() - started)))
