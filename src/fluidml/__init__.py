"""fluidml: machine-learning pipelines as graphs of tasks, with grid search, result caching and
parallel runs.

The public names live where the API reference puts them: ``fluidml`` (below), ``fluidml.task``,
``fluidml.storage``, ``fluidml.exception``.
"""

from typing import TYPE_CHECKING, Any

from fluidml.driver import RunObserver, RunSummary
from fluidml.executors.ray import RayExecutor
from fluidml.flow import Flow
from fluidml.logging import configure_logging
from fluidml.planner import PlanEntry
from fluidml.task import Task
from fluidml.task_requests import Allocation, Requests
from fluidml.task_spec import TaskSpec

if TYPE_CHECKING:
    from fluidml.executors.pool import WorkerPool
    from fluidml.executors.slurm import SlurmExecutor

__version__ = "0.4.0"

__all__ = [
    "Allocation", "Flow", "PlanEntry", "RayExecutor", "Requests", "RunObserver", "RunSummary", "SlurmExecutor",
    "Task", "TaskSpec", "WorkerPool", "__version__", "configure_logging", "sweep_table",
]


def __getattr__(name: str) -> Any:
    if name == "SlurmExecutor":  # imported on first use: `import fluidml` stays light
        from fluidml.executors.slurm import SlurmExecutor

        return SlurmExecutor
    if name == "sweep_table":  # fluidml.results is imported on first use (pandas only when a table is made)
        from fluidml.results import sweep_table

        return sweep_table
    if name == "WorkerPool":  # warm worker processes; the process machinery is imported on first use
        from fluidml.executors.pool import WorkerPool

        return WorkerPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
