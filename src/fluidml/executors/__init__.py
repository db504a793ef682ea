"""Where tasks run: in this process (``LocalExecutor``) or in worker processes (``ProcessExecutor``)."""

from fluidml.executors.base import Completion, Executor, Job
from fluidml.executors.local import LocalExecutor
from fluidml.executors.processes import ProcessExecutor

__all__ = ["Completion", "Executor", "Job", "LocalExecutor", "ProcessExecutor"]
