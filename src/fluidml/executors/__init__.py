"""Where tasks run: in this process (``LocalExecutor``), in worker processes (``ProcessExecutor``), on
a Ray cluster (``RayExecutor``, which imports Ray only when it starts) or as Slurm jobs
(``SlurmExecutor``). The worker pool and the Slurm executor are imported on first use.

``Flow.run(executor=...)`` chooses here, in one place: a name of ``EXECUTORS``, an ``Executor``
object, or a ``WorkerPool`` (warm worker processes, pool.py). A new executor is one module plus one entry in ``EXECUTORS``.
"""

import sys
from typing import Any, Callable, Dict, Optional, Union

from fluidml.exception import RunConfigError
from fluidml.executors.base import Completion, Executor, Job, RunSettings
from fluidml.executors.local import LocalExecutor

__all__ = ["Completion", "EXECUTORS", "Executor", "Job", "LocalExecutor", "ProcessExecutor", "RayExecutor",
           "RunSettings", "SlurmExecutor", "WorkerPool", "make_executor"]


def _local(settings: RunSettings) -> Executor:
    return LocalExecutor()


def _processes(settings: RunSettings) -> Executor:
    from fluidml.executors.processes import ProcessExecutor

    return ProcessExecutor(settings.pool_size(), settings.store, settings.resource_list(), settings.start_method,
                           tmux_session=settings.tmux_session, max_panes_per_window=settings.max_panes_per_window)


def _ray(settings: RunSettings) -> Executor:
    from fluidml.executors.ray import RayExecutor

    return RayExecutor(max_in_flight=settings.num_workers or None)


def _slurm(settings: RunSettings) -> Executor:
    from fluidml.executors.slurm import SlurmExecutor

    return SlurmExecutor()  # num_workers, if given, caps its jobs in flight (see SlurmExecutor.bind)


#: ``Flow.run(executor=<name>)``: the executor each name makes for a run.
EXECUTORS: Dict[str, Callable[[RunSettings], Executor]] = {
    "local": _local, "processes": _processes, "ray": _ray, "slurm": _slurm,
}


def make_executor(choice: Optional[Union[str, Executor, Any]], settings: RunSettings) -> Executor:
    """The executor of a run: ``choice`` is a name of ``EXECUTORS``, an ``Executor`` object, or None
    (the worker pool when more than one worker is useful, else this process). The executor is bound
    to the run's settings (``Executor.bind``) before it is returned."""
    if choice is None:
        choice = "processes" if settings.pool_size() > 1 else "local"
    if isinstance(choice, Executor):
        executor = choice
    elif isinstance(choice, str) and choice in EXECUTORS:
        executor = EXECUTORS[choice](settings)
    elif _is_worker_pool(choice):  # warm workers: a fresh executor of one run on them
        executor = choice.executor_for(settings)  # type: ignore[union-attr]
    else:
        names = ", ".join(f'"{name}"' for name in EXECUTORS)
        raise RunConfigError(f"executor={choice!r} is not valid; use {names} or an Executor object such as "
                             f"fluidml.RayExecutor(address=...), fluidml.SlurmExecutor(partition=...) or a fluidml.WorkerPool(...).",
                             key="executor")
    executor.bind(settings)
    return executor


def _is_worker_pool(choice: Any) -> bool:
    pool_module = sys.modules.get("fluidml.executors.pool")  # (not imported: no pool exists)
    return pool_module is not None and isinstance(choice, pool_module.WorkerPool)


def __getattr__(name: str) -> Any:
    # imported on first use: `import fluidml` stays light, and so does a Slurm job's start-up
    if name == "RayExecutor":
        from fluidml.executors.ray import RayExecutor

        return RayExecutor
    if name == "ProcessExecutor":
        from fluidml.executors.processes import ProcessExecutor

        return ProcessExecutor
    if name == "SlurmExecutor":
        from fluidml.executors.slurm import SlurmExecutor

        return SlurmExecutor
    if name == "WorkerPool":
        from fluidml.executors.pool import WorkerPool

        return WorkerPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
