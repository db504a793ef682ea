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
    ├── ResultsStoreError            a results store cannot read or write (e.g. its server is unreachable)
    │   └── StoredResultDamaged      a stored object or info the store lists cannot be read (missing, truncated,
    │                                wrong size or checksum, unreadable load info)
    └── TmuxError                    a tmux command failed

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
    "StoredResultDamaged",
    "TaskFailedError",
    "TaskNameError",
    "TaskResultKeyAlreadyExists",
    "TaskResultObjectMissing",
    "TaskSpecError",
    "TmuxError",
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


class ResultsStoreError(FluidmlError):
    """A results store cannot read or write: its server is unreachable or refused an operation."""


class StoredResultDamaged(ResultsStoreError):
    """A stored object or info that the store lists cannot be read: missing, truncated, of the wrong
    size or checksum, with unreadable load info, or of the wrong shape. ``location`` is the file or
    document (a path, a URL or "db/collection/doc")."""

    def __init__(
        self,
        message: str = "",
        *,
        task_name: Optional[str] = None,
        key: Optional[str] = None,
        config_hash: Optional[str] = None,
        location: Optional[str] = None,
    ):
        super().__init__(message, task_name=task_name, key=key, config_hash=config_hash)
        self.location = location


class TmuxError(FluidmlError):
    """A tmux command failed."""
