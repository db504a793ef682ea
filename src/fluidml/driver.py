"""The driver loop, shared by every executor: it asks the scheduler what may run, prepares each
task's bookkeeping, hands jobs to the executor, feeds completions back to the scheduler, and tells
the observers (logging, progress displays) what happened. It never looks inside an executor.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from fluidml.config import HashedConfig, hashed_child_config, hashed_config
from fluidml.executors.base import Executor, Job
from fluidml.runner import Outcome, PredecessorRef
from fluidml.scheduler import Scheduler
from fluidml.storage.base import ResultsStore
from fluidml.task import Task, TaskState

__all__ = ["RunObserver", "RunSummary", "drive"]


@dataclass
class RunSummary:
    """What a run did, for the closing report and for observers."""

    run_name: str
    project_name: str
    total: int
    store: str = ""
    executor: str = "in this process"
    states: Dict[str, TaskState] = field(default_factory=dict)
    cached: int = 0
    failures: List[tuple] = field(default_factory=list)  # (unique name, first line of the error)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0

    def count(self, state: TaskState) -> int:
        """The number of tasks that ended in ``state``."""
        return sum(1 for s in self.states.values() if s == state)


class RunObserver:
    """Hooks called by the driver; subclass and override what you need (all do nothing here)."""

    def run_started(self, summary: RunSummary) -> None:
        """The run starts; ``summary`` holds its name and task count."""

    def task_submitted(self, task: Task) -> None:
        """A task was handed to the executor."""

    def task_ended(self, task: Task, outcome: Outcome, finished: int, total: int) -> None:
        """A task finished, was found in the store (``outcome.cached``), failed or was killed;
        ``finished`` counts the tasks finished so far."""

    def task_upstream_failed(self, task: Task, failed: Task) -> None:
        """A task will not run because ``failed``, one of its ancestors, failed."""

    def run_ended(self, summary: RunSummary) -> None:
        """The run is over (also after an error)."""


def _prepare(task: Task) -> List[PredecessorRef]:
    preds = task.predecessors
    if len(preds) == 1 and task._uc_own is not None and type(preds[0]._unique_config) is HashedConfig:
        unique_config = hashed_child_config(preds[0]._unique_config, task.name, task._uc_own)
    else:
        unique_config = hashed_config(task._uc())
    task._unique_config = unique_config
    task.unique_config_hash = unique_config.hash
    return [PredecessorRef(p.name, p.unique_name, p._uc(), p.run_history) for p in task.predecessors]


def _apply(task: Task, outcome: Outcome) -> None:
    """Copies what the run reported onto the driver's Task (a no-op for in-process runs)."""
    task.state = outcome.state
    task.run_name = outcome.run_name or task.run_name
    task.sweep_counter = outcome.sweep_counter
    task.run_history = outcome.run_history
    if not outcome.cached:
        task.started, task.ended = outcome.started, outcome.ended


def drive(
    tasks: Sequence[Task],
    executor: Executor,
    store: ResultsStore,
    summary: RunSummary,
    exit_on_error: bool = True,
    observers: Sequence[RunObserver] = (),
) -> RunSummary:
    """Runs ``tasks`` (in task order, predecessors first) to completion on ``executor``.

    A failure stops handing out new tasks when ``exit_on_error`` is set (a kill always does);
    the first such error is then re-raised after running tasks have reported back.
    """
    index = {id(task): i for i, task in enumerate(tasks)}
    scheduler = Scheduler([[index[id(p)] for p in task.predecessors] for task in tasks])
    unprepared = [len(succs) for succs in scheduler.successors]  # successors not yet prepared
    for task in tasks:
        task.state = TaskState.PENDING
    finished = 0
    in_flight = 0
    stop_error: Optional[BaseException] = None
    for observer in observers:
        observer.run_started(summary)
    try:
        with executor:
            while True:
                while in_flight < executor.capacity and scheduler.has_ready():
                    task_id = scheduler.pop_ready()
                    task = tasks[task_id]
                    task.state = TaskState.SCHEDULED
                    executor.submit(Job(task_id, task, _prepare(task), store))
                    for pred in set(map(id, task.predecessors)):
                        unprepared[index[pred]] -= 1
                        if unprepared[index[pred]] == 0:  # only kept for its successors
                            tasks[index[pred]]._release_unique_config()
                    in_flight += 1
                    for observer in observers:
                        observer.task_submitted(task)
                if in_flight == 0:
                    break
                completion = executor.next_completed()
                in_flight -= 1
                task, outcome = tasks[completion.task_id], completion.outcome
                _apply(task, outcome)
                summary.states[task.unique_name] = outcome.state
                lost_ids: List[int] = []
                if outcome.state == TaskState.FINISHED:
                    scheduler.finished(completion.task_id)
                    finished += 1
                    summary.cached += outcome.cached
                else:
                    _record_failure(summary, task, outcome)
                    lost_ids = scheduler.failed(completion.task_id)
                    if (outcome.state == TaskState.KILLED or exit_on_error) and stop_error is None:
                        scheduler.stop()
                        stop_error = outcome.error
                        if stop_error is not None and hasattr(stop_error, "add_note"):
                            stop_error.add_note(f'fluidml: task "{task.unique_name}" {outcome.state.value}; '
                                                f'run "{summary.run_name}" stopped.')
                for observer in observers:
                    observer.task_ended(task, outcome, finished, len(tasks))
                for lost_id in lost_ids:
                    lost = tasks[lost_id]
                    lost.state = summary.states[lost.unique_name] = TaskState.UPSTREAM_FAILED
                    for observer in observers:
                        observer.task_upstream_failed(lost, task)
    finally:
        for task_id in scheduler.pending:
            summary.states.setdefault(tasks[task_id].unique_name, TaskState.PENDING)
        summary.duration = time.monotonic() - summary.started
        for observer in observers:
            observer.run_ended(summary)
    if stop_error is not None:
        raise stop_error
    return summary


def _record_failure(summary: RunSummary, task: Task, outcome: Outcome) -> None:
    error = outcome.error
    text = f"{type(error).__name__}: {error}" if error is not None else str(outcome.state.value)
    summary.failures.append((task.unique_name, text.strip().splitlines()[0] if text.strip() else text))


def state_counts(summary: RunSummary) -> Dict[str, int]:
    """Number of tasks per final state (state values as keys)."""
    counts: Counter = Counter(s.value if isinstance(s, TaskState) else str(s) for s in summary.states.values())
    return dict(counts)


def describe_store(store: Any) -> str:
    """A short description of where results are stored, for the run summary."""
    base_dir = getattr(store, "base_dir", None)
    return f"{type(store).__name__}({base_dir})" if base_dir else type(store).__name__
