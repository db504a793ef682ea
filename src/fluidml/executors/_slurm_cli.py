"""Slurm's commands as the Slurm executor uses them, and how ``Requests`` become ``sbatch`` options.

Only the client commands are used (``sbatch``, ``squeue``, ``scancel``; ``sacct`` where the cluster
keeps accounting): they are on every login node, need no extra Python package, and speak for the
user exactly as the user's own shell would.
"""

import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from fluidml.exception import RunConfigError
from fluidml.executors._signals import interrupts_deferred

__all__ = ["ALIVE", "JobState", "SlurmCommandError", "accounting_state", "extra_options", "job_states",
           "request_options", "require_commands", "sbatch", "scancel", "slurm_time"]

#: Seconds added to a task's timeout for its job's ``--time``: Python start-up and loading inputs,
#: plus the grace period a task gets after its timeout to end on its own.
TIME_MARGIN = 60 + 10
#: sbatch options fluidml sets itself (``SlurmExecutor(sbatch=...)`` may not).
OWN_OPTIONS = frozenset({"array", "output", "error", "open-mode", "parsable", "wrap", "job-name", "requeue",
                         "no-requeue", "cpus-per-task", "gpus", "mem", "gres", "time"})
#: Job states in which a job may still run (everything else has ended).
ALIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
                   "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD",
                   "SPECIAL_EXIT"})
_TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^(UNLIMITED|INFINITE)$", re.IGNORECASE)
#: Words in an error of a Slurm command that say the controller was busy or briefly unreachable.
_TRANSIENT = ("temporarily", "timed out", "try again", "unable to contact", "connection refused")


class SlurmCommandError(RuntimeError):
    """A Slurm command failed; ``command`` and ``stderr`` say how."""

    def __init__(self, command: Sequence[str], stderr: str):
        super().__init__(f"`{' '.join(command)}` failed: {stderr.strip() or 'no message'}")
        self.command = list(command)
        self.stderr = stderr


@dataclass(frozen=True)
class JobState:
    """One job as squeue (or sacct) lists it."""

    state: str  # e.g. "PENDING", "RUNNING", "TIMEOUT", "CANCELLED"
    reason: str = ""  # Slurm's reason, e.g. "Priority", "TimeLimit" ("" for none)
    node: str = ""

    @property
    def alive(self) -> bool:
        return self.state in ALIVE

    def describe(self) -> str:
        """E.g. ``PENDING (Priority)``, ``RUNNING on node3``, ``TIMEOUT (TimeLimit)``."""
        text = self.state
        if self.reason:
            text += f" ({self.reason})"
        if self.node and self.state == "RUNNING":
            text += f" on {self.node}"
        return text


def require_commands() -> None:
    """Raises a ``RunConfigError`` naming the Slurm commands missing on this machine."""
    missing = [name for name in ("sbatch", "squeue", "scancel") if shutil.which(name) is None]
    if missing:
        raise RunConfigError(f'executor="slurm" runs Slurm\'s commands, and {", ".join(missing)} '
                             f"{'is' if len(missing) == 1 else 'are'} not on this machine's PATH. Run the flow on a "
                             f"login node of the cluster (or load Slurm's module first).", key="executor")


def _run(command: List[str], attempts: int = 3) -> str:
    """Runs a Slurm command and returns its stdout; a busy controller is asked again (1 s, 2 s).
    The command runs in a session of its own, so a Ctrl-C in the terminal reaches only the driver."""
    for attempt in range(1, attempts + 1):
        with interrupts_deferred():
            result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        if result.returncode == 0:
            return result.stdout
        if attempt == attempts or not any(word in result.stderr.lower() for word in _TRANSIENT):
            raise SlurmCommandError(command, result.stderr)
        time.sleep(attempt)
    raise AssertionError("unreachable")


def sbatch(script: str, options: Sequence[str]) -> str:
    """Submits ``script`` with ``options`` and returns the job id (of the array, for an array)."""
    out = _run(["sbatch", "--parsable", *options, script])
    return out.strip().split(";")[0]


