"""All exceptions that fluidml raises on purpose.

Hierarchy::

    FluidmlError
    ├── NoTasksError                 Flow([]) (also a ValueError)
    ├── TaskNameError                two specs share a name, or a name is unusable (also a ValueError)
    ├── CyclicGraphError             the spec graph has a cycle (also a ValueError)
    ├── TaskSpecError                a TaskSpec is malformed: task type, config, reduce + expand
    │                                (also a ValueError and a TypeError, as the original raised both)
    ├── GridSearchExpansionError     a grid cannot be expanded: unknown method, zero tasks, ...
    ├── RunConfigError               a Flow.run() argument is invalid (also a ValueError and a TypeError)
    ├── TaskResultKeyAlreadyExists   two predecessors provide the same input name
    ├── TaskResultObjectMissing      a required input was not saved by any predecessor
    ├── TaskFailedError              a task's worker died, or its exception could not be transported
    ├── TaskTimeoutError             a task ran past its ``Requests(timeout=...)``
    ├── ResultsStoreError            a results store cannot read or write (disk full, permission denied, ...)
    │   ├── StoredResultDamaged      a stored object or run info the store lists cannot be read (missing,
    │   │                            truncated, wrong size or checksum, wrong shape)
    │   └── StoreUnavailableError    the store cannot be reached at all (its server is down): the run stops
    ├── UnknownNameError             a task, run, object or table column that was asked for is not there
    │                                (also a LookupError; the message lists what is)
    └── TmuxError                    a tmux command failed

    SystemExit
    └── RunTerminated                a signal (SIGTERM) stopped Flow.run(); exits with 128 + signal number

Every error carries ``task_name``, ``key`` and ``config_hash`` (``None`` where they do not apply),
puts them in its message with what to do, and survives pickling (it travels from worker processes).
"""

from typing import Any, Optional

__all__ = [
    "CyclicGraphError",
    "FluidmlError",
    "GridSearchExpansionError",
    "NoTasksError",
    "ResultsStoreError",
    "RunConfigError",
    "RunTerminated",
    "StoreUnavailableError",
    "StoredResultDamaged",
    "TaskFailedError",
    "TaskNameError",
    "TaskResultKeyAlreadyExists",
    "TaskResultObjectMissing",
    "TaskSpecError",
    "TaskTimeoutError",
    "TmuxError",
    "UnknownNameError",
]


class FluidmlError(Exception):
    """Base class of every fluidml error."""

    def __init__(
        self,
        message: str = "",
        *,
        task_name: Optional[str] = None,
        key: Optional[str] = None,
        config_hash: Optional[str] = None,
    ):
        super().__init__(message)
        self.task_name = task_name
        self.key = key
        self.config_hash = config_hash

    def __reduce__(self) -> Any:
        # Rebuild with the message, then restore the fields (works for every subclass).
        return type(self), (self.args[0] if self.args else "",), self.__dict__


class NoTasksError(FluidmlError, ValueError):
    """A Flow was given no task specs."""


class TaskNameError(FluidmlError, ValueError):
    """Two task specs share a name, or a name cannot be used."""


class CyclicGraphError(FluidmlError, ValueError):
    """The task spec graph contains a cycle."""


class TaskSpecError(FluidmlError, ValueError, TypeError):
    """A task spec is malformed (task type, config values or keys, reduce together with expand)."""


class GridSearchExpansionError(FluidmlError, ValueError):
    """A config grid cannot be expanded (unknown method, zero configurations, zip over lists)."""


class RunConfigError(FluidmlError, ValueError, TypeError):
    """An argument of ``Flow.run()`` is invalid."""


class TaskResultKeyAlreadyExists(FluidmlError):
    """Two predecessors of a task provide an input of the same name."""


class TaskResultObjectMissing(FluidmlError):
    """A task expects an input that none of its predecessors saved."""


class TaskFailedError(FluidmlError):
    """A task failed without an exception of its own to show: its worker process died, or its exception
    could not be sent from the worker (the message then holds the original traceback text)."""


class TaskTimeoutError(FluidmlError):
    """A task ran longer than its ``Requests(timeout=...)``: it was interrupted at the deadline (its
    ``finally`` blocks ran), or killed when it did not stop within the grace period. ``key`` is
    ``"timeout"``; ``limit`` holds the timeout in seconds."""

    def __init__(self, message: str = "", *, limit: Optional[float] = None, **fields: Any):
        fields.setdefault("key", "timeout")
        super().__init__(message, **fields)
        self.limit = limit


class RunTerminated(SystemExit):
    """``Flow.run()`` was stopped by a signal (SIGTERM): its running tasks were stopped as on Ctrl-C
    and marked KILLED. ``code`` is 128 + the signal number (143 for SIGTERM), so an uncaught one
    ends the process with that status and without a traceback."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"the run was stopped by {_signal_name(self.signum)} (exit status {128 + self.signum})"

    def __reduce__(self) -> Any:
        return type(self), (self.signum,)


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class ResultsStoreError(FluidmlError):
    """A results store cannot read or write: a disk is full, a permission is missing, a server
    refused an operation. The message names the task, the object and the file or server."""


class StoredResultDamaged(ResultsStoreError):
    """An object or run info that the store lists as saved cannot be read: it is missing, truncated,
    of the wrong size or checksum, or of the wrong shape. The damaged run counts as not finished, so
    the next ``flow.run`` runs it again.

    ``task_name``, ``key`` (the object's name) and ``config_hash`` name the run the damage is in;
    ``location`` is the damaged file (or ``db/collection/document``).
    """

    def __init__(self, message: str = "", *, location: Optional[str] = None, **fields: Optional[str]):
        super().__init__(message, **fields)
        self.location = location


class StoreUnavailableError(ResultsStoreError):
    """The results store cannot be reached at all (e.g. its server is down or unreachable). Unlike
    other store errors it stops the run whatever ``exit_on_error`` says: no task could record its
    results."""


class TmuxError(FluidmlError):
    """A tmux command failed."""


def error_text(error: BaseException) -> str:
    """``str(error)``, also for an exception whose ``__str__`` raises."""
    try:
        return str(error)
    except Exception as failure:  # the user's __str__ is broken; its type and traceback still tell a lot
        return f"<str() of the {type(error).__name__} failed: {type(failure).__name__}>"


class UnknownNameError(FluidmlError, LookupError):
    """A task, run, saved object or table column that was asked for is not in the store or table."""
