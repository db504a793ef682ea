"""InMemoryStore: results in a dict, keyed by task name and unique-config digest (O(1) lookups)."""

import logging
from typing import Any, Dict, Iterator, List, Optional

from fluidml.config import config_digest
from fluidml.storage.base import SAVED_RESULTS, ResultsStore, RunRecord, StoreContext

__all__ = ["InMemoryStore"]

logger = logging.getLogger(__name__)


class InMemoryStore(ResultsStore):
    """An in-memory results store; the default when ``Flow.run()`` gets no store.

    Each run is one dict of its objects, keyed by task name and unique-config digest. The configs
    themselves are not kept (they hold an entry per ancestor, which adds up in deep graphs), so
    the store cannot list a task's runs; ``Task.load`` finds upstream runs through the flow's
    graph instead. With a ``multiprocessing`` manager the runs live in a ``manager.dict()`` that
    processes share.

    Args:
        manager: An optional ``multiprocessing.Manager()`` to share the store between processes.
    """

    keeps_objects = True

    def __init__(self, manager: Optional[Any] = None):
        super().__init__()
        self._runs: Any = manager.dict() if manager is not None else {}

    def save(  # type: ignore[override]  # the documented argument order of InMemoryStore.save
        self,
        obj: Any,
        name: str,
        task_name: str,
        task_unique_config: Dict,
        type_: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """Saves ``obj`` under ``name`` in the run (task name, unique config); ``type_`` is not needed."""
        key = (task_name, config_digest(task_unique_config))
        with self.lock:
            run = self._runs.get(key)
            if run is None:
                run = {}
            run[name] = obj
            self._runs[key] = run  # a manager dict only stores what is assigned

    def get_results(self, task_name: str, task_unique_config: Dict) -> Optional[Dict[str, Any]]:
        """All objects the run saved, or None if it saved nothing (the base class's loads, in one step)."""
        run = self._runs.get((task_name, config_digest(task_unique_config)))
        names = run.get(SAVED_RESULTS) if run is not None else None
        if not names:
            return None
        return {name: run[name] for name in names if run.get(name) is not None}

    def _register_result(self, name: Optional[str], task_name: str, task_unique_config: Dict) -> None:
        """Adds ``name`` to the run's registry of saved results (the base class's load and save, in one
        step: this runs for every saved object)."""
        key = (task_name, config_digest(task_unique_config))
        with self.lock:
            run = self._runs.get(key)
            if run is None:
                run = {}
            names = run.get(SAVED_RESULTS) or []
            if name not in names:
                run[SAVED_RESULTS] = [*names, name]
                self._runs[key] = run

    def load(self, name: str, task_name: str, task_unique_config: Dict, **kwargs: Any) -> Optional[Any]:
        """The object ``name`` of the run, or None. ``lazy`` is accepted and has no effect in memory."""
        run = self._runs.get((task_name, config_digest(task_unique_config)))
        return None if run is None else run.get(name)

    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the object ``name`` of the run, if it exists."""
        key = (task_name, config_digest(task_unique_config))
        with self.lock:
            run = self._runs.get(key)
            if run is None or name not in run:
                logger.debug('Nothing to delete: task "%s" has no object "%s" for this config.', task_name, name)
                return
            del run[name]
            self._runs[key] = run

    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the run, if it exists."""
        with self.lock:
            self._runs.pop((task_name, config_digest(task_unique_config)), None)

    def get_context(self, task_name: str, task_unique_config: Dict) -> Optional[StoreContext]:
        """In-memory runs have no directory: always None."""
        return None

    def task_names(self) -> List[str]:
        """The names of the tasks that saved something in this store, sorted."""
        return sorted({task_name for task_name, _digest in list(self._runs.keys())})

    def runs(self, task_name: str) -> Iterator[RunRecord]:
        """Not available: an InMemoryStore does not keep its runs' configs."""
        raise NotImplementedError(
            f'InMemoryStore cannot list the runs of task "{task_name}": it does not keep their configs. Build the '
            f'table from what flow.run() returned: fluidml.sweep_table(results, "{task_name}") with '
            f'results = flow.run(..., return_results="all"), or run the flow with a LocalFileStore.')
