"""fluidml: machine-learning pipelines as graphs of tasks, with grid search, result caching and
parallel runs.

The public names live where the API reference puts them: ``fluidml`` (below), ``fluidml.task``,
``fluidml.storage``, ``fluidml.exception``. They are imported on first access (module
``__getattr__``), so ``import fluidml`` is quick and loads no store, executor or optional library
that a program does not use.
"""

from typing import TYPE_CHECKING, Any, List

if TYPE_CHECKING:
    from fluidml.run_summary import RunObserver, RunSummary
    from fluidml.executors.pool import WorkerPool
    from fluidml.executors.ray import RayExecutor
    from fluidml.executors.slurm import SlurmExecutor
    from fluidml.flow import Flow
    from fluidml.logging import configure_logging
    from fluidml.planner import PlanEntry
    from fluidml.results import sweep_table
    from fluidml.task import Task
    from fluidml.task_requests import Allocation, Requests
    from fluidml.task_spec import TaskSpec

__version__ = "0.5.0"

__all__ = [
    "Allocation", "Flow", "PlanEntry", "RayExecutor", "Requests", "RunObserver", "RunSummary", "SlurmExecutor",
    "Task", "TaskSpec", "WorkerPool", "__version__", "configure_logging", "sweep_table",
]

#: The module each public name is imported from, on first access.
_LAZY = {
    "Allocation": "fluidml.task_requests", "Flow": "fluidml.flow", "PlanEntry": "fluidml.planner",
    "RayExecutor": "fluidml.executors.ray", "Requests": "fluidml.task_requests", "RunObserver": "fluidml.run_summary",
    "RunSummary": "fluidml.run_summary", "SlurmExecutor": "fluidml.executors.slurm", "Task": "fluidml.task",
    "TaskSpec": "fluidml.task_spec", "WorkerPool": "fluidml.executors.pool", "configure_logging": "fluidml.logging",
    "sweep_table": "fluidml.results",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
