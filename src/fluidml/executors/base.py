"""The executor contract: run jobs somewhere and report each one back exactly once.

The driver hands an executor a ``Job`` (``submit``) and blocks on ``next_completed()`` for a
``Completion``; it never asks how or where a job runs. An in-process executor, a worker pool or a
cluster only differ in how they implement these calls.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from fluidml.runner import Outcome, PredecessorRef
from fluidml.storage.base import ResultsStore
from fluidml.task import Task

__all__ = ["Completion", "Executor", "Job", "RunSettings"]


@dataclass
class Job:
    """One planned task to run: the task (with its run bookkeeping), its predecessors' addresses,
    the store, and why it runs (for the log)."""

    task_id: int
    task: Task
    predecessors: List[PredecessorRef]
    store: ResultsStore
    reason: str = ""


@dataclass
class Completion:
    """The report of one job."""

    task_id: int
    outcome: Outcome


@dataclass
class RunSettings:
    """What ``Flow.run`` tells the executor about a run (its arguments that concern executors)."""

    run_name: str
    project_name: str
    store: ResultsStore
    #: ``num_workers`` as given to ``run()`` (None or 0: not given).
    num_workers: Optional[int]
    #: The worker count for a pool: ``num_workers`` capped by what the graph can use (computed on call).
    pool_size: Callable[[], int]
    #: ``resources`` as given to ``run()`` (None: not given).
    resources: Any = None
    start_method: str = "spawn"
    tmux_session: Optional[str] = None
    max_panes_per_window: int = 4

    def resource_list(self) -> List[Any]:
        """The resources as a list with at least one entry (``[None]`` when none were given)."""
        if self.resources is None:
            return [None]
        if not isinstance(self.resources, list):
            return [self.resources]
        return self.resources or [None]


class Executor(ABC):
    """Runs jobs; ``capacity`` of them may be in flight at once.

    Each executor enforces a task's ``Requests(timeout=...)`` (interrupt at the deadline, end after
    the grace period) and reports a job whose worker process or node died with ``outcome.lost``;
    the driver decides about retries.
    """

    capacity: int = 1
    #: Where tasks run, for the run's log (e.g. "in this process").
    description: str = ""
    #: Retries of a task whose requests do not say (``Requests(retries=None)``).
    default_retries: int = 0

    #: Set by the driver: called with (task id, text) when the executor learns where a submitted task
    #: stands on a cluster (e.g. "PENDING (Priority)", "RUNNING on node3"), for progress displays.
    report_status: Optional[Callable[[int, str], None]] = None

    def bind(self, settings: RunSettings) -> None:
        """Called by ``Flow.run`` before each run with the run's settings; raises ``RunConfigError`` for a
        setting this executor cannot honour."""

    def resume(self, job: Job) -> bool:
        """Called before a task is planned: True when this executor already has it running for an
        earlier driver (e.g. a cluster job that outlived its driver) and will report its completion like
        that of a submitted job; the driver then neither plans nor submits it."""
        return False

    def start(self) -> None:
        """Prepares the executor (e.g. starts workers); called once before the first job."""

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Accepts a job; must not block on its execution beyond the executor's own capacity."""

    @abstractmethod
    def next_completed(self, timeout: Optional[float] = None) -> Optional[Completion]:
        """Blocks until one submitted job has completed and returns its report; None if ``timeout``
        seconds passed first (the driver has a timer of its own, e.g. a retry's delay)."""

    def cancel(self) -> List[Completion]:
        """Ctrl-C: stops the jobs in flight and returns the completions of those that started
        (KILLED, or finished if they got there first); jobs that never started are not reported
        (the driver counts them as not run). Nothing runs in the background of an in-process
        executor."""
        return []

    def shutdown(self) -> None:
        """Releases what ``start`` acquired; called once, also after errors."""

    def __enter__(self) -> "Executor":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
