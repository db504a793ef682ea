"""Tasks for the retry, timeout, signal and claim tests (module-level, so every executor imports them).

Attempts are counted in files (``counter``: a directory), so that they add up across worker processes.
"""

import os
import signal
import time
from pathlib import Path

from fluidml.exception import TaskTimeoutError


def _attempt(counter: str) -> int:
    """Records one attempt in ``counter`` (a directory) and returns its number (1, 2, ...)."""
    path = Path(counter)
    path.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        try:
            os.close(os.open(path / f"attempt-{number}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return number
        except FileExistsError:
            number += 1


def flaky(counter, fails, task, error="ConnectionError"):
    """Saves what it was given on every attempt, then raises ``error`` on its first ``fails``
    attempts; succeeds after that."""
    number = _attempt(counter)
    task.save(number, f"left_by_attempt_{number}")
    if number <= fails:
        raise {"ConnectionError": ConnectionError, "ValueError": ValueError}[error](f"refused on attempt {number}")
    task.save(number, "succeeded_on")


def die_first(counter, task):
    """Kills its own worker process on the first attempt; succeeds on the next."""
    if _attempt(counter) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    task.save("survived", "status")


def sleeper(marker, task, seconds=120.0):
    """Sleeps; writes to ``marker`` when it starts and what ended it, then saves its pid."""
    path = Path(marker)
    path.write_text("started")
    started = time.monotonic()
    try:
        time.sleep(seconds)
        path.write_text("slept")
    except TaskTimeoutError:
        path.write_text(f"interrupted after {time.monotonic() - started:.2f}")
        raise
    task.save(os.getpid(), "pid")


def stubborn(marker, task):
    """Ignores the interrupt of its timeout and sleeps on; records that it did."""
    path = Path(marker)
    try:
        time.sleep(120)
    except TaskTimeoutError:
        path.write_text("ignored the interrupt")
        time.sleep(120)
    path.write_text("slept")


def quick_pid(task):
    """Saves the pid of the process it runs in."""
    task.save(os.getpid(), "pid")


def timed_flaky(counter, task):
    """Hangs past its timeout on the first attempt, finishes on the second."""
    if _attempt(counter) == 1:
        time.sleep(120)
    task.save("done", "status")


def terminate_me(task):
    """Sends SIGTERM to its own process (as `kill` would to the driver) and waits for it."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)


def sigterm_handler(task):
    """Saves the name of the SIGTERM handler its process has while it runs."""
    handler = signal.getsignal(signal.SIGTERM)
    task.save(getattr(handler, "__name__", repr(handler)), "handler")


def die_with_child(marker, task):
    """Starts a child process, records its pid in ``marker``, then kills its own worker."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(marker).write_text(str(child.pid))
    os.kill(os.getpid(), signal.SIGKILL)