def job_states(job_ids: Iterable[str]) -> Dict[str, JobState]:
    """The state of the given jobs (array ids list every element, as ``"123_4"``) in ONE squeue
    call; jobs squeue no longer knows are absent."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    command = ["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(ids)}", "--format=%i|%T|%r|%N"]
    try:
        out = _run(command)
    except SlurmCommandError as exc:
        if "invalid job id" in exc.stderr.lower():  # none of them is known any more
            return {}
        raise
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            job_id, state, reason, node = parts
            states[job_id] = JobState(state.split()[0], "" if reason in ("None", "(null)") else reason, node)
    return states


def accounting_state(job_id: str) -> Optional[JobState]:
    """The job's state from ``sacct`` (e.g. ``CANCELLED by 1000``), or None where the cluster keeps no
    accounting or does not know the job."""
    if shutil.which("sacct") is None:
        return None
    try:
        out = _run(["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={job_id}",
                    "--format=JobID,State,Reason"], attempts=1)
    except SlurmCommandError:
        return None
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0] == job_id:
            reason = parts[2] if len(parts) > 2 and parts[2] not in ("None", "") else ""
            return JobState(parts[1], reason)
    return None


def scancel(job_ids: Iterable[str]) -> None:
    """Cancels the jobs (one call); jobs that ended already are ignored by Slurm."""
    ids = sorted(set(job_ids))
    if ids:
        try:
            _run(["scancel", *ids])
        except SlurmCommandError as exc:
            if "invalid job id" not in exc.stderr.lower():
                raise


def slurm_time(value: Any, what: str = "SlurmExecutor(time=...)") -> Optional[str]:
    """``value`` as an ``sbatch --time``: minutes (an int) or Slurm's text ("2:00:00", "1-12")."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and _TIME.match(value.strip()):
        return value.strip()
    raise RunConfigError(f"{what}: {value!r} is not a Slurm time limit; give minutes as an int (90) or Slurm's "
                         f'format: "MM", "HH:MM:SS", "D-HH", "D-HH:MM:SS".', key="time")


def request_options(task_name: str, requests: Any, default_time: Optional[str]) -> List[str]:
    """The sbatch options for one task's ``Requests`` (None: none): cpus → ``--cpus-per-task``
    (rounded up), gpus → ``--gpus`` (whole numbers), memory → ``--mem`` (MiB, rounded up), custom →
    ``--gres=name:n`` (whole numbers), timeout → ``--time`` (with ``TIME_MARGIN``, whole minutes),
    retries → ``--requeue``. Raises ``RunConfigError`` naming the task for what Slurm cannot give."""
    options: List[str] = []
    timeout = getattr(requests, "timeout", None) if requests is not None else None
    time_limit = str(math.ceil((timeout + TIME_MARGIN) / 60)) if timeout else default_time
    if time_limit is not None:
        options.append(f"--time={time_limit}")
    if requests is None:
        return options
    if requests.cpus:
        options.append(f"--cpus-per-task={math.ceil(requests.cpus)}")
    if requests.gpus:
        if requests.gpus != int(requests.gpus):
            raise RunConfigError(
                f'Task "{task_name}" requests gpus={requests.gpus:g}, but Slurm gives whole GPUs only (--gpus). Ask '
                f'for gpus=1, or share a GPU through a resource your cluster defines for it, e.g. '
                f'custom={{"shard": 1}} (--gres=shard:1).', task_name=task_name, key="gpus")
        options.append(f"--gpus={int(requests.gpus)}")
    if requests.memory is not None:
        options.append(f"--mem={math.ceil(requests.memory / 2**20)}M")
    if requests.custom:
        gres = []
        for name, amount in requests.custom.items():
            if amount != int(amount):
                raise RunConfigError(
                    f'Task "{task_name}" requests custom={{{name!r}: {amount:g}}}, but Slurm counts generic resources '
                    f"(--gres={name}:N) in whole numbers.", task_name=task_name, key=f"custom[{name!r}]")
            if amount:
                gres.append(f"{name}:{int(amount)}")
        if gres:
            options.append(f"--gres={','.join(gres)}")
    return options


def extra_options(sbatch_options: Optional[Mapping[str, Any]]) -> List[str]:
    """``SlurmExecutor(sbatch={...})`` as options: ``{"constraint": "a100", "exclusive": True}`` →
    ``--constraint=a100 --exclusive`` (False and None leave an option out)."""
    options = []
    for key, value in (sbatch_options or {}).items():
        name = str(key).lstrip("-").replace("_", "-")
        if not isinstance(key, str) or not name or name in OWN_OPTIONS:
            raise RunConfigError(
                f"SlurmExecutor(sbatch=...): {key!r} cannot be set there"
                + (" (fluidml sets it: use Requests or the executor's own arguments)." if name in OWN_OPTIONS else
                   "; use sbatch's long option names without dashes, e.g. {'constraint': 'a100'}."), key="sbatch")
        if value is True:
            options.append(f"--{name}")
        elif value is not False and value is not None:
            options.append(f"--{name}={value}")
    return options
