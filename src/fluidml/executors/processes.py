"""The worker-pool executor: runs jobs in worker processes and waits on their pipes, never polls.

Each worker owns a duplex pipe. A job goes down the pipe (the task without its graph links,
pickled with cloudpickle); the outcome, log records, printed output and calls to a store that
lives in this process come back up. The parent waits on all pipes and process sentinels at once,
so a worker that dies (SIGKILL, segfault, out of memory) is noticed at once and its task fails with
an error that says so (``outcome.lost``: the driver may run it again); the run goes on with a fresh
worker. Each worker leads its own process group, and the parent ends the whole group whenever it
ends a worker, so nothing a task started outlives it; workers follow the parent when it dies (see
worker.py). A task's timeout is enforced inside its worker, which dies of SIGALRM when the task
does not stop within the grace period; the parent reports that as ``TaskTimeoutError``.
"""

import importlib
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Callable, Deque, Dict, List, Optional

from fluidml import _timeouts
from fluidml.exception import TaskFailedError
from fluidml.executors import _pickling
from fluidml.executors._shipping import SpecTable, unshippable_kwarg
from fluidml.executors._tmux import TmuxPanes
from fluidml.executors._worker_io import CALL, DONE, FATAL, JOB, LOG, OUTPUT, READY, REPLY, RUN, SPECS
from fluidml.executors._workers import WorkerProcess, WorkerSet, kill_group, worker_resources
from fluidml.executors.base import Completion, Executor, Job
from fluidml.executors.parent_store import answer_call, apply_writes, snapshot
from fluidml.runner import Outcome
from fluidml.storage.base import ResultsStore
from fluidml.task import TaskState

__all__ = ["ProcessExecutor", "worker_resources"]

logger = logging.getLogger(__name__)

#: Seconds a worker may take to end its task after Ctrl-C before it is killed.
INTERRUPT_GRACE = 10.0


