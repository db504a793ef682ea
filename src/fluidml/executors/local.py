"""The in-process executor: runs each job in the calling process, one at a time."""

from collections import deque
from typing import Deque

from fluidml.executors.base import Completion, Executor, Job
from fluidml.runner import run_task

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Runs jobs sequentially in this process (no subprocess, no pickling)."""

    capacity = 1
    description = "in this process"

    def __init__(self) -> None:
        self._jobs: Deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._jobs.append(job)

    def next_completed(self) -> Completion:
        job = self._jobs.popleft()
        return Completion(job.task_id, run_task(job.task, job.predecessors, job.store, job.reason))
