"""The results store interface and the small records stores hand out.

A store implements five core methods: ``save``, ``load``, ``delete``, ``delete_run`` and
``get_context``, each addressing one run by task name and *exact* unique config. Everything else
(``get_results``, ``is_finished``, the results registry, lookups by a larger config) is derived here
from those five, so a custom store only writes the core.
"""

import contextlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional

from fluidml._metadict import MetaDict
from fluidml.exception import ResultsStoreError, StoredResultDamaged

__all__ = ["Damage", "LazySweep", "ObjectMeta", "Promise", "ResultsStore", "RunRecord", "StoreContext", "Sweep"]

logger = logging.getLogger(__name__)

#: The registry of a run's saved result names, kept in the store next to the results.
SAVED_RESULTS = ".saved_results"
#: The TaskInfo of a run, kept in the store next to the results.
TASK_INFO = "fluidml_info"
#: The key of the stored info under which fluidml keeps what TaskInfo's fields do not hold.
EXTRA = "fluidml"

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
class Damage:
    """Something wrong with a stored run: ``problem`` says what, ``location`` where (a file, or
    ``db/collection/document``). ``run_id`` names the run (e.g. ``"exp-1-004"``; its config hash
    where the store has no run id)."""

    task_name: str
    run_id: str
    location: str
    problem: str

    def __str__(self) -> str:
        return f'task "{self.task_name}", run {self.run_id}: {self.problem} ({self.location})'


def info_problem(info: Any) -> Optional[str]:
    """What is wrong with the shape of a stored run info (``fluidml_info``), or None if nothing is."""
    if not isinstance(info, dict):
        return f"it holds {type(info).__name__} {json.dumps(info, default=repr)[:40]} instead of an object"
    for key, types in (("state", str), ("run_name", str), ("sweep_counter", (str, int)), ("run_history", dict)):
        value = info.get(key)
        if value is not None and not isinstance(value, types):
            return f'its "{key}" is {type(value).__name__} {value!r:.40}'
    extra = info.get(EXTRA)
    if extra is not None and not isinstance(extra, dict):
        return f'its "{EXTRA}" entry is {type(extra).__name__}, not an object'
    objects = extra.get("objects") if extra is not None else None
    if objects is not None:
        if not isinstance(objects, dict):
            return 'its list of saved objects ("objects") is malformed'
        for entry in objects.values():
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                return 'its list of saved objects ("objects") is malformed'
    return None


def damage_marker(info: Optional[Dict]) -> Optional[Dict[str, str]]:
    """The damage a run was marked with (``mark_damaged``), or None."""
    extra = info.get(EXTRA) if isinstance(info, dict) else None
    marker = extra.get("damage") if isinstance(extra, dict) else None
    return marker if isinstance(marker, dict) else None


def damage_error(task_name: str, config_hash: Optional[str], key: str, location: str, problem: str,
                 marked: bool = True) -> StoredResultDamaged:
    """The error for a damaged object (or run info) ``key`` of a run, in the words every store uses."""
    what = {TASK_INFO: "its run info", SAVED_RESULTS: "its list of saved objects"}.get(key, f'the saved object "{key}"')
    config = f" (config {config_hash})" if config_hash else ""
    then = (f'The run is marked not finished: the next flow.run runs "{task_name}" again.' if marked else
            f'The run counts as not finished: the next flow.run runs "{task_name}" again.')
    return StoredResultDamaged(f'Task "{task_name}"{config}: {what} cannot be read: {location} {problem}. {then}',
                               task_name=task_name, key=key, config_hash=config_hash, location=location)


@dataclass(frozen=True)
class ObjectMeta:
    """What a store knows about a saved object without loading it: its type and size in bytes
    (None where the store does not know)."""

    type: Optional[str]
    size: Optional[int]


class DeferredObjects(Mapping):
    """A run's ``{name: ObjectMeta}``, read on first access (listing runs stays cheap for callers
    that never look at the objects). With ``read_one``, looking up one name reads only that
    object's metadata (None: the run has no such object)."""

    def __init__(self, read: Callable[[], Dict[str, ObjectMeta]],
                 read_one: Optional[Callable[[str], Optional[ObjectMeta]]] = None):
        self._read: Optional[Callable[[], Dict[str, ObjectMeta]]] = read
        self._read_one = read_one
        self._objects: Dict[str, ObjectMeta] = {}

    def _loaded(self) -> Dict[str, ObjectMeta]:
        if self._read is not None:
            self._objects, self._read = self._read(), None
        return self._objects

    def __getitem__(self, name: str) -> ObjectMeta:
        if self._read is not None and self._read_one is not None:
            meta = self._read_one(name)
            if meta is None:
                raise KeyError(name)
            return meta
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return repr(self._loaded())