class ProcessExecutor(Executor):
    """Runs jobs in ``num_workers`` worker processes, started on the first job.

    Args:
        num_workers: The number of worker processes.
        store: The run's results store. A ``process_safe`` store is pickled to each worker; any
            other one stays in this process and workers reach it through their pipes.
        resources: The resources to hand out, one per worker (see ``worker_resources``).
        start_method: ``"spawn"``, ``"fork"`` or ``"forkserver"`` (used through a context only).
        tmux_session: A tmux session name to show each worker's log in a pane of, or None.
        max_panes_per_window: Panes per tmux window.
        workers: Workers that outlive this run (a ``WorkerPool``'s); ``num_workers``, ``resources``
            and ``start_method`` are then theirs. By default the run starts its own, stopped at its end.
        on_shutdown: Called when the run is over (a ``WorkerPool`` is free again).
    """

    def __init__(self, num_workers: int, store: ResultsStore, resources: Optional[List[Any]] = None,
                 start_method: str = "spawn", tmux_session: Optional[str] = None, max_panes_per_window: int = 4,
                 workers: Optional[WorkerSet] = None, on_shutdown: Optional[Callable[[], None]] = None):
        self._set = workers if workers is not None else WorkerSet(num_workers, resources, start_method)
        self._owns_workers = workers is None
        self._on_shutdown = on_shutdown
        self.capacity = self._set.size
        kept = "" if self._owns_workers else ", kept warm"
        self.description = f"on {self.capacity} worker processes ({self._set.start_method}{kept})"
        self._store = store
        self._store_in_workers = bool(getattr(store, "process_safe", False))
        self._tmux_session = tmux_session
        self._max_panes = max_panes_per_window
        self._tmux: Optional[TmuxPanes] = None
        self._idle: Deque[WorkerProcess] = deque()
        self._completions: Deque[Completion] = deque()
        self._specs = SpecTable()
        self._run_setups: List[bytes] = []  # per worker slot: the run's store and log settings, pickled
        self._started = False
        self._cancelled = False  # after Ctrl-C, workers go with what their tasks started
        self._interrupted: List[WorkerProcess] = []  # workers whose task Ctrl-C interrupted

    # ------------------------------------------------------------------------------ life cycle

    def _ensure_started(self) -> None:
        """Starts every missing worker at once (they boot in parallel; jobs wait in their pipes meanwhile)."""
        if self._started:
            return
        self._started = True
        if self._tmux_session is not None:
            self._tmux = TmuxPanes.open(self._tmux_session, self.capacity, self._max_panes)
        store_for_workers = self._store if self._store_in_workers else None
        for slot in range(self.capacity):
            setup = {"store": store_for_workers, "log_level": logging.getLogger().getEffectiveLevel(),
                     "log_file": self._tmux.log_files[slot] if self._tmux is not None else None}
            try:
                self._run_setups.append(_pickling.dumps(setup))
            except Exception as exc:
                raise TypeError(f"The results store {type(self._store).__name__} cannot be sent to a worker process: "
                                f"{exc}") from exc
        self._set.fill()
        self._idle.extend(worker for worker in self._set.workers if worker.job is None)
        if self._set.start_method != "fork" and "fluidml._task_models" not in sys.modules:
            # pydantic (for the TaskResults a run returns) loads while this process waits for its
            # workers, not after the run. Never with fork: a fork while a thread imports could copy
            # a held import lock into the new worker.
            threading.Thread(target=importlib.import_module, args=("fluidml._task_models",), daemon=True,
                             name="fluidml-preload").start()

    def shutdown(self) -> None:
        """Workers of this run: asks idle ones to exit and terminates busy ones; a background thread
        waits for them and kills any that outlive ``EXIT_GRACE``, so ``run()`` returns at once and no
        process is left behind. After Ctrl-C (``cancel``), every worker's group is killed at once.
        A pool's workers stay, except those that still had a task or were interrupted: they are
        killed with their groups, and replaced when the next run starts."""
        if self._owns_workers:
            self._set.stop(kill=self._cancelled, wait_for_exit=False)
        else:
            for worker in list(self._set.workers):
                if worker.job is not None or worker in self._interrupted:
                    self._set.discard(worker)
                worker.serving = None
        self._idle.clear()
        self._interrupted = []
        if self._tmux is not None:
            self._tmux.close()
            self._tmux = None
        if self._on_shutdown is not None:
            self._on_shutdown()

    # ------------------------------------------------------------------------------------ jobs

    def submit(self, job: Job) -> None:
        self._ensure_started()
        try:
            if job.task._spec is not None:
                self._specs.add(job.task._spec)
            prefetched = None if self._store_in_workers else snapshot(self._store, job.task, job.predecessors)
            buffers: List[Any] = []  # large inputs, sent raw after the job (not copied into it)
            payload = _pickling.dumps((self._specs.shippable(job), job.predecessors, job.reason, prefetched), buffers)
        except Exception as exc:
            error = TypeError(unshippable_kwarg(job.task, "a worker process") or (
                f'Task "{job.task.unique_name}" cannot be sent to a worker process: {exc}. Its class or function, '
                f"config and resources must be picklable (cloudpickle); run with num_workers=1 otherwise."
            ))
            self._completions.append(Completion(job.task_id, Outcome(TaskState.FAILED, error=error, reason=job.reason,
                                                                     traceback=f"TypeError: {error}\n")))
            return
        worker = self._idle.popleft()
        worker.job = job
        try:
            if worker.serving is not self:  # its first job of this run
                worker.conn.send((RUN, self._run_setups[worker.slot]))
                worker.serving, worker.specs_sent = self, 0
            if worker.specs_sent < len(self._specs.specs):
                worker.conn.send((SPECS, self._specs.payload))
                worker.specs_sent = len(self._specs.specs)
            _pickling.send_with_buffers(worker.conn, (JOB, job.task_id, payload), buffers)
        except OSError:  # it died while booting: reported when its sentinel fires
            pass

    def next_completed(self, timeout: Optional[float] = None) -> Optional[Completion]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._completions:
            if deadline is None:
                self._wait()
            elif deadline <= time.monotonic():
                return None
            else:
                self._wait(deadline - time.monotonic())
        return self._completions.popleft()

    def cancel(self) -> List[Completion]:
        """Ctrl-C: interrupts the running tasks (SIGINT), waits a little for them to report (KILLED
        or finished), then kills the workers that did not. Returns every outstanding completion;
        jobs of workers that were still starting never ran and are not reported."""
        self._cancelled = True
        self._interrupted = [worker for worker in self._set.workers if worker.job is not None]
        for worker in self._interrupted:
            if not worker.ready:  # its task never started: killed (with its group) and forgotten
                self._set.discard(worker)
            else:
                _signal(worker, signal.SIGINT)
        deadline = time.monotonic() + INTERRUPT_GRACE
        try:
            while any(w.job is not None for w in self._set.workers) and time.monotonic() < deadline:
                self._wait(timeout=deadline - time.monotonic())
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting
        for worker in self._set.workers:
            if worker.job is not None:
                kill_group(worker)
                self._fail(worker, KeyboardInterrupt(), TaskState.KILLED)
        completions = list(self._completions)
        self._completions.clear()
        return completions

    # ------------------------------------------------------------------------ parent-side events

    def _wait(self, timeout: Optional[float] = None) -> None:
        """Blocks until a worker sends something or dies, and handles it."""
        by_object: Dict[Any, WorkerProcess] = {}
        for worker in self._set.workers:
            by_object[worker.conn] = worker
            by_object[worker.process.sentinel] = worker
        for ready in wait(list(by_object), timeout):
            worker = by_object[ready]
            if worker not in self._set.workers:
                continue  # replaced while handling an earlier event of this round
            if ready is worker.conn:
                self._receive(worker)
            elif not worker.conn.poll():  # died, and nothing left to read from it
                self._died(worker)

    def _receive(self, worker: WorkerProcess) -> None:
        """Handles every message waiting in the worker's pipe."""
        while worker in self._set.workers and worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                self._died(worker)
                return
            kind = message[0]
            if kind == DONE:
                _, task_id, outcome_data, writes_data, sizes = message
                buffers = _pickling.receive_buffers(worker.conn, sizes)
                job, worker.job = worker.job, None
                self._idle.append(worker)
                outcome = _unpack_outcome(outcome_data, job)
                self._apply_writes(writes_data, buffers, outcome)
                self._completions.append(Completion(task_id, outcome))
                return  # a job's last message (what follows is seen by the next wait: one poll less per task)
            elif kind == LOG:
                record = message[1]
                logging.getLogger(record.name).handle(record)
            elif kind == OUTPUT:
                _write_output(worker.name, message[1], message[2])
            elif kind == CALL:
                ok, value = answer_call(self._store, message[2])
                worker.conn.send((REPLY, message[1], ok, value))
            elif kind == READY:
                worker.ready = True
            elif kind == FATAL:
                raise RuntimeError(f"Worker process {worker.name} could not start:\n{message[1]}")

    def _apply_writes(self, data: bytes, buffers: List[bytearray], outcome: Outcome) -> None:
        """Applies what a task wrote to a store of this process; if that fails, the task fails."""
        try:
            writes = pickle.loads(data, buffers=buffers)
            if isinstance(writes, Exception):
                raise writes
            apply_writes(self._store, writes)
        except Exception as exc:  # the store cannot record the task: the run stops
            outcome.state, outcome.error, outcome.store_failed = TaskState.FAILED, exc, True
            outcome.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def _died(self, worker: WorkerProcess) -> None:
        """A worker process ended unasked: its task fails (killed after its timeout's grace, or lost
        with its worker), what the task started is ended, and a fresh worker takes its place."""
        self._set.discard(worker)  # (killed with its group, then joined: its exit code tells how it ended)
        if worker in self._idle:
            self._idle.remove(worker)
        job = worker.job
        limit = job.task._requests.timeout if job is not None and job.task._requests is not None else None
        if job is not None and limit is not None and worker.process.exitcode == -signal.SIGALRM:
            error = _timeouts.overtime_error(job.task.unique_name, limit, _timeouts.TIMEOUT_GRACE)
            self._fail(worker, error, TaskState.FAILED)
        elif job is not None:
            self._fail(worker, TaskFailedError(_death_message(worker)), TaskState.FAILED, lost=True)
        else:
            logger.warning("%s", _death_message(worker))
        self._idle.append(self._set.spawn(worker.slot))

    def _fail(self, worker: WorkerProcess, error: BaseException, state: TaskState, lost: bool = False) -> None:
        job = worker.job
        assert job is not None
        worker.job = None
        if isinstance(error, TaskFailedError):
            error.task_name = job.task.unique_name
        text = f"{type(error).__name__}: {error}\n"
        outcome = Outcome(state, reason=job.reason, error=error, traceback=text, lost=lost)
        self._completions.append(Completion(job.task_id, outcome))


