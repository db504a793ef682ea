"""The Slurm executor's files on the shared file system.

A run's work directory holds, per task, ``<name>.task`` (the task, its spec's number and its inputs'
locations: what the job runs), ``<name>-<jobid>.out`` (the job's stdout and stderr) and, once the
task has ended, ``<name>-<jobid>.outcome`` (its packed ``Outcome``). Files of one driver, hidden:
``.run-<token>.pkl`` (the store and log settings), ``.specs-<token>-<n>.pkl`` (the spec table),
``.batch-<token>-<k>.sh`` / ``.json`` (a submitted script and the tasks it runs).

Job records, one JSON file per task and config (``<records>/<task>/<config digest>.json``), say
which job runs a task; they are written after ``sbatch`` returns and removed when the driver has
the job's outcome, so a driver started again finds the jobs of one that was stopped.
"""

import json
import logging
import os
import re
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from fluidml.executors import _slurm_cli as cli

logger = logging.getLogger("fluidml.executors.slurm")

__all__ = ["JobRecord", "JobRecords", "log_tail", "safe_name", "write_atomic"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(name: str) -> str:
    """``name`` usable as a file name and in Slurm's file patterns (no ``%``, no ``/``)."""
    return _UNSAFE.sub("_", name) or "_"


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same directory, so that a reader
    on another node sees the whole file or none."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def log_tail(paths: List[Path], lines: int = 20) -> str:
    """The last ``lines`` lines of the first of ``paths`` that exists, indented ("" if none does)."""
    for path in paths:
        try:
            with open(path, "rb") as file:
                file.seek(0, os.SEEK_END)
                file.seek(max(0, file.tell() - 16384))
                text = file.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        tail = text.splitlines()[-lines:]
        return "\n".join("    " + line for line in tail) if tail else "    (empty)"
    return ""


@dataclass
class JobRecord:
    """Which Slurm job runs a task: its id and where its files are."""

    job_id: str  # "123", or "123_4" for an element of a job array
    work_dir: str
    prefix: str  # the task's file names start with it: <prefix>.task, <prefix>-<job_id>.out
    unique_name: str
    array_log: str = ""  # Slurm's name of an array element's log until the job renames it ("" for single jobs)
    submitted: float = 0.0
    host: str = ""
    pid: int = 0

    @property
    def outcome_path(self) -> Path:
        return Path(self.work_dir, f"{self.prefix}-{self.job_id}.outcome")

    @property
    def log_path(self) -> Path:
        return Path(self.work_dir, f"{self.prefix}-{self.job_id}.out")

    @property
    def task_path(self) -> Path:
        return Path(self.work_dir, f"{self.prefix}.task")

    def log_paths(self) -> List[Path]:
        """Where the job's log is: ``log_path``, or Slurm's name for an array element whose job ended
        before it could rename its log."""
        paths = [self.log_path]
        if self.array_log:
            paths.append(Path(self.work_dir, self.array_log.replace("%A_%a", self.job_id)))
        return paths


class JobRecords:
    """The job records of a store (or work directory): ``<directory>/<task name>/<digest>.json``."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, task_name: str, digest: str) -> Path:
        return self.directory / safe_name(task_name) / f"{digest}.json"

    def write(self, task_name: str, digest: str, record: JobRecord) -> None:
        record.submitted = record.submitted or time.time()
        record.host, record.pid = socket.gethostname(), os.getpid()
        path = self._path(task_name, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(asdict(record)).encode("utf-8"))

    def remove(self, task_name: str, digest: str, job_id: str) -> None:
        """Removes the record if it is still the one of ``job_id`` (a later driver may have replaced it)."""
        path = self._path(task_name, digest)
        record = self._read(path)
        if record is not None and record.job_id == job_id:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def all(self) -> Iterator[Tuple[str, str, JobRecord]]:
        """Every record: (task dir name, digest, record); unreadable ones are skipped."""
        if not self.directory.is_dir():
            return
        for task_dir in sorted(self.directory.iterdir()):
            if not task_dir.is_dir():
                continue
            for path in sorted(task_dir.glob("*.json")):
                record = self._read(path)
                if record is not None:
                    yield task_dir.name, path.stem, record

    def alive(self) -> Dict[Tuple[str, str], Tuple[JobRecord, "cli.JobState"]]:
        """The recorded jobs that are still queued or running (one squeue call), by ``key``; records
        of jobs that ended are removed. If Slurm cannot be asked, every recorded job counts."""
        records = list(self.all())
        if not records:
            return {}
        try:
            states: Optional[Dict[str, cli.JobState]] = cli.job_states(r.job_id.split("_")[0] for _, _, r in records)
        except (cli.SlurmCommandError, OSError) as exc:
            logger.warning("Slurm: cannot list the jobs of an earlier driver; waiting for each of them: %s", exc)
            states = None
        found = {}
        for task_dir, digest, record in records:
            state = cli.JobState("UNKNOWN") if states is None else states.get(record.job_id)
            if state is not None and (state.alive or states is None):
                found[(task_dir, digest)] = (record, state)
            else:
                self.forget(task_dir, digest)
        return found

    def forget(self, task_dir: str, digest: str) -> None:
        try:
            (self.directory / task_dir / f"{digest}.json").unlink()
        except FileNotFoundError:
            pass

    @staticmethod
    def _read(path: Path) -> Optional[JobRecord]:
        try:
            data: Dict = json.loads(path.read_text(encoding="utf-8"))
            return JobRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def key(self, task_name: str, digest: str) -> Tuple[str, str]:
        """How ``all()`` names the record of a task: (task dir name, digest)."""
        return safe_name(task_name), digest
