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
from fluidml.runner import Outcome, PredecessorRef, plan_task
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
    executor: str = ""
    states: Dict[str, TaskState] = field(default_factory=dict)
    cached: int = 0
    failures: List[tuple] = field(default_factory=list)  # (unique name, first line of the error)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0

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

    def run_ended(self, summary: RunSummary) -> None:
        """The run is over (also after an error)."""


def _apply(task: Task, outcome: Outcome) -> None:
    """Copies what the run reported onto the driver's Task (a no-op for in-process runs)."""
    task.state = outcome.state
    task.run_name = outcome.run_name or task.run_name
    task.sweep_counter = outcome.sweep_counter
    task.run_history = outcome.run_history
    if not outcome.cached:
        task.started, task.ended = outcome.started, outcome.ended


class _Run:
    """The state of one run of the driver loop."""

    def __init__(self, tasks: Sequence[Task], store: ResultsStore, summary: RunSummary,
                 exit_on_error: bool, observers: Sequence[RunObserver]):
        self.tasks = tasks
        self.store = store
        self.summary = summary
        self.exit_on_error = exit_on_error
        self.observers = observers
        self.index = {id(task): i for i, task in enumerate(tasks)}
        self.scheduler = Scheduler([[self.index[id(p)] for p in task.predecessors] for task in tasks])
        self.unprepared = [len(succs) for succs in self.scheduler.successors]  # successors not yet prepared
        self.finished = 0
        self.stop_error: Optional[BaseException] = None

    def loop(self, executor: Executor) -> None:
        """Hands ready tasks to the executor (or completes them from the store) until none is left.

        Ctrl-C stops handing out tasks; the executor stops those in flight (they become KILLED),
        and the run ends with ``KeyboardInterrupt``.
        """
        try:
            self._loop(executor)
        except KeyboardInterrupt as exc:
            self.scheduler.stop()
            for completion in executor.cancel():
                self.complete(completion.task_id, completion.outcome)
            if self.stop_error is None:
                self.stop_error = exc

    def _loop(self, executor: Executor) -> None:
        in_flight = 0
        resumes = type(executor).resume is not Executor.resume  # (most executors never resume anything)
        while True:
            while in_flight < executor.capacity and self.scheduler.has_ready():
                task_id = self.scheduler.pop_ready()
                task = self.tasks[task_id]
                task.state = TaskState.SCHEDULED
                predecessors = self._prepare(task)
                if resumes and executor.resume(Job(task_id, task, predecessors, self.store, "resumed")):
                    task.state = TaskState.RUNNING  # started by an earlier driver; neither planned nor submitted
                else:
                    cached, reason = plan_task(task, predecessors, self.store)
                    if cached is not None:
                        self.complete(task_id, cached)
                        continue
                    executor.submit(Job(task_id, task, predecessors, self.store, reason))
                in_flight += 1
                for observer in self.observers:
                    observer.task_submitted(task)
            if in_flight == 0:
                return
            completion = executor.next_completed()
            in_flight -= 1
            self.complete(completion.task_id, completion.outcome)

    def _prepare(self, task: Task) -> List[PredecessorRef]:
        """Hashes the task's unique config and collects its predecessors' addresses; forgets the
        predecessors' configs once all their successors have theirs (deep graphs stay small)."""
        preds = task.predecessors
        if len(preds) == 1 and task._uc_own is not None and type(preds[0]._unique_config) is HashedConfig:
            unique_config = hashed_child_config(preds[0]._unique_config, task.name, task._uc_own)
        else:
            unique_config = hashed_config(task._uc())
        task._unique_config = unique_config
        task.unique_config_hash = unique_config.hash
        refs = [PredecessorRef(p.name, p.unique_name, p._uc(), p.run_history) for p in preds]
        for pred_id in {self.index[id(p)] for p in preds}:
            self.unprepared[pred_id] -= 1
            if self.unprepared[pred_id] == 0:
                self.tasks[pred_id]._release_unique_config()
        return refs

    def status(self, task_id: int, text: str) -> None:
        """The executor's news about where a submitted task stands, passed to the observers."""
        for observer in self.observers:
            observer.task_status(self.tasks[task_id], text)

    def complete(self, task_id: int, outcome: Outcome) -> None:
        """Takes a task's outcome: updates the task, the scheduler and the summary; tells observers."""
        task = self.tasks[task_id]
        _apply(task, outcome)
        self.summary.states[task.unique_name] = outcome.state
        lost_ids: List[int] = []
        if outcome.state == TaskState.FINISHED:
            self.scheduler.finished(task_id)
            self.finished += 1
            self.summary.cached += outcome.cached
        else:
            _record_failure(self.summary, task, outcome)
            lost_ids = self.scheduler.failed(task_id)
            if (outcome.state == TaskState.KILLED or self.exit_on_error) and self.stop_error is None:
                self.scheduler.stop()
                self.stop_error = outcome.error
                if self.stop_error is not None and hasattr(self.stop_error, "add_note"):
                    self.stop_error.add_note(f'fluidml: task "{task.unique_name}" {outcome.state.value}; '
                                             f'run "{self.summary.run_name}" stopped.')
        for observer in self.observers:
            observer.task_ended(task, outcome, self.finished, len(self.tasks))
        for lost_id in lost_ids:
            lost = self.tasks[lost_id]
            lost.state = self.summary.states[lost.unique_name] = TaskState.UPSTREAM_FAILED
            for observer in self.observers:
                observer.task_upstream_failed(lost, task)


def drive(
    tasks: Sequence[Task],
    executor: Executor,
    store: ResultsStore,
    summary: RunSummary,
    exit_on_error: bool = True,
    observers: Sequence[RunObserver] = (),
) -> RunSummary:
    """Runs ``tasks`` (in task order, predecessors first) to completion on ``executor``.

    Tasks whose finished run is in the store complete without being dispatched. A failure stops
    handing out new tasks when ``exit_on_error`` is set (a kill always does); the first such
    error is then re-raised after running tasks have reported back.
    """
    run = _Run(tasks, store, summary, exit_on_error, observers)
    for task in tasks:
        task.state = TaskState.PENDING
    for observer in observers:
        observer.run_started(summary)
    executor.report_status = run.status
    try:
        with executor:
            run.loop(executor)
    finally:
        executor.report_status = None
        for task_id in run.scheduler.pending:
            summary.states.setdefault(tasks[task_id].unique_name, TaskState.PENDING)
        summary.duration = time.monotonic() - summary.started
        for observer in observers:
            observer.run_ended(summary)
    if run.stop_error is not None:
        raise run.stop_error
    return summary


def _record_failure(summary: RunSummary, task: Task, outcome: Outcome) -> None:
    error = outcome.error
    text = f"{type(error).__name__}: {error}" if error is not None else str(outcome.state.value)
    summary.failures.append((task.unique_name, text.strip().splitlines()[0] if text.strip() else text))


def describe_store(store: Any) -> str:
    """A short description of where results are stored, for the run summary."""
    base_dir = getattr(store, "base_dir", None)
    return f"{type(store).__name__}({base_dir})" if base_dir else type(store).__name__