@dataclass
class RunRecord:
    """One stored run of a task, as ``ResultsStore.runs()`` lists it.

    ``run_id`` names the run in the store (e.g. ``"exp-1-004"``), ``info`` is the stored
    ``fluidml_info`` dict (None while the run has not written it: it is running, or its process
    died), ``objects`` maps each saved object's name to its ``ObjectMeta`` (stores may fill it on
    first access), and ``location`` is the run's directory or document address.
    """

    task_name: str
    run_id: str
    unique_config: Dict[str, Any]
    info: Optional[Dict[str, Any]]
    objects: Mapping[str, ObjectMeta] = field(default_factory=dict)
    location: str = ""


class ResultsStore(ABC):
    """The interface of a results store: five core methods, the rest derived from them."""

    #: True for stores that keep saved objects as they are, in this process (no serialization).
    keeps_objects: bool = False
    #: True if a copy of the store pickled to a worker process reads and writes the same results
    #: (files, a database server). Other stores stay in the parent process, and worker processes
    #: reach them through it, so no result is lost whatever the store keeps in memory.
    process_safe: bool = False

    #: Set by stores opened only to be read (``read_only=True``): every write raises.
    read_only: bool = False

    def __init__(self) -> None:
        self._lock: Any = None

    def _check_writable(self, action: str, task_name: str) -> None:
        """Raises ``ResultsStoreError`` if the store was opened read-only."""
        if self.read_only:
            raise ResultsStoreError(f'Cannot {action} of task "{task_name}": {self!r} was opened read-only. Open it '
                                    f"without read_only=True to change it.", task_name=task_name)

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
        """The names of the tasks that have runs in the store, sorted."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot list its tasks: it does not implement task_names(). Implement "
            f"task_names() and runs() to use it with sweep tables and the fluidml command.")

    def runs(self, task_name: str) -> Iterator[RunRecord]:
        """The stored runs of a task, one ``RunRecord`` each (in the order the store keeps them)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot list the runs of task \"{task_name}\": it does not implement runs(). "
            f"Implement task_names() and runs() to use it with sweep tables and the fluidml command.")

    def load_listed(self, record: RunRecord, name: str) -> Optional[Any]:
        """The object ``name`` of a run that ``runs()`` listed: ``load`` of its task and config.
        Stores may load it from what the listing read instead of finding the run again."""
        return self.load(name, record.task_name, record.unique_config)

    def run_damage(self, task_name: str, task_unique_config: Dict, deep: bool = False) -> List[Damage]:
        """What is wrong with a stored run (nothing: an empty list). The planner calls it for each
        finished run before reusing it, so it must be cheap (e.g. a size check per object);
        ``deep=True`` checks everything the store can (checksums), for ``fluidml.results.verify``.
        Stores without integrity data find nothing."""
        return []

    def check_runs(self, task_name: str, repair: bool = False) -> List[Damage]:
        """Deep checks (``run_damage(deep=True)``) of every stored run of a task, for
        ``fluidml.results.verify``; with ``repair``, each damaged run is marked not finished."""
        found: List[Damage] = []
        for config in self.stored_configs(task_name):
            damage = self.run_damage(task_name, config, deep=True)
            if damage and repair:
                self.mark_damaged(task_name, config, damage[0])
            found.extend(damage)
        return found

    def begin_attempt(self, task_name: str, task_unique_config: Dict) -> None:
        """Called by the task runner before an attempt of a task writes its run. Until the run's info
        is saved, this store object is the run's only writer, so it may keep the run's bookkeeping
        in memory and write it once, with the info. Stores that need nothing here do nothing."""

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
        """True if the run exists, its stored info says it finished, and nothing of it is damaged
        (``run_damage``). A damaged run is not finished (with a warning naming what is damaged)."""
        try:
            info = self.load(TASK_INFO, task_name, task_unique_config)
        except StoredResultDamaged as error:
            logger.warning("%s", error)
            return False
        if info is None or info.get("state") != "finished":
            return False
        damage = self.run_damage(task_name, task_unique_config)
        if damage:
            logger.warning("%s. The run counts as not finished.", damage[0])
        return not damage

    def mark_damaged(self, task_name: str, task_unique_config: Dict, damage: Damage) -> None:
        """Marks a run not finished because of ``damage`` (its info keeps what and where under
        ``"fluidml"."damage"``), so that the next ``flow.run`` runs it again. A run without info is
        not finished already and stays as it is."""
        try:
            info = self.load(TASK_INFO, task_name, task_unique_config)
        except StoredResultDamaged:
            info = {}  # unreadable: written anew
        if info is None:
            return
        info = dict(info)
        extra = dict(info.get(EXTRA) or {})
        extra["damage"] = {"location": damage.location, "problem": damage.problem}
        info.update(state="failed", **{EXTRA: extra})
        self.save(info, TASK_INFO, type_="json", task_name=task_name, task_unique_config=task_unique_config)

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
