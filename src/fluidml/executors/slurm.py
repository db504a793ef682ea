"""The Slurm executor: each ready task becomes a Slurm batch job; tasks of one spec that are ready
together become one job array (one ``sbatch`` call).

Our scheduler still decides what may run (a task is submitted once its predecessors finished);
Slurm decides where and when. The task, its spec table and its inputs' locations travel as small
files in the run's work directory, on a file system the nodes share (``_slurm_files.py``); the
job (``_slurm_job.py``) runs it with ``run_task``, saves its results in the store (one the nodes
reach) and writes its outcome next to its log. The driver watches all of the run's jobs with one
``squeue`` call per poll, at an interval that grows from 1 s to 10 s while nothing changes, and
takes each outcome when it appears; a job that ended without one fails its task with Slurm's
state and reason and the tail of its log (or runs again when it has retries left).

Ctrl-C (and SIGTERM, through the same ``cancel``) ``scancel`` the run's jobs. A driver that ends
without cancelling (SIGHUP, SIGKILL, a lost login session) leaves its jobs queued or running;
their ids are recorded by task and config, and a driver started again waits for those jobs
instead of submitting them a second time.
"""

import json
import logging
import os
import pickle
import shlex
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from fluidml.config import config_digest
from fluidml.exception import RunConfigError, TaskFailedError
from fluidml.executors import _pickling
from fluidml.executors import _slurm_cli as cli
from fluidml.executors._shipping import SpecTable
from fluidml.executors._signals import interrupts_deferred
from fluidml.executors._slurm_files import JobRecord, JobRecords, safe_name, write_atomic
from fluidml.executors._slurm_outcomes import killed
from fluidml.executors._slurm_watch import (  # noqa: F401 (OUTCOME_GRACE, POLL_*: documented here too)
    OUTCOME_GRACE, POLL_GROWTH, POLL_MAX, POLL_MIN, Flight, SlurmWatch,
)
from fluidml.executors.base import Completion, Job, RunSettings
from fluidml.runner import Outcome
from fluidml.task import TaskState

__all__ = ["SlurmExecutor"]

logger = logging.getLogger(__name__)

#: Seconds running jobs get after ``scancel`` to report (their tasks see KeyboardInterrupt).
CANCEL_GRACE = 15.0
#: The most tasks in one job array (Slurm's default MaxArraySize is 1001).
MAX_ARRAY = 1000
JOB_ENTRY = "from fluidml.executors._slurm_job import main; main()"


