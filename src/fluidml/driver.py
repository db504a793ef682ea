"""The driver loop, shared by every executor: it plans the run (``planner.plan_tasks``: what runs
and why, one read of each task's stored info), asks the scheduler what may run, prepares each
task's bookkeeping, hands jobs to the executor, feeds completions back to the scheduler, and tells
the observers (logging, progress displays) what happened. It never looks inside an executor.

At dispatch a cached task completes from its plan without reading the store again. A task that
runs is checked once more in a store that other processes may write too (``process_safe``): its
stored info as it is then, and which of its predecessors really ran.
"""

import logging
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set

from fluidml.exception import StoreUnavailableError, error_text
from fluidml.executors.base import Executor, Job
from fluidml.identity import Record, with_known_hash
from fluidml.planner import FORCED, PlanEntry, Planned, damage_check, decide, plan_tasks, read_stored
from fluidml.runner import Outcome, PredecessorRef, plan_task
from fluidml.scheduler import Scheduler
from fluidml.storage.base import ResultsStore
from fluidml.task import Task, TaskState

__all__ = ["RunObserver", "RunSummary", "drive"]

logger = logging.getLogger("fluidml.flow")


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
                 exit_on_error: bool, observers: Sequence[RunObserver], cache: str):
        self.tasks = tasks
        self.store = store
        self.summary = summary
        self.exit_on_error = exit_on_error
        self.observers = observers
        self.index = {id(task): i for i, task in enumerate(tasks)}
        self.scheduler = Scheduler([[self.index[id(p)] for p in task.predecessors] for task in tasks])
        self.unprepared = [len(succs) for succs in self.scheduler.successors]  # successors not yet prepared
        self.finished = 0
        self.submitted: Set[int] = set()  # ids handed to the executor
        self.stop_error: Optional[BaseException] = None
        self.cache = cache
        self.records: Dict[str, Record] = {}
        for task in tasks:
            record = getattr(task._spec, "_identity_record", None)
            if record is not None:
                self.records.setdefault(task.name, record)
        self.plan: List[Planned] = []
        self.ran: Dict[int, str] = {}  # task id -> why it was dispatched

    def make_plan(self) -> None:
        """Plans every task (one read of each stored info) and puts the plan in the summary."""
        self.plan = plan_tasks(self.tasks, self.store, self.cache, {t.name for t in self.tasks if t.force},
                               self.records)
        self.summary.plan = [PlanEntry(task.unique_name, task.name, planned.hash, planned.runs, planned.reason)
                             for task, planned in zip(self.tasks, self.plan)]

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
        while True:
            while in_flight < executor.capacity and self.scheduler.has_ready():
                task_id = self.scheduler.pop_ready()
                task = self.tasks[task_id]
                task.state = TaskState.SCHEDULED
                predecessors = self._prepare(task_id, task)
                planned = self.plan[task_id]
                try:
                    if planned.runs and self.store.process_safe:  # (other processes may have changed the run)
                        planned = self._recheck(task_id, task)
                    cached = plan_task(task, predecessors, self.store, planned)
                except StoreUnavailableError as exc:  # nothing can run: stop, the task never started
                    self._stop(exc)
                    task.state = self.summary.states[task.unique_name] = TaskState.PENDING
                    continue
                except Exception as exc:  # e.g. a full disk while creating its run: the task fails
                    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                    cached = Outcome(TaskState.FAILED, error=exc, traceback=trace, reason="planning")
                self.plan[task_id] = planned._replace(stored=None)  # (acted on: the task holds what it needs)
                if cached is not None:
                    self.complete(task_id, cached)
                    continue
                self.ran[task_id] = planned.reason
                executor.submit(Job(task_id, task, predecessors, self.store, planned.reason))
                self.submitted.add(task_id)
                in_flight += 1
                for observer in self.observers:
                    observer.task_submitted(task)
            if in_flight == 0:
                return
            completion = executor.next_completed()
            in_flight -= 1
            self.complete(completion.task_id, completion.outcome)

    def _prepare(self, task_id: int, task: Task) -> List[PredecessorRef]:
        """Gives the task its unique config (with the hash the plan computed) and collects its
        predecessors' addresses; forgets the predecessors' configs once all their successors have
        theirs (deep graphs stay small)."""
        planned = self.plan[task_id]
        unique_config = with_known_hash(task, planned.hash, planned.digest)
        task.unique_config_hash = unique_config.hash
        preds = task.predecessors
        refs = [PredecessorRef(p.name, p.unique_name, p._uc(), p.run_history) for p in preds]
        for pred_id in {self.index[id(p)] for p in preds}:
            self.unprepared[pred_id] -= 1
            if self.unprepared[pred_id] == 0:
                self.tasks[pred_id]._release_unique_config()
        return refs

    def _stop(self, error: Optional[BaseException]) -> None:
        """Hands out no more tasks; the run ends with ``error`` (the first one that stopped it)."""
        self.scheduler.stop()
        if self.stop_error is None:
            self.stop_error = error

    def settle(self) -> None:
        """Gives every task a final state after the loop: tasks that never started are PENDING
        ("not run"), tasks that were handed out and never reported back are KILLED."""
        states = self.summary.states
        for task_id in self.scheduler.pending:
            states.setdefault(self.tasks[task_id].unique_name, TaskState.PENDING)
        for task_id in self.scheduler.running:
            task = self.tasks[task_id]
            if task.unique_name not in states:
                task.state = TaskState.KILLED if task_id in self.submitted else TaskState.PENDING
                states[task.unique_name] = task.state

    def _recheck(self, task_id: int, task: Task) -> Planned:
        """Decides again for a task planned to run, on its stored info as it is now and on the
        predecessors that really ran in this run (not those served from the store)."""
        planned = self.plan[task_id]
        uc = task._uc()
        stored, damaged = read_stored(self.store, task, uc, log=False)
        if damaged:
            return planned._replace(stored=stored)
        ran = [self.ran.get(self.index[id(p)]) for p in task.predecessors]  # (None: served from the store)
        upstream = list(dict.fromkeys(p.name for p, why in zip(task.predecessors, ran) if why not in (None, FORCED)))
        runs, reason, damage = decide(stored, task.name, self.records.get(task.name, {"pinned": {}}), self.cache,
                                      bool(task.force), upstream, damage_check(self.store, task, uc, log=False))
        return Planned(runs, reason, stored, planned.hash, planned.digest, damage)

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
            stops = outcome.state == TaskState.KILLED or self.exit_on_error or outcome.store_failed
            if stops and self.stop_error is None:
                self._stop(outcome.error)
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
    cache: str = "config",
) -> RunSummary:
    """Runs ``tasks`` (in task order, predecessors first) to completion on ``executor``.

    The run is planned first (``summary.plan``): tasks the planner finds cached complete without
    being dispatched. ``cache="code"`` makes the code versions recorded on the specs part of the
    decision. A failure stops handing out new tasks when ``exit_on_error`` is set (a kill always
    does); the first such error is then re-raised after running tasks have reported back.
    """
    run = _Run(tasks, store, summary, exit_on_error, observers, cache)
    for task in tasks:
        task.state = TaskState.PENDING
    planning_error: Optional[BaseException] = None
    try:
        run.make_plan()
    except Exception as exc:  # a store that cannot be read fails the run here, before anything started
        planning_error = run.stop_error = exc
    for observer in observers:
        observer.run_started(summary)
    try:
        if planning_error is None:
            with executor:
                run.loop(executor)
    finally:
        run.settle()
        summary.duration = time.monotonic() - summary.started
        for observer in observers:
            observer.run_ended(summary)
    if run.stop_error is not None:
        raise run.stop_error
    return summary


def _record_failure(summary: RunSummary, task: Task, outcome: Outcome) -> None:
    error = outcome.error
    text = f"{type(error).__name__}: {error_text(error)}" if error is not None else str(outcome.state.value)
    summary.failures.append((task.unique_name, text.strip().splitlines()[0] if text.strip() else text))


def describe_store(store: Any) -> str:
    """A short description of where results are stored, for the run summary."""
    base_dir = getattr(store, "base_dir", None)
    return f"{type(store).__name__}({base_dir})" if base_dir else type(store).__name__
