"""The results store interface and the small records stores hand out.

A store implements five core methods: ``save``, ``load``, ``delete``, ``delete_run`` and
``get_context``, each addressing one run by task name and *exact* unique config. Everything else
(``get_results``, ``is_finished``, the results registry, lookups by a larger config) is derived here
from those five, so a custom store only writes the core.
"""

import contextlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional

from fluidml._metadict import MetaDict

__all__ = ["Damage", "LazySweep", "ObjectMeta", "Promise", "ResultsStore", "RunRecord", "StoreContext", "Sweep"]

#: The registry of a run's saved result names, kept in the store next to the results.
SAVED_RESULTS = ".saved_results"
#: The TaskInfo of a run, kept in the store next to the results.
TASK_INFO = "fluidml_info"

_NO_LOCK = contextlib.nullcontext()


class Promise(ABC):
    """A handle to a stored object that is loaded on demand with ``load()``."""

    @abstractmethod
    def load(self, **kwargs: Any) -> Any:
        """Loads the actual object."""


@dataclass
class Sweep:
    """One upstream result of a reduce task: the value and the unique config of the task that made it."""

    value: Any
    config: MetaDict


@dataclass
class LazySweep:
    """Like ``Sweep``, but the value is a ``Promise`` to be loaded on demand."""

    value: Promise
    config: MetaDict


@dataclass
class StoreContext:
    """Where a store keeps a run: its directory (file stores) and its sweep counter."""

    run_dir: Optional[str] = None
    sweep_counter: Optional[str] = None


@dataclass
class ObjectMeta:
    """What a store records about one saved object: its type name and size in bytes (None where unknown)."""

    type: Optional[str]
    size: Optional[int] = None


@dataclass
class RunRecord:
    """One stored run of a task, as ``ResultsStore.runs`` lists it."""

    task_name: str
    run_id: str  # e.g. "exp-1-004"
    unique_config: Dict[str, Any]
    info: Optional[Dict[str, Any]]  # the stored fluidml_info, None if the run has none (yet)
    objects: Dict[str, ObjectMeta]
    location: str  # the run directory, URL or document address


@dataclass
class Damage:
    """A problem found in a stored run: a listed object or info that is missing or unreadable."""

    task_name: str
    run_id: str
    location: str  # the file, URL or document
    problem: str


class ResultsStore(ABC):
    """The interface of a results store: five core methods, the rest derived from them."""

    #: True for stores that keep saved objects as they are, in this process (no serialization).
    keeps_objects: bool = False
    #: True if a copy of the store pickled to a worker process reads and writes the same results
    #: (files, a database server). Other stores stay in the parent process, and worker processes
    #: reach them through it, so no result is lost whatever the store keeps in memory.
    process_safe: bool = False

    def __init__(self) -> None:
        self._lock: Any = None

    @abstractmethod
    def load(self, name: str, task_name: str, task_unique_config: Dict, **kwargs: Any) -> Optional[Any]:
        """Loads the object ``name`` of the run (task name, unique config); None if there is none."""

    @abstractmethod
    def save(self, obj: Any, name: str, type_: str, task_name: str, task_unique_config: Dict, **kwargs: Any) -> None:
        """Saves (or overwrites) the object ``name`` of the run (task name, unique config)."""

    @abstractmethod
    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the object ``name`` of the run, if it exists."""

    @abstractmethod
    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        """Deletes a whole run, if it exists."""

    @abstractmethod
    def get_context(self, task_name: str, task_unique_config: Dict) -> Optional[StoreContext]:
        """The store context of a run (e.g. its run directory), creating the run if needed."""

    def open(
        self,
        name: Optional[str] = None,
        task_name: Optional[str] = None,
        task_unique_config: Optional[Dict] = None,
        mode: Optional[str] = None,
        promise: Optional[Promise] = None,
        type_: Optional[str] = None,
        sub_dir: Optional[str] = None,
        **open_kwargs: Any,
    ) -> Any:
        """Opens a file-like object for a run; only file stores support it, others return None."""
        return None

    def stored_configs(self, task_name: str) -> Iterable[Dict]:
        """The unique configs of the runs stored for a task (used for lookups by a larger config).

        Stores that cannot list their runs return nothing; the lookups then need exact configs.
        """
        return ()

    def task_names(self) -> List[str]:
        """The names of the tasks that have runs in the store."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its tasks: it implements no task_names().")

    def runs(self, task_name: str) -> Iterator[RunRecord]:
        """The stored runs of a task, with their configs, infos and objects."""
        raise NotImplementedError(f"{type(self).__name__} cannot list the runs of a task: it implements no runs().")

    def run_damage(self, task_name: str, task_unique_config: Dict, deep: bool = False) -> List[Damage]:
        """Problems of a finished run: listed objects that are missing or of the wrong size (``deep``:
        checksums too). Stores that cannot check report none."""
        return []

    # ------------------------------------------------------------------------ derived behaviour

    def get_results(self, task_name: str, task_unique_config: Dict) -> Optional[Dict[str, Any]]:
        """All objects a run saved (by ``Task.save`` / ``Task.open``), or None if it saved nothing."""
        names = self.load(SAVED_RESULTS, task_name, task_unique_config)
        if not names:
            return None
        results = {}
        for name in names:
            obj = self.load(name, task_name, task_unique_config)
            if obj is not None:
                results[name] = obj
        return results

    def is_finished(self, task_name: str, task_unique_config: Dict) -> bool:
        """True if the run exists and its stored info says it finished."""
        info = self.load(TASK_INFO, task_name, task_unique_config)
        return info is not None and info.get("state") == "finished"

    def find_unique_config(self, task_name: str, config: Dict) -> Optional[Dict]:
        """The stored unique config of ``task_name`` that ``config`` contains entry by entry.

        This lets a task load an upstream task's objects with its own (larger) config or a Sweep's
        config. Several matches are decided deterministically: the config with the most entries
        wins, then the one whose sorted JSON text comes first.
        """
        best: Optional[Dict] = None
        best_key: Any = None
        for stored in self.stored_configs(task_name):
            if all(key in config and config[key] == value for key, value in stored.items()):
                key = (-len(stored), json.dumps(stored, sort_keys=True))
                if best_key is None or key < best_key:
                    best, best_key = stored, key
        return best

    def _register_result(self, name: Optional[str], task_name: str, task_unique_config: Dict) -> None:
        """Adds ``name`` to the run's registry of saved results."""
        names: List[str] = self.load(SAVED_RESULTS, task_name, task_unique_config) or []
        if name not in names:
            self.save([*names, name], SAVED_RESULTS, type_="json", task_name=task_name,
                      task_unique_config=task_unique_config)

    def _unregister_result(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Removes ``name`` from the run's registry of saved results."""
        names = self.load(SAVED_RESULTS, task_name, task_unique_config)
        if names and name in names:
            self.save([n for n in names if n != name], SAVED_RESULTS, type_="json", task_name=task_name,
                      task_unique_config=task_unique_config)

    @property
    def lock(self) -> Any:
        """The lock guarding the store's read-modify-write steps (a no-op unless one is assigned)."""
        lock = getattr(self, "_lock", None)
        return lock if lock is not None else _NO_LOCK

    @lock.setter
    def lock(self, lock: Any) -> None:
        self._lock = lock