class SlurmExecutor(SlurmWatch):
    """Runs each task as a Slurm batch job, from a machine where ``sbatch`` works (a login node).

    Args:
        partition, account, qos: ``sbatch --partition/--account/--qos`` for every job.
        time: The time limit of jobs whose task has no ``Requests(timeout=...)``: minutes (an int)
            or Slurm's format (``"2:00:00"``, ``"1-12"``). None: the partition's default.
        sbatch: More sbatch options for every job, e.g. ``{"constraint": "a100", "exclusive": True}``.
        setup: Shell lines run before the task, e.g. ``["module load cuda/12.1", "source venv/bin/activate"]``.
        python: The Python the jobs run (default: this one, ``sys.executable``).
        work_dir: A directory the driver and the nodes share, for the jobs' logs and small files.
            Default for a ``LocalFileStore``: ``<base_dir>/.fluidml/slurm/<run_name>/``; required
            with other stores.
        max_retries: How often a task runs again when its job dies without reporting (node failure,
            preemption; not when the task raises); ``Requests.retries`` overrides it. The driver runs
            it again (as on every executor); Slurm requeues such jobs itself where it can (``--requeue``).
        max_in_flight: The most jobs submitted at once (None: ``run(num_workers=...)`` if given,
            else every ready task; Slurm queues them).
    """

    def __init__(self, partition: Optional[str] = None, account: Optional[str] = None, qos: Optional[str] = None,
                 time: Union[int, str, None] = None, sbatch: Optional[Mapping[str, Any]] = None,
                 setup: Sequence[str] = (), python: Optional[str] = None,
                 work_dir: Union[str, "os.PathLike[str]", None] = None, max_retries: int = 0,
                 max_in_flight: Optional[int] = None):
        if isinstance(setup, str) or not all(isinstance(line, str) for line in setup):
            raise RunConfigError(f"SlurmExecutor(setup=...) takes a list of shell lines, got {setup!r}.", key="setup")
        for name, value in (("max_retries", max_retries), ("max_in_flight", max_in_flight)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0 or
                                      (name == "max_in_flight" and value < 1)):
                what = "a positive" if name == "max_in_flight" else "a non-negative"
                raise RunConfigError(f"SlurmExecutor({name}=...) must be {what} int, got {value!r}.", key=name)
        named = {"partition": partition, "account": account, "qos": qos}
        self._options = [f"--{key}={value}" for key, value in named.items() if value] + cli.extra_options(sbatch)
        self.time = cli.slurm_time(time)
        self.setup = list(setup)
        self.python = python or sys.executable
        self.work_dir = work_dir
        self.max_retries = max_retries
        self.default_retries = max_retries  # (the driver retries a task whose job was lost, this often)
        self.max_in_flight = max_in_flight
        self.description = "as Slurm jobs" + (f" (partition {partition})" if partition else "")
        self._settings: Optional[RunSettings] = None

    # ------------------------------------------------------------------------------ life cycle

    def bind(self, settings: RunSettings) -> None:
        from fluidml.storage.files import LocalFileStore

        store = settings.store
        if settings.resources is not None:
            raise RunConfigError("resources= hands one value to each worker process; Slurm jobs get what they "
                                 'request instead: declare requests= on the TaskSpec or in run(requests={"task": '
                                 '{"gpus": 1}}), and read task.resource inside the task.', key="resources")
        if not getattr(store, "process_safe", False):
            raise RunConfigError(
                f'executor="slurm" needs a results store that the cluster\'s nodes reach: each task runs as a job on '
                f"another machine and saves its results there, and its successors load them from there. "
                f"{type(store).__name__} keeps results inside this process only. Pass results_store="
                f'LocalFileStore("/a/shared/directory") or a MongoDBStore.', key="results_store")
        base_dir = store.base_dir if isinstance(store, LocalFileStore) else None
        if self.work_dir is not None:
            work_dir = Path(self.work_dir)
        elif base_dir is not None:
            work_dir = Path(base_dir, ".fluidml", "slurm", settings.run_name)
        else:
            raise RunConfigError(
                f"SlurmExecutor(work_dir=...) is needed with {type(store).__name__}: a directory that this machine "
                f"and the cluster's nodes share, for the jobs' logs and the small files that carry tasks to "
                f"them.", key="work_dir")
        self._work_dir = work_dir.absolute()
        records = Path(base_dir, ".fluidml", "slurm", ".jobs") if base_dir is not None else self._work_dir / ".jobs"
        self._records = JobRecords(records.absolute())
        self._settings, self._run_name = settings, settings.run_name
        self.capacity = self.max_in_flight or settings.num_workers or sys.maxsize
        self.description = f"{self.description.split(', logs')[0]}, logs in {self._work_dir}"

    def start(self) -> None:
        if self._settings is None:
            raise RunConfigError("A SlurmExecutor runs flows through Flow.run(executor=SlurmExecutor(...)).",
                                 key="executor")
        cli.require_commands()
        self._work_dir.mkdir(parents=True, exist_ok=True)
        self._token = uuid.uuid4().hex[:8]  # this driver's files are told apart from an earlier one's
        self._run_file = f".run-{self._token}.pkl"
        try:
            store = _pickling.dumps(self._settings.store)
        except Exception as exc:
            raise RunConfigError(f"The results store cannot be sent to Slurm jobs: {exc}", key="results_store") from exc
        script_dir = os.path.abspath(sys.path[0]) if sys.path and sys.path[0] else ""
        settings = {"store": store, "log_level": logging.getLogger().getEffectiveLevel(),
                    "sys_path": [script_dir] if os.path.isdir(script_dir) else []}
        write_atomic(self._work_dir / self._run_file, pickle.dumps(settings))
        self._specs = SpecTable()
        self._specs_file, self._batches = "", 0
        self._pending: List[Flight] = []
        self._flights: Dict[int, Flight] = {}
        self._completions: Deque[Completion] = deque()
        self._prefixes: Dict[str, str] = {}
        self._cancelling = False
        self._interval, self._last_poll, self._last_warning = POLL_MIN, 0.0, 0.0
        self._adoptable = self._records.alive()  # jobs of an earlier driver, to wait for instead of submitting

    def shutdown(self) -> None:
        """Cancels the jobs still in flight (an error ended the run early) and removes this driver's
        own files; logs and outcomes stay."""
        if self._settings is None or not hasattr(self, "_flights"):
            return
        if self._flights:
            self._scancel([flight.record.job_id for flight in self._flights.values()])
            self._flights.clear()
        for path in self._work_dir.glob(f".*-{self._token}*"):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------ jobs

    def resume(self, job: Job) -> bool:
        if not self._adoptable:
            return False
        digest = config_digest(job.task._uc())
        found = self._adoptable.pop(self._records.key(job.task.name, digest), None)
        if found is None:
            return False
        record, state = found
        self._flights[job.task_id] = Flight(job, record, digest, adopted=True)
        logger.info('Slurm: task "%s" is job %s of an earlier driver (%s); waiting for it instead of submitting it '
                    "again.", job.task.unique_name, record.job_id, state.describe())
        return True

    def submit(self, job: Job) -> None:
        task = job.task
        requests = getattr(task, "_requests", None)
        try:
            options = [*self._options, *cli.request_options(task.unique_name, requests, self.time)]
            prefix = self._prefix(task.unique_name)
            if task._spec is not None:
                self._specs.add(task._spec)
            payload = _pickling.dumps((self._specs.shippable(job), job.predecessors, job.reason))
            write_atomic(self._work_dir / f"{prefix}.task", pickle.dumps((self._current_specs(), payload)))
        except RunConfigError as exc:
            self._fail_now(job, exc)
            return
        except Exception as exc:
            self._fail_now(job, TypeError(f'Task "{task.unique_name}" cannot be sent to a Slurm job: {exc}. Its class '
                                          f"or function and config must be picklable (cloudpickle)."))
            return
        retries = requests.retries if requests is not None and requests.retries is not None else self.max_retries
        options.append("--requeue" if retries else "--no-requeue")
        record = JobRecord("", str(self._work_dir), prefix, task.unique_name)
        self._pending.append(Flight(job, record, config_digest(task._uc()), options))

    def next_completed(self, timeout: Optional[float] = None) -> Optional[Completion]:
        self._flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._completions:
            wake = self._last_poll + self._interval
            if deadline is not None and deadline < wake:
                time.sleep(max(0.0, deadline - time.monotonic()))
                return None  # (the driver has a timer of its own, e.g. a retry's delay)
            time.sleep(max(0.0, wake - time.monotonic()))
            changed = self._poll()
            self._interval = POLL_MIN if changed else min(self._interval * POLL_GROWTH, POLL_MAX)
        return self._completions.popleft()

    def cancel(self) -> List[Completion]:
        """Ctrl-C: cancels the run's jobs, waits up to ``CANCEL_GRACE`` for them to report (KILLED, or
        finished if they got there first) and returns every outstanding completion."""
        self._cancelling = True
        for flight in self._pending:
            self._complete(flight, killed(flight.job.reason))
        self._pending = []
        cancelled = self._scancel([flight.record.job_id for flight in self._flights.values()])
        deadline = time.monotonic() + CANCEL_GRACE
        try:
            while self._flights and time.monotonic() < deadline:
                time.sleep(max(0.0, self._last_poll + POLL_MIN - time.monotonic()))
                self._poll()
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting
        for flight in list(self._flights.values()):
            self._complete(flight, killed(flight.job.reason), forget=cancelled)
        completions = list(self._completions)
        self._completions.clear()
        return completions

    # ------------------------------------------------------------------------------- submitting

    def _prefix(self, unique_name: str) -> str:
        """The start of the task's file names: its unique name, safe for files (made unique)."""
        prefix = base = safe_name(unique_name)
        number = 1
        while self._prefixes.setdefault(prefix, unique_name) != unique_name:
            number += 1
            prefix = f"{base}~{number}"
        return prefix

    def _current_specs(self) -> str:
        """The file of the spec table as it is now (a new file whenever specs were added)."""
        name = f".specs-{self._token}-{len(self._specs.specs)}.pkl"
        if name != self._specs_file:
            write_atomic(self._work_dir / name, self._specs.payload)
            self._specs_file = name
        return name

    def _flush(self) -> None:
        """Submits the jobs collected since the last call: tasks of one spec with the same options as
        one job array."""
        groups: Dict[Tuple[str, ...], List[Flight]] = {}
        for flight in self._pending:
            groups.setdefault((flight.job.task.name, *flight.options), []).append(flight)
        self._pending = []
        for flights in groups.values():
            for start in range(0, len(flights), MAX_ARRAY):
                self._sbatch(flights[start:start + MAX_ARRAY])
            self._interval = POLL_MIN

    def _sbatch(self, flights: List[Flight]) -> None:
        self._batches += 1
        name = f"batch-{self._token}-{self._batches}"
        array = len(flights) > 1
        array_log = f"{name}-%A_%a.out" if array else ""
        batch = {"run": self._run_file, "array": array, "array_log": array_log,
                 "tasks": [{"prefix": f.record.prefix, "unique_name": f.record.unique_name} for f in flights]}
        batch_file = self._work_dir / f".{name}.json"
        write_atomic(batch_file, json.dumps(batch).encode("utf-8"))
        script = self._work_dir / f".{name}.sh"
        lines = ["#!/bin/bash", f'# fluidml: {len(flights)} task(s) of run "{self._run_name}"', "set -e",
                 *self.setup, f"exec {shlex.quote(self.python)} -c {shlex.quote(JOB_ENTRY)} "
                 f"{shlex.quote(str(batch_file))}"]
        write_atomic(script, ("\n".join(lines) + "\n").encode("utf-8"))
        first = flights[0]
        log_dir = str(self._work_dir).replace("%", "%%")  # (a % starts one of Slurm's file name patterns)
        options = [f"--job-name={first.job.task.name if array else first.record.unique_name}",
                   f"--output={log_dir}/{array_log or first.record.prefix + '-%j.out'}", "--open-mode=append",
                   *([f"--array=0-{len(flights) - 1}"] if array else []), *first.options]
        with interrupts_deferred():  # the job's id is recorded before a Ctrl-C is taken
            try:
                job_id = cli.sbatch(str(script), options)
            except (cli.SlurmCommandError, OSError) as exc:
                for flight in flights:
                    name = flight.record.unique_name
                    error = TaskFailedError(f'Task "{name}": Slurm did not accept its job: '
                                            f'{getattr(exc, "stderr", "") or exc}'.rstrip()
                                            + f"\nsbatch options: {' '.join(options)}", task_name=name)
                    self._complete(flight, Outcome(TaskState.FAILED, reason=flight.job.reason, error=error,
                                                   traceback=f"TaskFailedError: {error}\n"))
                return
            for index, flight in enumerate(flights):
                flight.record.job_id = f"{job_id}_{index}" if array else job_id
                flight.record.array_log = array_log
                flight.missing_since = None
                self._flights[flight.job.task_id] = flight
                self._records.write(flight.job.task.name, flight.digest, flight.record)
        what = f'job array {job_id} ({len(flights)} tasks of "{first.job.task.name}")' if array else \
            f'job {job_id} (task "{first.record.unique_name}")'
        logger.info("Slurm: submitted %s.", what)
