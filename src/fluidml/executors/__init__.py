"""Where tasks run: in this process (``LocalExecutor``), in worker processes (``ProcessExecutor``) or
on a Ray cluster (``RayExecutor``, which imports Ray only when it starts)."""

from fluidml.executors.base import Completion, Executor, Job
from fluidml.executors.local import LocalExecutor
from fluidml.executors.processes import ProcessExecutor
from fluidml.executors.ray import RayExecutor

__all__ = ["Completion", "Executor", "Job", "LocalExecutor", "ProcessExecutor", "RayExecutor"]
