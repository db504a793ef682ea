"""The driver loop, shared by every executor: it plans the run (``planner.plan_tasks``: what runs
and why, one read of each task's stored info), asks the scheduler what may run, prepares each
task's bookkeeping, hands jobs to the executor, feeds completions back to the scheduler, and tells
the observers (logging, progress displays) what happened. It never looks inside an executor.

At dispatch a cached task completes from its plan without reading the store again. A task that
runs is checked once more in a store that other processes may write too (``process_safe``): its
stored info as it is then, and which of its predecessors really ran.
"""

import dataclasses
import heapq
import time
import traceback
from typing import Dict, List, Optional, Sequence, Set, Tuple

from fluidml._sigterm import Terminated, sigterm_stops_the_run
from fluidml.exception import RunTerminated, StoreUnavailableError
from fluidml.executors.base import Executor, Job
from fluidml.identity import Record, with_known_hash
from fluidml.planner import PlanEntry, Planned, plan_tasks, replan
from fluidml.run_summary import RunObserver, RunSummary, describe_store, record_failure  # noqa: F401 (flow)
from fluidml.runner import Outcome, PredecessorRef, attempt_record, plan_task, reset_run
from fluidml.scheduler import Scheduler
from fluidml.storage._claims import Claims, claims_for
from fluidml.storage.base import ResultsStore
from fluidml.task import Task, TaskState

__all__ = ["RunObserver", "RunSummary", "drive"]  # (RunObserver, RunSummary and describe_store: run_summary)


def _apply(task: Task, outcome: Outcome) -> None:
    """Copies what the run reported onto the driver's Task (a no-op for in-process runs)."""
    task.state = outcome.state
    task.run_name = outcome.run_name or task.run_name
    task.sweep_counter = outcome.sweep_counter
    task.run_history = outcome.run_history
    if not outcome.cached:
        task.started, task.ended = outcome.started, outcome.ended


#: Seconds before a driver looks again at a task that another driver holds (doubling up to the max).
RECHECK_FIRST, RECHECK_MAX = 0.1, 1.0