def _death_message(worker: WorkerProcess) -> str:
    code = worker.process.exitcode
    job = worker.job
    task = f'task "{job.task.unique_name}"' if job is not None else "no task"
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGKILL": " (killed: e.g. `kill -9` or the out-of-memory killer)",
                "SIGSEGV": " (a segmentation fault in native code)"}.get(name, "")
        how = f"was ended by {name}{hint}"
    else:
        how = f"exited with code {code}"
    return f"Worker process {worker.name} (pid {worker.process.pid}) {how} while running {task}."


def _signal(worker: WorkerProcess, signum: int) -> None:
    try:
        os.kill(worker.process.pid, signum)
    except (ProcessLookupError, TypeError):
        pass


def _unpack_outcome(data: bytes, job: Optional[Job]) -> Outcome:
    try:
        outcome: Outcome = pickle.loads(data)
        return outcome
    except Exception as exc:
        name = job.task.unique_name if job is not None else "?"
        error = TaskFailedError(f'Task "{name}": its outcome could not be read back from the worker: {exc}',
                                task_name=name)
        return Outcome(TaskState.FAILED, error=error, traceback=f"TaskFailedError: {error}\n")


def _write_output(worker: str, stream: str, text: str) -> None:
    """Writes a worker's printed text to this process's stdout/stderr, each line labelled."""
    target = sys.stdout if stream == "stdout" else sys.stderr
    lines = text.splitlines(keepends=True)
    target.write("".join(f"[{worker}] {line}" for line in lines))
    target.flush()
