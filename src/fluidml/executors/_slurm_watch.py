"""How the Slurm executor watches its jobs (the base class it builds on): one ``squeue`` call per
look at every job in flight, each job decided from its outcome file and Slurm's state, and each
task's outcome handed to the driver as a completion. ``slurm.py`` submits the jobs.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional

from fluidml.executors import _slurm_cli as cli
from fluidml.executors._slurm_files import JobRecord, JobRecords
from fluidml.executors._slurm_outcomes import RETRYABLE, failure, killed, read_outcome
from fluidml.executors.base import Completion, Executor, Job
from fluidml.runner import Outcome
from fluidml.task import TaskState

__all__ = ["OUTCOME_GRACE", "POLL_GROWTH", "POLL_MAX", "POLL_MIN", "Flight", "SlurmWatch"]

logger = logging.getLogger("fluidml.executors.slurm")  # (the executor's logger)

#: Seconds between two looks at the jobs: the first, and the most while nothing changes.
POLL_MIN, POLL_MAX, POLL_GROWTH = 1.0, 10.0, 1.5
#: Seconds a job Slurm lists as ended may take to show its outcome file (file system caches).
OUTCOME_GRACE = 30.0


@dataclass
class Flight:
    """A task on its way through Slurm: its job, where its files are, what it may still try."""

    job: Job
    record: JobRecord
    digest: str
    options: List[str] = field(default_factory=list)
    adopted: bool = False  # submitted by an earlier driver
    status: str = ""
    missing_since: Optional[float] = None  # when Slurm first listed it ended without an outcome file


class SlurmWatch(Executor):
    """The jobs in flight of a run and what became of them (see ``SlurmExecutor``, the executor)."""

    _records: JobRecords
    _flights: Dict[int, Flight]  # task id -> its job in Slurm
    _completions: Deque[Completion]
    _cancelling: bool
    _last_poll: float
    _last_warning: float

    # --------------------------------------------------------------------------------- watching

    def _poll(self) -> bool:
        """One look at every job in flight (one squeue call); returns whether anything changed."""
        self._last_poll = time.monotonic()
        if not self._flights:
            return False
        states: Optional[Dict[str, cli.JobState]]
        try:
            states = cli.job_states(flight.record.job_id.split("_")[0] for flight in self._flights.values())
        except (cli.SlurmCommandError, OSError) as exc:
            states = None
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                logger.warning("Slurm: cannot list the run's jobs (retrying): %s", exc)
        changed = False
        for task_id, flight in list(self._flights.items()):
            changed |= self._check(task_id, flight, states)
        return changed

    def _check(self, task_id: int, flight: Flight, states: Optional[Dict[str, cli.JobState]]) -> bool:
        """Decides about one job from its outcome file and Slurm's state; True if something changed."""
        state = states.get(flight.record.job_id) if states is not None else None
        outcome = read_outcome(flight.record, flight.job.reason)
        if outcome is not None and outcome.state != TaskState.KILLED:  # the task ended on its own
            self._complete(flight, outcome)
            return True
        if state is not None and state.alive:
            text = state.describe()
            if text == flight.status:
                return False
            flight.status = text
            logger.debug('Slurm: task "%s", job %s: %s', flight.record.unique_name, flight.record.job_id, text)
            if self.report_status is not None:
                self.report_status(task_id, text)
            return True
        if states is None:
            return False  # squeue failed: nothing more is known
        if outcome is not None:  # interrupted: by us, by the task itself, or by Slurm
            if not (self._cancelling or state is None or state.state in ("COMPLETED", "FAILED")):
                outcome = failure(flight.record, state, flight.job.reason, outcome)  # Slurm ended it
            self._complete(flight, outcome)
            return True
        if not self._cancelling and (state is None or state.state == "COMPLETED"):
            now = time.monotonic()
            flight.missing_since = flight.missing_since or now
            if now - flight.missing_since < OUTCOME_GRACE:
                return False  # its outcome file may not be visible here yet
        self._ended_without_outcome(flight, state)
        return True

    def _ended_without_outcome(self, flight: Flight, state: Optional[cli.JobState]) -> None:
        if self._cancelling:
            self._complete(flight, killed(flight.job.reason))
            return
        state = state or cli.accounting_state(flight.record.job_id) or cli.JobState("UNKNOWN")
        outcome = failure(flight.record, state, flight.job.reason)
        # a job that died with its node (or was preempted) is lost: the driver runs it again if it has retries left
        outcome.lost = state.state.split()[0] in RETRYABLE and not flight.adopted
        self._complete(flight, outcome)

    # ------------------------------------------------------------------------------ completions

    def _fail_now(self, job: Job, error: BaseException) -> None:
        """Reports a task that could not be submitted."""
        text = f"{type(error).__name__}: {error}\n"
        self._completions.append(Completion(job.task_id, Outcome(TaskState.FAILED, reason=job.reason, error=error,
                                                                 traceback=text)))

    def _complete(self, flight: Flight, outcome: Outcome, forget: bool = True) -> None:
        """Hands the task's outcome to the driver and forgets its job (record and task file)."""
        self._flights.pop(flight.job.task_id, None)
        if flight.record.job_id and forget:
            self._records.remove(flight.job.task.name, flight.digest, flight.record.job_id)
        if not flight.adopted:
            flight.record.task_path.unlink(missing_ok=True)
        self._completions.append(Completion(flight.job.task_id, outcome))

    def _scancel(self, job_ids: List[str]) -> bool:
        """Cancels the jobs; False (and an error in the log) if Slurm could not be asked."""
        if not job_ids:
            return True
        try:
            cli.scancel(job_ids)
        except (cli.SlurmCommandError, OSError) as exc:
            logger.error("Slurm: could not cancel jobs %s; cancel them yourself (scancel): %s", " ".join(job_ids), exc)
            return False
        logger.warning("Slurm: cancelled %d job(s): %s", len(job_ids), " ".join(sorted(job_ids)))
        return True