class _Run:
    """The state of one run of the driver loop.

    Besides the scheduler's sets it keeps: ``timers`` (a heap of (time, task id): failed attempts
    waiting for their retry, and tasks held by another driver waiting to be looked at again; both
    stay "running" in the scheduler until their time, then go back to its ready queue),
    ``retry_jobs`` (task id -> its job, for tasks whose next attempt is due) and ``deferred``
    (task id -> its predecessors' addresses, for tasks another driver holds).
    """

    def __init__(self, tasks: Sequence[Task], store: ResultsStore, summary: RunSummary,
                 exit_on_error: bool, observers: Sequence[RunObserver], cache: str = "config",
                 default_retries: int = 0):
        self.tasks = tasks
        self.store = store
        self.summary = summary
        self.exit_on_error = exit_on_error
        self.observers = observers
        self.default_retries = default_retries
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
        self.terminated: Optional[int] = None  # the signal that stopped the run
        self.claims: Optional[Claims] = None
        self.timers: List[Tuple[float, int]] = []
        self.jobs: Dict[int, Job] = {}  # jobs in flight of tasks that may be retried
        self.retry_jobs: Dict[int, Tuple[Job, Outcome]] = {}  # (job, last outcome) of tasks to run again
        self.deferred: Dict[int, Tuple[List[PredecessorRef], float]] = {}  # (refs, next wait)

    def make_plan(self) -> None:
        """Plans every task (one read of each stored info) and puts the plan in the summary."""
        self.plan = plan_tasks(self.tasks, self.store, self.cache, {t.name for t in self.tasks if t.force},
                               self.records)
        self.summary.plan = [PlanEntry(task.unique_name, task.name, planned.hash, planned.runs, planned.reason)
                             for task, planned in zip(self.tasks, self.plan)]

    def loop(self, executor: Executor) -> None:
        """Hands ready tasks to the executor (or completes them from the store) until none is left.

        Ctrl-C (and SIGTERM) stops handing out tasks; the executor stops those in flight (they
        become KILLED), tasks that never started stay pending, and the run ends with
        ``KeyboardInterrupt``.
        """
        try:
            self._loop(executor)
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):
                self.terminated = exc.signum
            self.scheduler.stop()
            for completion in executor.cancel():
                self.complete(completion.task_id, completion.outcome)
            for task_id in sorted(self.scheduler.running - set(self.retry_jobs)):  # never started here
                self.scheduler.retry(task_id)
                self.tasks[task_id].state = TaskState.PENDING
            if self.stop_error is None:
                self.stop_error = exc

    def _loop(self, executor: Executor) -> None:
        in_flight = 0
        while True:
            if self.timers:
                self._wake()
            while in_flight < executor.capacity and self.scheduler.has_ready():
                task = self._dispatch(self.scheduler.pop_ready(), executor)
                if task is None:
                    continue
                in_flight += 1
                for observer in self.observers:
                    observer.task_submitted(task)
            wait = self.timers[0][0] - time.monotonic() if self.timers and not self.scheduler.stopped else None
            if in_flight == 0:
                if wait is None:
                    return
                time.sleep(max(0.0, wait))
                continue
            completion = executor.next_completed() if wait is None else executor.next_completed(max(0.0, wait))
            if completion is None:
                continue
            in_flight -= 1
            self.complete(completion.task_id, completion.outcome)

    def _wake(self) -> None:
        """Tasks whose timer is due go back to the scheduler's ready queue."""
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            self.scheduler.retry(heapq.heappop(self.timers)[1])

    def _dispatch(self, task_id: int, executor: Executor) -> Optional[Task]:
        """Hands a task the scheduler gave out to the executor (or lets the executor take back a task
        it still runs for an earlier driver); returns it, or None when it completed from the store or
        another driver holds it. A task's next attempt starts in a cleared run."""
        task = self.tasks[task_id]
        task.state = TaskState.SCHEDULED
        if task_id in self.retry_jobs:
            job = self.retry_jobs.pop(task_id)[0]
            reset_run(task, self.store)
            self.jobs[task_id] = job
            executor.submit(job)
            return task
        deferred = task_id in self.deferred
        refs, recheck = self.deferred.pop(task_id) if deferred else (self._prepare(task_id, task), RECHECK_FIRST)
        if not deferred and self._resumes(executor) and executor.resume(Job(task_id, task, refs, self.store,
                                                                             "resumed")):
            task.state = TaskState.RUNNING  # started by an earlier driver; neither planned nor submitted
            self.submitted.add(task_id)
            return task
        planned = self.plan[task_id]
        try:
            if planned.runs and self.claims is not None and not self.claims.claim(task.name, task.unique_name,
                                                                                   task._uc()):
                cached: Optional[Outcome] = Outcome(TaskState.PENDING, reason="held by another driver")
            else:
                if planned.runs and (self.store.process_safe or deferred):  # (after the claim: another
                    planned = self._recheck(task_id, task)                  # driver may have run it meanwhile)
                    if not planned.runs and self.claims is not None:
                        self.claims.release(task.name, task._uc())
                cached = plan_task(task, refs, self.store, planned)
        except StoreUnavailableError as exc:  # nothing can run: stop, the task never started
            self._stop(exc)
            task.state = self.summary.states[task.unique_name] = TaskState.PENDING
            return None
        except Exception as exc:  # e.g. a full disk while creating its run: the task fails
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            cached = Outcome(TaskState.FAILED, error=exc, traceback=trace, reason="planning")
        self.plan[task_id] = planned._replace(stored=None)  # (acted on: the task holds what it needs)
        if cached is not None:
            if cached.state == TaskState.PENDING:  # another driver runs it: look again later
                self.deferred[task_id] = (refs, min(RECHECK_MAX, 2 * recheck))
                heapq.heappush(self.timers, (time.monotonic() + recheck, task_id))
            else:
                self.complete(task_id, cached)
            return None
        self.ran[task_id] = planned.reason
        self.submitted.add(task_id)
        job = Job(task_id, task, refs, self.store, planned.reason)
        if (self.default_retries if task._requests is None else self._retries(task)) > 0:
            task._attempts = []  # (attempts are recorded for tasks that may retry)
            self.jobs[task_id] = job
        else:
            task._attempts = None
        executor.submit(job)
        return task

    @staticmethod
    def _resumes(executor: Executor) -> bool:
        """Whether the executor can take back tasks of an earlier driver (most never do)."""
        return type(executor).resume is not Executor.resume

    def _retries(self, task: Task) -> int:
        requests = task._requests
        return self.default_retries if requests is None else requests.retries_or(self.default_retries)

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
        """Decides again for a task planned to run (``planner.replan``), on the predecessors that
        really ran in this run (not those served from the store)."""
        ran = [self.ran.get(self.index[id(p)]) for p in task.predecessors]  # (None: served from the store)
        return replan(self.store, task, self.plan[task_id], ran, self.records.get(task.name, {"pinned": {}}),
                      self.cache)

    def _retry(self, task_id: int, outcome: Outcome) -> bool:
        """Schedules the next attempt of a failed task if it has one left and the failure is worth
        it (its worker died, or its exception is in ``retry_on``); True if it does."""
        job = self.jobs.pop(task_id, None)
        task = self.tasks[task_id]
        if job is None or task._attempts is None or self.scheduler.stopped:
            return False
        attempt, attempts = len(task._attempts) + 1, self._retries(task) + 1
        requests = task._requests
        retry_on = requests.retry_on if requests is not None else ()
        if attempt >= attempts or not (outcome.lost or isinstance(outcome.error, retry_on)):
            return False
        task._attempts.append(attempt_record(attempt, outcome.error, outcome.started, outcome.ended))
        wait = requests.retry_wait(attempt + 1) if requests is not None else 0.0
        for observer in self.observers:
            observer.task_retried(task, outcome, attempt + 1, attempts, wait)
        reason = job.reason.partition("; attempt ")[0]
        self.retry_jobs[task_id] = (dataclasses.replace(job, reason=f"{reason}; attempt {attempt + 1} of {attempts}"),
                                    outcome)
        heapq.heappush(self.timers, (time.monotonic() + wait, task_id))
        return True

    def status(self, task_id: int, text: str) -> None:
        """The executor's news about where a submitted task stands, passed to the observers."""
        for observer in self.observers:
            observer.task_status(self.tasks[task_id], text)

    def complete(self, task_id: int, outcome: Outcome) -> None:
        """Takes a task's outcome: updates the task, the scheduler and the summary; tells observers.
        A PENDING outcome is a job the executor never started: it goes back to the ready queue."""
        task = self.tasks[task_id]
        if outcome.state == TaskState.PENDING:
            self.scheduler.retry(task_id)
            task.state = TaskState.PENDING
            return
        if self.jobs:
            if outcome.state == TaskState.FAILED and self._retry(task_id, outcome):
                return
            self.jobs.pop(task_id, None)
        _apply(task, outcome)
        if self.claims is not None and not outcome.cached:
            self.claims.release(task.name, task._uc())
        self.summary.states[task.unique_name] = outcome.state
        lost_ids: List[int] = []
        if outcome.state == TaskState.FINISHED:
            self.scheduler.finished(task_id)
            self.finished += 1
            self.summary.cached += outcome.cached
        else:
            record_failure(self.summary, task, outcome)
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

    def end(self) -> None:
        """Settles what the loop left when it stopped: tasks held by another driver were not run
        here (pending); tasks still waiting for another attempt end FAILED (their last attempt's
        outcome), their successors pending. Releases the claims."""
        for task_id in self.deferred:
            if task_id in self.scheduler.running:
                self.scheduler.retry(task_id)
                self.tasks[task_id].state = TaskState.PENDING
        for task_id, (_, outcome) in sorted(self.retry_jobs.items()):
            task = self.tasks[task_id]
            _apply(task, outcome)
            if self.claims is not None:
                self.claims.release(task.name, task._uc())
            self.summary.states[task.unique_name] = outcome.state
            record_failure(self.summary, task, outcome)
            for observer in self.observers:
                observer.task_ended(task, outcome, self.finished, len(self.tasks))
        self.retry_jobs.clear()
        if self.claims is not None:
            self.claims.close()


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
    decision. A failure stops
    handing out new tasks when ``exit_on_error`` is set (a kill always does); the first such
    error is then re-raised after running tasks have reported back. A failed attempt runs again
    as its ``Requests`` say (retries; ``executor.default_retries`` when they do not). On a store
    that keeps claims, each task this run executes is claimed first, so that drivers sharing the
    store run it once. SIGTERM stops the run as Ctrl-C does and raises ``RunTerminated``.
    """
    run = _Run(tasks, store, summary, exit_on_error, observers, cache, getattr(executor, "default_retries", 0))
    for task in tasks:
        task.state = TaskState.PENDING
    try:
        with sigterm_stops_the_run():
            planning_error: Optional[BaseException] = None
            try:
                run.make_plan()
            except Exception as exc:  # a store that cannot be read fails the run here, before anything started
                planning_error = run.stop_error = exc
            for observer in observers:
                observer.run_started(summary)
            try:
                if planning_error is None:
                    run.claims = claims_for(store, summary.run_name)
                    executor.report_status = run.status
                    with executor:
                        run.loop(executor)
            finally:
                executor.report_status = None
                run.end()
                run.settle()
                summary.duration = time.monotonic() - summary.started
                for observer in observers:
                    observer.run_ended(summary)
    except Terminated as exc:
        raise RunTerminated(exc.signum) from None
    if isinstance(run.stop_error, Terminated):  # (SIGTERM while a task ran in this process)
        run.terminated = run.stop_error.signum
    if run.terminated is not None:
        raise RunTerminated(run.terminated) from None
    if run.stop_error is not None:
        raise run.stop_error
    return summary
