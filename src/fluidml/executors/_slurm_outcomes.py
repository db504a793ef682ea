"""How the Slurm executor turns what a job left behind into a task's ``Outcome``: the outcome file
the job wrote, or, for a job that Slurm ended before it could write one, a failure that says what
Slurm reported (state, reason, by whom) with a hint and the tail of the job's log."""

import pickle
from typing import Optional

from fluidml.exception import TaskFailedError
from fluidml.executors import _slurm_cli as cli
from fluidml.executors._slurm_files import JobRecord, log_tail
from fluidml.runner import Outcome
from fluidml.task import TaskState

__all__ = ["RETRYABLE", "failure", "killed", "read_outcome"]

#: Job states after which a task whose job did not report runs again if it has retries left.
RETRYABLE = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "OUT_OF_MEMORY", "FAILED", "UNKNOWN"})
_HINTS = {
    "TIMEOUT": "it ran past its time limit; raise Requests(timeout=...) or SlurmExecutor(time=...)",
    "OUT_OF_MEMORY": "it used more memory than it asked for; raise Requests(memory=...)",
    "NODE_FAIL": "its node failed; Requests(retries=N) runs it again",
    "PREEMPTED": "a job of higher priority took its place; Requests(retries=N) runs it again",
    "BOOT_FAIL": "its node failed to boot; Requests(retries=N) runs it again",
    "CANCELLED": "someone cancelled it (scancel) or Slurm did",
    "DEADLINE": "it reached its deadline",
    "FAILED": "its process ended without reporting: killed, crashed, or a setup line failed",
    "COMPLETED": "its process exited, but its outcome file never appeared in the work directory",
}


def read_outcome(record: JobRecord, reason: str) -> Optional[Outcome]:
    """The outcome the job wrote (None while there is none); a file that cannot be read is a failure."""
    try:
        data = record.outcome_path.read_bytes()
        outcome: Outcome = pickle.loads(data)
        return outcome
    except FileNotFoundError:
        return None
    except Exception as exc:
        name = record.unique_name
        error = TaskFailedError(f'Task "{name}": the outcome of Slurm job {record.job_id} cannot be read from '
                                f"{record.outcome_path}: {exc}", task_name=name)
        return Outcome(TaskState.FAILED, reason=reason, error=error, traceback=f"TaskFailedError: {error}\n")


def failure(record: JobRecord, state: Optional[cli.JobState], reason: str,
            interrupted: Optional[Outcome] = None) -> Outcome:
    """A FAILED outcome for a job that Slurm ended: its state and reason, a hint, its log's tail.
    ``interrupted`` is what the task reported when Slurm's SIGTERM interrupted it (its times)."""
    state = state or cli.JobState("UNKNOWN")
    what = state.state
    if what == "CANCELLED":  # sacct, where the cluster keeps accounting, says by whom
        accounted = cli.accounting_state(record.job_id)
        what = accounted.state if accounted is not None and accounted.state.startswith("CANCELLED") else what
    if what == "UNKNOWN":
        what = "and left Slurm's queue (neither squeue nor sacct lists it)"
    because = f" (reason: {state.reason})" if state.reason else ""
    hint = _HINTS.get(state.state, "")
    tail = log_tail(record.log_paths())
    log = f"Its log, {record.log_path}, ends with:\n{tail}" if tail else f"Its log {record.log_path} is missing."
    name = record.unique_name
    error = TaskFailedError(f'Task "{name}": Slurm job {record.job_id} ended {what}{because} before the task '
                            f"reported back{': ' + hint if hint else ''}.\n{log}", task_name=name)
    previous = interrupted or Outcome(TaskState.FAILED)
    return Outcome(TaskState.FAILED, reason=reason, error=error, traceback=f"TaskFailedError: {error}\n",
                   run_name=previous.run_name, sweep_counter=previous.sweep_counter, started=previous.started,
                   ended=previous.ended, run_history=previous.run_history)


def killed(reason: str) -> Outcome:
    """The outcome of a task whose job the driver cancelled (Ctrl-C)."""
    return Outcome(TaskState.KILLED, reason=reason, error=KeyboardInterrupt(),
                   traceback="KeyboardInterrupt: the run was stopped and its Slurm jobs cancelled\n")
