"""The in-process executor: runs each job in the calling process, one at a time.

A task with a timeout is interrupted by ``SIGALRM`` here when the run is driven from the main
thread of a POSIX process; otherwise (another thread, Windows) no signal can interrupt it, so it
runs in a single worker process instead (started when the first such task comes).
"""

from collections import deque
from typing import Any, Deque, List, Optional

from fluidml import _timeouts
from fluidml.executors.base import Completion, Executor, Job
from fluidml.runner import run_task

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Runs jobs sequentially in this process (no subprocess, no pickling)."""

    capacity = 1
    description = "in this process"

    def __init__(self) -> None:
        self._jobs: Deque[Job] = deque()
        self._helper: Any = None  # a one-worker ProcessExecutor for timed tasks off the main thread
        self._helper_busy = False

    def submit(self, job: Job) -> None:
        requests = job.task._requests
        if requests is not None and requests.timeout is not None and not _timeouts.can_interrupt_here():
            if self._helper is None:
                from fluidml.executors.processes import ProcessExecutor

                self._helper = ProcessExecutor(1, job.store, [job.task.resource])
            self._helper.submit(job)
            self._helper_busy = True
            return
        self._jobs.append(job)

    def next_completed(self, timeout: Optional[float] = None) -> Optional[Completion]:
        if self._helper_busy:
            completion = self._helper.next_completed(timeout)
            self._helper_busy = completion is None
            return completion
        job = self._jobs.popleft()
        return Completion(job.task_id, run_task(job.task, job.predecessors, job.store, job.reason))

    def cancel(self) -> List[Completion]:
        if not self._helper_busy:
            return []
        self._helper_busy = False
        return list(self._helper.cancel())

    def shutdown(self) -> None:
        if self._helper is not None:
            self._helper.shutdown()
            self._helper = None
