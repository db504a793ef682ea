"""What the driver reports about a run: the ``RunSummary`` it fills in, and the ``RunObserver`` hooks
it calls (logging and progress displays are observers)."""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List

from fluidml.exception import error_text
from fluidml.planner import PlanEntry
from fluidml.runner import Outcome
from fluidml.task import Task, TaskState

__all__ = ["RunObserver", "RunSummary", "describe_store", "record_failure"]


@dataclass
class RunSummary:
    """What a run did, for the closing report and for observers."""

    run_name: str
    project_name: str
    total: int
    store: str = ""
    executor: str = ""
    states: Dict[str, TaskState] = field(default_factory=dict)
    cached: int = 0
    failures: List[tuple] = field(default_factory=list)  # (unique name, first line of the error)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0
    plan: List[PlanEntry] = field(default_factory=list)  # what runs and why, planned at the start

    def counts(self) -> Dict[str, int]:
        """The number of tasks per final state (state values as keys)."""
        return dict(Counter(TaskState(s).value for s in self.states.values()))


class RunObserver:
    """Hooks called by the driver; subclass and override what you need (all do nothing here)."""

    def run_started(self, summary: RunSummary) -> None:
        """The run starts; ``summary`` holds its name and task count."""

    def task_submitted(self, task: Task) -> None:
        """A task was handed to the executor."""

    def task_status(self, task: Task, status: str) -> None:
        """Where a submitted task stands on a cluster changed, e.g. a Slurm job went from
        "PENDING (Priority)" to "RUNNING on node3" (executors that know report it)."""

    def task_ended(self, task: Task, outcome: Outcome, finished: int, total: int) -> None:
        """A task finished, was found in the store (``outcome.cached``), failed or was killed;
        ``finished`` counts the tasks finished so far."""

    def task_upstream_failed(self, task: Task, failed: Task) -> None:
        """A task will not run because ``failed``, one of its ancestors, failed."""

    def task_retried(self, task: Task, outcome: Outcome, attempt: int, attempts: int, wait: float) -> None:
        """An attempt of a task failed (``outcome``) and attempt number ``attempt`` of at most
        ``attempts`` follows in ``wait`` seconds."""

    def run_ended(self, summary: RunSummary) -> None:
        """The run is over (also after an error)."""


def record_failure(summary: RunSummary, task: Task, outcome: Outcome) -> None:
    """Adds a failed (or killed) task and the first line of its error to ``summary.failures``."""
    error = outcome.error
    text = f"{type(error).__name__}: {error_text(error)}" if error is not None else str(outcome.state.value)
    summary.failures.append((task.unique_name, text.strip().splitlines()[0] if text.strip() else text))


def describe_store(store: Any) -> str:
    """A short description of where results are stored, for the run summary."""
    base_dir = getattr(store, "base_dir", None)
    return f"{type(store).__name__}({base_dir})" if base_dir else type(store).__name__
