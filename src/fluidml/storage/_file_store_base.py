"""The run directories of a ``LocalFileStore`` (the base class it builds on): finding and creating
them through the run index, the list of objects each run keeps and where each object lies, damage
marks and checks, and reading what the directory holds (task names, runs). ``files.py`` adds the
objects themselves: ``save``, ``load``, ``open``, ``delete``, ``delete_run``.
"""

import contextlib
import functools
import logging
import os
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from fluidml.config import config_digest, hashed_config
from fluidml.exception import ResultsStoreError, StoredResultDamaged
from fluidml.storage._file_runs import list_runs, list_task_names, path_size
from fluidml.storage._filetypes import TypeInfo, builtin_types, remove_leftovers
from fluidml.storage._runindex import RunIndex
from fluidml.storage._runlayout import INFO_FILE, BadFile, info_entries, legacy_entries
from fluidml.storage._runrecords import Entries, RunRecords
from fluidml.storage.base import (
    SAVED_RESULTS, TASK_INFO, Damage, DeferredObjects, ObjectMeta, ResultsStore, RunRecord, StoreContext, damage_error,
)

__all__ = ["BAD_NAME_CHARS", "RunDirectories", "check_name", "info_field", "reason_of", "registered_type"]

logger = logging.getLogger("fluidml.storage.files")  # (the store's logger, as before the split)

BAD_NAME_CHARS = ("/", "\\", "\x00")
NOT_FOUND = (None, None, None)


