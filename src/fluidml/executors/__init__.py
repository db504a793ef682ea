"""Where tasks run: in this process (``LocalExecutor``), and more to come as separate modules."""

from fluidml.executors.base import Completion, Executor, Job
from fluidml.executors.local import LocalExecutor

__all__ = ["Completion", "Executor", "Job", "LocalExecutor"]
