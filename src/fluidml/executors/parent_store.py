"""Stores that live in the parent process, as worker processes see them.

A store that is not ``process_safe`` (an ``InMemoryStore``, a custom store keeping results in
memory) is never copied to workers: each worker gets a ``ParentStore``. Its writes (``save``,
``delete``, ``delete_run``) are kept with the job and sent to the parent with the job's outcome,
which applies them in order. The objects a task will read (its inputs, its run's registry) travel
with the job; other reads ask the parent. So a task usually costs two messages, and the parent's
store changes only in the parent's thread.
"""

import pickle
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from fluidml.config import config_digest
from fluidml.executors import _pickling
from fluidml.executors._pickling import Packed
from fluidml.runner import PredecessorRef
from fluidml.storage.base import SAVED_RESULTS, ResultsStore, StoreContext

__all__ = ["ParentStore", "answer_call", "apply_writes", "snapshot"]

#: The reads a worker may ask the parent's store for.
FORWARDED_READS = frozenset({"load", "get_context", "open", "stored_configs"})

Call = Callable[[str, Tuple, Dict[str, Any]], Any]
Snapshot = Dict[Tuple[str, str], Dict[str, Optional[Packed]]]  # (task name, digest) -> name -> pickled object
Write = Tuple[str, Tuple, Dict[str, Any]]  # (method, arguments, keyword arguments)


class ParentStore(ResultsStore):
    """A worker's view of a results store in the parent process (see the module docstring).

    Args:
        call: Sends ``(method, args, kwargs)`` to the parent's store and returns the result.
    """

    def __init__(self, call: Call):
        super().__init__()
        self._call = call
        self._writes: List[Write] = []
        self._objects: Dict[Tuple[str, str], Dict[str, Optional[Packed]]] = {}  # pickled; None: deleted
        self._cleared: Set[Tuple[str, str]] = set()  # runs deleted by this job

    def seed(self, snapshot: "Snapshot") -> None:
        """Takes the parent's copy of the objects a job will read (see ``snapshot``)."""
        for key, objects in snapshot.items():
            self._objects[key] = dict(objects)

    def take_writes(self) -> List[Write]:
        """The job's writes, in order; the view starts afresh for the next job."""
        writes, self._writes = self._writes, []
        self._objects.clear()
        self._cleared.clear()
        return writes

    def save(self, obj: Any, name: str, type_: Optional[str] = None, task_name: str = "",
             task_unique_config: Optional[Dict] = None, **kwargs: Any) -> None:
        """Keeps ``obj`` for the parent: pickled now, so a problem shows at the ``save`` call, with
        its large buffers (numpy arrays) referenced, not copied, until they are sent."""
        config = task_unique_config or {}
        try:
            data = _pickling.pack(obj)
        except Exception as exc:
            raise TypeError(
                f'Task "{task_name}": the object "{name}" cannot be sent to the parent process, which holds the '
                f"results store ({type(exc).__name__}: {exc}). Save a picklable object, or use a LocalFileStore."
            ) from exc
        self._objects.setdefault((task_name, config_digest(config)), {})[name] = data
        self._writes.append(("save", (data, name, task_name, config), {"type_": type_, **kwargs}))

    def load(self, name: str, task_name: str, task_unique_config: Dict, **kwargs: Any) -> Optional[Any]:
        key = (task_name, config_digest(task_unique_config))
        objects = self._objects.get(key)
        if objects is not None and name in objects:
            data = objects[name]
            return None if data is None else data.load()
        if key in self._cleared:
            return None
        return self._call("load", (name, task_name, task_unique_config), kwargs)

    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        self._objects.setdefault((task_name, config_digest(task_unique_config)), {})[name] = None
        self._writes.append(("delete", (name, task_name, task_unique_config), {}))

    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        key = (task_name, config_digest(task_unique_config))
        self._objects[key] = {}
        self._cleared.add(key)
        self._writes.append(("delete_run", (task_name, task_unique_config), {}))

    def get_context(self, task_name: str, task_unique_config: Dict) -> Optional[StoreContext]:
        context: Optional[StoreContext] = self._call("get_context", (task_name, task_unique_config), {})
        return context

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("open", args, kwargs)

    def stored_configs(self, task_name: str) -> Any:
        return self._call("stored_configs", (task_name,), {})


def snapshot(store: ResultsStore, task: Any, predecessors: Sequence[PredecessorRef]) -> Snapshot:
    """What a job is about to read, taken from the parent's store and sent with the job, so that the
    worker need not ask for it: its predecessors' objects named like the task's inputs, and its own
    run's registry of saved results. (Only this task writes to its run while it runs, and finished
    predecessors' runs do not change, so the copy stays true.)"""
    taken: Snapshot = {}
    own = (task.name, config_digest(task._uc()))
    taken[own] = {SAVED_RESULTS: _dumped(store.load(SAVED_RESULTS, task.name, task._uc()))}
    for pred in predecessors:
        objects = taken.setdefault((pred.name, config_digest(pred.unique_config)), {})
        for name in task.expects or {}:
            objects[name] = _dumped(store.load(name, pred.name, pred.unique_config))
    return taken


def _dumped(obj: Any) -> Optional[Packed]:
    return None if obj is None else _pickling.pack(obj)


def answer_call(store: ResultsStore, payload: bytes) -> Tuple[bool, Any]:
    """Runs a worker's read on the parent's store: ``(True, pickled result)`` or ``(False, error)``."""
    try:
        method, args, kwargs = pickle.loads(payload)
        if method not in FORWARDED_READS:
            raise AttributeError(f"store.{method} cannot be called from a worker process.")
        return True, _pickling.dumps(getattr(store, method)(*args, **kwargs))
    except Exception as exc:
        return False, _sendable(exc)


def apply_writes(store: ResultsStore, writes: List[Write], encoded: bool = True) -> None:
    """Applies a job's writes to the parent's store, in the order the task made them. Saved objects
    are ``Packed`` (``encoded``) or as they are."""
    for method, args, kwargs in writes:
        if method == "save":
            data, name, task_name, config = args
            obj = data.load() if encoded else data
            store.save(obj, name, task_name=task_name, task_unique_config=config, **kwargs)
        elif method == "delete":
            store.delete(*args)
        elif method == "delete_run":
            store.delete_run(*args)
        else:
            raise ValueError(f"unknown store write {method!r} from a worker process")


def _sendable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__qualname__}: {exc}")