class RunDirectories(ResultsStore):
    """A results store's run directories under ``base_dir`` (see ``LocalFileStore``, the store)."""

    def __init__(self, base_dir: str, verify: bool = False, read_only: bool = False):
        super().__init__()
        self.base_dir = os.fspath(base_dir)
        self.verify = verify
        self.read_only = read_only
        self.type_registry: Dict[str, TypeInfo] = builtin_types()
        self._run_info: Any = None
        self._index = RunIndex(self.base_dir, read_only=read_only)
        self._records = RunRecords(self._index.locked)
        self._last_found: Tuple[Optional[str], Optional[str], Optional[str]] = NOT_FOUND

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_dir!r})"

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_run_info=None, _last_found=NOT_FOUND)  # the planning process's; a copy names no directories
        return state

    @property
    def _type_registry(self) -> Dict[str, TypeInfo]:
        """The name the original's docstring and examples use for ``type_registry``."""
        return self.type_registry

    @property
    def run_info(self) -> Any:
        """The current run info of a task (``run_name``, ``sweep_counter``), which is used for naming
        newly created directories."""
        return self._run_info

    @run_info.setter
    def run_info(self, run_info: Any) -> None:
        self._run_info = run_info


    # ------------------------------------------------------------------------------ addressing

    def _task_dir(self, task_name: str) -> str:
        if not isinstance(task_name, str) or not task_name or task_name.startswith(".") or any(
            c in task_name for c in BAD_NAME_CHARS
        ):
            raise ValueError(f"LocalFileStore: the task name {task_name!r} cannot be a directory name; use a "
                             f"non-empty name without path separators that does not start with '.'.")
        return os.path.join(self.base_dir, task_name)

    def _find_run(self, task_name: str, task_unique_config: Dict) -> Optional[str]:
        """The run directory of (task, exact unique config), or None."""
        digest = config_digest(task_unique_config)
        last, self._last_found = self._last_found, NOT_FOUND
        if last[0] == task_name and last[1] == digest:
            return last[2]  # planning: the run whose info was just read, now checked
        task_dir = self._task_dir(task_name)
        dir_name = self._index.find(task_name, digest)
        return None if dir_name is None else task_dir + os.sep + dir_name

    def _run_dir(self, task_name: str, task_unique_config: Dict) -> str:
        """The run directory of (task, exact unique config), created if there is none."""
        run_dir = self._find_run(task_name, task_unique_config)
        if run_dir is None:
            run_dir = self.get_context(task_name, task_unique_config).run_dir
        assert run_dir is not None
        return run_dir

    def get_context(self, task_name: str, task_unique_config: Dict) -> StoreContext:
        """The run's directory and sweep counter; creates the run directory if there is none (in an
        existing one, temporary files that writers which have died left are removed).

        A new directory is named after ``run_info`` (``<run_name>-<NNN>``, the next counter of that
        run name, or the stored counter of a run that is re-created).
        """
        task_dir = self._task_dir(task_name)
        self._check_writable("create a run", task_name)
        info = self._run_info
        try:
            dir_name, created = self._index.create(task_name, config_digest(task_unique_config), task_unique_config,
                                                   info_field(info, "run_name"), info_field(info, "sweep_counter"))
            if not created:  # a run found again (e.g. after its process died): no leftovers of dead writers
                remove_leftovers(os.path.join(task_dir, dir_name))
        except OSError as error:
            raise ResultsStoreError(f'Task "{task_name}": its run directory cannot be created in {task_dir}: '
                                    f"{reason_of(error)}.", task_name=task_name) from error
        return StoreContext(run_dir=os.path.join(task_dir, dir_name), sweep_counter=dir_name.rpartition("-")[2])

    def stored_configs(self, task_name: str) -> Iterator[Dict]:
        """The unique configs of the task's runs (read from their config.json files)."""
        task_dir = self._task_dir(task_name)
        for dir_name in self._index.dir_names(task_name):
            config = RunIndex._read_config(os.path.join(task_dir, dir_name))
            if config is not None:
                yield config

    def task_names(self) -> List[str]:
        """The tasks with runs in the directory, sorted (read from the directory; nothing is written)."""
        return list_task_names(self.base_dir)

    def runs(self, task_name: str) -> Iterator[RunRecord]:
        """The task's runs in the order of their directory names (each read from its directory: its
        config.json and fluidml_info.json; object types and sizes on first access). Nothing is written."""
        return list_runs(self._task_dir(task_name), task_name, self._objects_of)

    def _objects_of(self, run_dir: str, info: Optional[Dict]) -> Mapping[str, ObjectMeta]:
        """Type and size of each object the run saved: from the info where it lists them (format 2),
        else from the older layout's registry and load-info files (when first looked at)."""
        entries = info_entries(info)
        if entries is not None:
            return {name: ObjectMeta(entry.get("type"), entry.get("size")) for name, entry in entries.items()}

        def read() -> Dict[str, ObjectMeta]:
            try:
                legacy = legacy_entries(run_dir)
            except BadFile:
                return {}
            return {name: ObjectMeta(entry.get("type"), self._legacy_size(run_dir, name, entry))
                    for name, entry in legacy.items()}

        return DeferredObjects(read)

    def _legacy_size(self, run_dir: str, name: str, entry: Dict[str, Any]) -> Optional[int]:
        try:
            return path_size(self._path_of(run_dir, name, entry))
        except KeyError:  # a type not registered here
            return None

    # ------------------------------------------------------------------------------ bookkeeping

    def _type(self, type_: Optional[str]) -> TypeInfo:
        return registered_type(self.type_registry, type_, "LocalFileStore")

    def _key(self, task_name: str, config: Dict) -> Tuple[str, str]:
        return task_name, config_digest(config)

    def begin_attempt(self, task_name: str, task_unique_config: Dict) -> None:
        """From now until its info is saved, the run's objects are listed in memory (this store
        object is the run's only writer) and written once, with the info: only what this attempt
        saves is listed."""
        self._records.begin(self._key(task_name, task_unique_config))

    def _read_info(self, run_dir: str, task_name: str, config: Dict) -> Optional[Dict[str, Any]]:
        try:
            return self._records.info(run_dir)
        except BadFile as bad:
            raise self._unreadable(task_name, config, bad) from None

    def _entries(self, run_dir: str, task_name: str, config: Dict) -> Entries:
        """The run's saved objects (see ``RunRecords.entries``)."""
        try:
            return self._records.entries(run_dir, self._key(task_name, config))
        except BadFile as bad:
            raise self._unreadable(task_name, config, bad) from None

    @staticmethod
    def _unreadable(task_name: str, config: Dict, bad: BadFile) -> StoredResultDamaged:
        key = TASK_INFO if os.path.basename(bad.location) == INFO_FILE else SAVED_RESULTS
        return damage_error(task_name, hashed_config(config).hash, key, bad.location, bad.problem, marked=False)

    def _path(self, run_dir: str, name: str, entry: Dict[str, Any]) -> Tuple[str, TypeInfo]:
        type_info = self._type(entry.get("type"))
        relative = entry.get("dir") or "."
        obj_dir = run_dir if relative == "." else os.path.normpath(os.path.join(run_dir, relative))
        return obj_dir + os.sep + type_info.file_name(name), type_info

    def _path_of(self, run_dir: str, name: str, entry: Dict[str, Any]) -> str:
        return self._path(run_dir, name, entry)[0]

    def _object_dir(self, run_dir: str, sub_dir: Optional[str]) -> Tuple[str, str]:
        """(directory, directory relative to the run) for an object saved with ``sub_dir``."""
        if not sub_dir:
            return run_dir, "."
        relative = os.path.normpath(os.fspath(sub_dir))
        if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep):
            raise ValueError(f"sub_dir {sub_dir!r} leaves the run directory {run_dir}; give a relative path inside it.")
        obj_dir = os.path.join(run_dir, relative)
        os.makedirs(obj_dir, exist_ok=True)
        return obj_dir, relative

    def _damaged(self, run_dir: str, task_name: str, config: Dict, name: str, location: str,
                 problem: str) -> StoredResultDamaged:
        """The error for a damaged object; the run is marked not finished (unless its attempt is in
        progress here)."""
        marked = self._records.attempt(self._key(task_name, config)) is None
        if marked:
            try:
                self._records.mark(run_dir, location, problem)
            except OSError as error:
                logger.warning("Cannot mark the damaged run %s as not finished: %s", run_dir, error)
                marked = False
        return damage_error(task_name, hashed_config(config).hash, name, location, problem, marked=marked)

    def _on_damage(self, run_dir: str, task_name: str, config: Dict, name: str) -> Callable[[str, str], BaseException]:
        return functools.partial(self._damaged, run_dir, task_name, config, name)

    def _on_change(self, run_dir: str, task_name: str, config: Dict, name: str) -> Callable[[], None]:
        return functools.partial(self._rechecksum, run_dir, task_name, config, name)

    def _rechecksum(self, run_dir: str, task_name: str, config: Dict, name: str) -> None:
        with self._writing(task_name, name, run_dir, run_dir):
            self._records.rechecksum(run_dir, self._key(task_name, config), name, self._path_of)

    @contextlib.contextmanager
    def _writing(self, task_name: str, name: str, run_dir: str, path: str) -> Iterator[None]:
        """Turns an OSError while writing into an error naming the task, the object and the file."""
        try:
            yield
        except OSError as error:
            if not os.path.isdir(run_dir):
                raise ResultsStoreError(
                    f'Task "{task_name}": its run directory {run_dir} was removed while "{name}" was written to it '
                    f"(by another process: a flow.run with force, or delete_run). Run the task again.",
                    task_name=task_name, key=name) from error
            raise ResultsStoreError(f'Task "{task_name}": "{name}" cannot be written to {path}: {reason_of(error)}.',
                                    task_name=task_name, key=name) from error


    # ------------------------------------------------------------------------------ integrity

    def run_damage(self, task_name: str, task_unique_config: Dict, deep: bool = False) -> List[Damage]:
        """What is wrong with the run: an unreadable info or list of objects, a saved object that is
        gone or of another size (a stat each), a damage it was marked with; with ``deep`` also an
        object of another checksum, or a config.json that is gone or holds another config."""
        run_dir = self._find_run(task_name, task_unique_config)
        if run_dir is None:
            return []
        if not deep and self._sizes_match(run_dir):
            return []
        digest = config_digest(task_unique_config) if deep else None
        return self._records.damage(task_name, run_dir, self._path_of, deep, digest)

    def _sizes_match(self, run_dir: str) -> bool:
        """The common case of the planner's check, made quick: a format-2 run without a damage mark
        whose objects (files in the run directory) all have their recorded sizes. False sends the
        run to the full check, which also tells what is wrong."""
        try:
            info = self._records.info(run_dir)
        except BadFile:
            return False
        extra = info.get("fluidml") if info is not None else None
        objects = extra.get("objects") if isinstance(extra, dict) and "damage" not in extra else None
        if not isinstance(objects, dict):
            return False
        for name, entry in objects.items():
            type_info = self.type_registry.get(entry.get("type"))
            if type_info is None or type_info.needs_path or entry.get("dir") != "." or entry.get("size") is None:
                return False
            try:
                if os.stat(run_dir + os.sep + type_info.file_name(name)).st_size != entry["size"]:
                    return False
            except OSError:
                return False
        return True

    def check_runs(self, task_name: str, repair: bool = False) -> List[Damage]:
        """Deep checks of every run directory of the task (``fluidml.results.verify``); with
        ``repair``, damaged runs are marked not finished."""
        task_dir = self._task_dir(task_name)
        return self._records.check_task(task_name, task_dir, self._index.digests(task_name), self._path_of, repair)



def info_field(info: Any, key: str) -> Optional[str]:
    """``run_name`` or ``sweep_counter`` of a run info (a dict or an object), as text; None if unset."""
    value = info.get(key) if isinstance(info, dict) else getattr(info, key, None)
    return str(value) if value not in (None, "") else None


def reason_of(error: OSError) -> str:
    """An OSError in words, with its errno."""
    return f"{error.strerror} (errno {error.errno})" if error.strerror else str(error)


def check_name(name: Any) -> None:
    """Raises ValueError for an object name that cannot be a file name."""
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in BAD_NAME_CHARS):
        raise ValueError(f"The object name {name!r} cannot be a file name; use a non-empty name without path "
                         f"separators.")


def registered_type(registry: Dict[str, TypeInfo], type_: Optional[str], store: str) -> TypeInfo:
    """The ``TypeInfo`` registered as ``type_`` (``"pickle"`` when None); a KeyError names the
    ``store`` class and the registered types."""
    name = "pickle" if type_ is None else type_
    try:
        return registry[name]
    except KeyError:
        raise KeyError(f"{store} has no type {name!r}; registered types: {sorted(registry)}. "
                       f"Register it with a TypeInfo in type_registry (see LocalFileStore).") from None
