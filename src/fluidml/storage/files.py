"""LocalFileStore: results in a directory tree, laid out as the original fluidml lays them out.

    <base_dir>/<task_name>/<run_name>-<NNN>/
        config.json              the run's unique config (written when the run is created)
        <name>.<ext>             each saved object (<sub_dir>/<name>.<ext> with sub_dir)
        fluidml_info.json        the run's TaskInfo and its saved objects, with their sizes and
                                 checksums (written last: a run is finished once it says so)
    <base_dir>/.fluidml/         the store's lock, run index (see _runindex.py) and trash

Runs are found by the digest of their exact unique config through the index (O(1)); every file is
written to a temporary name and renamed into place. While a task runs, the store object that runs
it keeps the run's list of saved objects in memory and writes it once, with the info (see
_runlayout.py, which also reads the layout of older versions).
"""

import contextlib
import functools
import logging
import os
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from fluidml.config import config_digest, hashed_config
from fluidml.exception import ResultsStoreError, StoredResultDamaged
from fluidml.storage._filetypes import (
    File, FilePromise, TypeInfo, builtin_types, remove_leftovers, remove_path, write_new_object, write_object,
)
from fluidml.storage._integrity import Damaged, check_entry, checksum_path, load_checked
from fluidml.storage._runindex import CONFIG_FILE, RunIndex
from fluidml.storage._file_runs import list_runs, list_task_names, path_size
from fluidml.storage._runlayout import INFO_FILE, BadFile, entry_kwargs, info_entries, legacy_entries, make_entry
from fluidml.storage._runrecords import Entries, RunRecords
from fluidml.storage.base import (
    SAVED_RESULTS, TASK_INFO, Damage, DeferredObjects, ObjectMeta, ResultsStore, RunRecord, StoreContext, damage_error,
)
from fluidml.storage._claims import FileClaims

__all__ = ["File", "FilePromise", "LocalFileStore", "TypeInfo"]

logger = logging.getLogger(__name__)

_BAD_NAME_CHARS = ("/", "\\", "\x00")
_RESERVED_FILES = (CONFIG_FILE, INFO_FILE)  # a run's own files, which no object may replace
_NOT_FOUND = (None, None, None)


class LocalFileStore(ResultsStore):
    """A results store in a local directory: results survive between runs, and finished tasks are
    skipped on the next run.

    Out of the box it saves ``"json"``, ``"pickle"`` (the default when ``save`` gets no type) and
    ``"text"``. More types are added by a subclass that registers ``TypeInfo``s::

        class MyStore(LocalFileStore):
            def __init__(self, base_dir):
                super().__init__(base_dir)
                self.type_registry["torch"] = TypeInfo(torch.save, torch.load, "pt", needs_path=True)

    Args:
        base_dir: The directory that holds the results (created when needed).
        verify: Check every object's checksum when it is loaded. Without it, sizes are always
            checked, and checksums of objects up to 256 KiB (where that costs next to nothing).
        read_only: Never write to the directory (no run index, no lock file); saving or deleting
            then raises ``ResultsStoreError``. The ``fluidml`` command reads stores this way.

    Attributes:
        base_dir: The base directory that is used to store results from tasks.
        type_registry: Type name -> ``TypeInfo``, used by ``save``, ``load`` and ``open``.
    """

    keeps_objects = False
    process_safe = True  # worker processes open the same directory

    def __init__(self, base_dir: str, verify: bool = False, read_only: bool = False):
        super().__init__()
        self.base_dir = os.fspath(base_dir)
        self.verify = verify
        self.read_only = read_only
        self.type_registry: Dict[str, TypeInfo] = builtin_types()
        self._run_info: Any = None
        self._index = RunIndex(self.base_dir, read_only=read_only)
        self._records = RunRecords(self._index.locked)
        self._last_found: Tuple[Optional[str], Optional[str], Optional[str]] = _NOT_FOUND

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_dir!r})"

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_run_info=None, _last_found=_NOT_FOUND)  # the planning process's; a copy names no directories
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
            c in task_name for c in _BAD_NAME_CHARS
        ):
            raise ValueError(f"LocalFileStore: the task name {task_name!r} cannot be a directory name; use a "
                             f"non-empty name without path separators that does not start with '.'.")
        return os.path.join(self.base_dir, task_name)

    def _find_run(self, task_name: str, task_unique_config: Dict) -> Optional[str]:
        """The run directory of (task, exact unique config), or None."""
        digest = config_digest(task_unique_config)
        last, self._last_found = self._last_found, _NOT_FOUND
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
                                                   _field(info, "run_name"), _field(info, "sweep_counter"))
            if not created:  # a run found again (e.g. after its process died): no leftovers of dead writers
                remove_leftovers(os.path.join(task_dir, dir_name))
        except OSError as error:
            raise ResultsStoreError(f'Task "{task_name}": its run directory cannot be created in {task_dir}: '
                                    f"{_reason(error)}.", task_name=task_name) from error
        return StoreContext(run_dir=os.path.join(task_dir, dir_name), sweep_counter=dir_name.rpartition("-")[2])

    def claims(self) -> "FileClaims":
        """Where drivers sharing this directory claim runs (see ``_claims.py``)."""
        return FileClaims(self._index.meta_dir, self._index.locked)

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
        name = "pickle" if type_ is None else type_
        try:
            return self.type_registry[name]
        except KeyError:
            raise KeyError(f"LocalFileStore has no type {name!r}; registered types: {sorted(self.type_registry)}. "
                           f"Register it with a TypeInfo in type_registry (see LocalFileStore).") from None

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
            raise ResultsStoreError(f'Task "{task_name}": "{name}" cannot be written to {path}: {_reason(error)}.',
                                    task_name=task_name, key=name) from error

    # ------------------------------------------------------------------------------ core methods

    def save(  # type: ignore[override]  # type_ may be None (pickle), as Task.save passes it
        self,
        obj: Any,
        name: str,
        type_: Optional[str] = None,
        task_name: Optional[str] = None,
        task_unique_config: Optional[Dict] = None,
        sub_dir: Optional[str] = None,
        mode: Optional[str] = None,
        open_kwargs: Optional[Dict[str, Any]] = None,
        load_kwargs: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        """Saves ``obj`` as ``<run dir>[/<sub_dir>]/<name>.<ext>`` (creating the run directory).

        ``type_`` names a registered type (``"pickle"`` when not given); ``mode`` and
        ``open_kwargs`` go to the open function, ``load_kwargs`` are kept for later loads, and the
        other keyword arguments go to the type's save function (e.g. ``indent=4`` for JSON). The
        file appears complete or not at all; its size and checksum are recorded.
        """
        _check_name(name)
        task_name, task_unique_config = _check_run(task_name, task_unique_config)
        self._check_writable(f'save "{name}"', task_name)
        if name == SAVED_RESULTS:
            return  # the list of saved objects is kept with the run's info
        type_info = self._type(type_)
        run_dir = self._run_dir(task_name, task_unique_config)
        key = self._key(task_name, task_unique_config)
        if name == TASK_INFO:
            with self._writing(task_name, name, run_dir, os.path.join(run_dir, INFO_FILE)):
                self._records.save_info(run_dir, key, obj, self._path_of, **kwargs)
            return
        path = os.path.join(run_dir, sub_dir or "", type_info.file_name(name))
        mode = mode or type_info.write_mode()
        attempt = self._records.attempt(key)
        if attempt is not None and "a" in mode and name not in attempt:
            mode = mode.replace("a", "w")  # every attempt starts clean: nothing of an earlier one is appended to
        with self._writing(task_name, name, run_dir, path):
            obj_dir, relative = self._object_dir(run_dir, sub_dir)
            path = os.path.join(obj_dir, type_info.file_name(name))
            _check_reserved(run_dir, path, name, task_name)
            if "a" in mode or "+" in mode:  # appending to or updating the file there is: in place
                write_object(type_info, obj, path, mode, open_kwargs, kwargs)
                size, crc = (None, None) if attempt is not None else checksum_path(path)
            else:
                size, crc = write_new_object(type_info, obj, path, mode, open_kwargs, kwargs, name)
            entry = make_entry(type_ or "pickle", relative, size, crc, open_kwargs, load_kwargs)
            if size is None:
                entry["_deferred"] = True
            self._records.record(run_dir, key, name, entry)

    def load(self, name: str, task_name: str, task_unique_config: Dict, lazy: bool = False,
             **kwargs: Any) -> Optional[Any]:
        """The object ``name`` of the run, or None if the run did not save one.

        With ``lazy=True`` a ``FilePromise`` is returned, loaded on ``promise.load()``. Keyword
        arguments go to the type's load function (over the ``load_kwargs`` given at save time). An
        object the run saved that cannot be read (missing, of another size or, with
        ``verify=True``, checksum than saved) raises ``StoredResultDamaged``.
        """
        run_dir = self._find_run(task_name, task_unique_config)
        if run_dir is None:
            return None
        if name == TASK_INFO:
            info = self._read_info(run_dir, task_name, task_unique_config)
            if info is None and not os.path.isdir(run_dir) and self._index.refresh(task_name):
                return self.load(name, task_name, task_unique_config, lazy, **kwargs)  # moved by another process
            if info is not None:
                self._last_found = (task_name, config_digest(task_unique_config), run_dir)
            return None if info is None else dict(info)
        entries = self._entries(run_dir, task_name, task_unique_config)
        if name == SAVED_RESULTS:
            return list(entries)
        entry = entries.get(name)
        if entry is None:
            if not os.path.isdir(run_dir) and self._index.refresh(task_name):
                return self.load(name, task_name, task_unique_config, lazy, **kwargs)  # moved by another process
            return None
        path, type_info = self._path(run_dir, name, entry)
        load_kwargs, open_kwargs = entry_kwargs(entry)
        load_kwargs.update(kwargs)
        mode = None if type_info.needs_path else type_info.read_mode()
        on_damage = self._on_damage(run_dir, task_name, task_unique_config, name)
        if lazy:
            problem = check_entry(path, entry)
            if problem is not None:
                raise on_damage(path, problem)
            return FilePromise(name, path, type_info.save_fn, type_info.load_fn, type_info.open_fn, mode,
                               load_kwargs, entry=entry, verify=self.verify, on_damage=on_damage,
                               on_change=self._on_change(run_dir, task_name, task_unique_config, name), **open_kwargs)
        opener = None if mode is None else functools.partial(type_info.open_fn or open, path, mode, **open_kwargs)
        try:
            return load_checked(path, entry, lambda file: type_info.load_fn(file, **load_kwargs), opener,
                                self.verify, raw=mode is not None and "b" in mode and type_info.open_fn is None)
        except Damaged as damaged:
            raise on_damage(path, str(damaged)) from damaged.__cause__
        except IsADirectoryError:
            return type_info.load_fn(path, **load_kwargs)
        except Exception as error:
            if hasattr(error, "add_note"):
                error.add_note(f'fluidml: while loading the object "{name}" of task "{task_name}" from {path}')
            raise

    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the object ``name`` of the run (its file or directory) and unlists it."""
        self._check_writable(f'delete "{name}"', task_name)
        run_dir = self._find_run(task_name, task_unique_config)
        if run_dir is not None and name == TASK_INFO:
            remove_path(os.path.join(run_dir, INFO_FILE))
            self._records.forget(run_dir)
            return
        entry = None if run_dir is None else self._entries(run_dir, task_name, task_unique_config).get(name)
        if run_dir is None or entry is None:
            logger.debug('Nothing to delete: task "%s" has no object "%s" for this config.', task_name, name)
            return
        remove_path(self._path_of(run_dir, name, entry))
        self._records.record(run_dir, self._key(task_name, task_unique_config), name, None)

    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the run's whole directory (leftovers of interrupted writes included)."""
        task_dir = self._task_dir(task_name)
        self._check_writable("delete a run", task_name)
        digest = config_digest(task_unique_config)
        self._last_found = _NOT_FOUND
        dir_name = self._index.find(task_name, digest)
        self._records.drop((task_name, digest), None if dir_name is None else os.path.join(task_dir, dir_name))
        if dir_name is None:
            logger.debug('Nothing to delete: task "%s" has no run for this config.', task_name)
            return
        try:
            self._index.remove(task_name, digest)
        except OSError as error:
            raise ResultsStoreError(f'Task "{task_name}": its run {os.path.join(task_dir, dir_name)} cannot be '
                                    f"removed: {_reason(error)}.", task_name=task_name) from error

    def open(
        self,
        name: Optional[str] = None,
        task_name: Optional[str] = None,
        task_unique_config: Optional[Dict] = None,
        mode: Optional[str] = None,
        promise: Optional[FilePromise] = None,  # type: ignore[override]
        type_: Optional[str] = None,
        sub_dir: Optional[str] = None,
        **open_kwargs: Any,
    ) -> File:
        """Opens an object of the store as a ``File``, for incremental writing or reading.

        With ``promise`` the promised file is opened (in ``mode`` if given). Otherwise ``name``,
        ``task_name``, ``task_unique_config`` and ``mode`` are needed: ``"r"`` opens a saved
        object, ``"w"`` creates one (of ``type_``, pickle by default; the run directory is created
        if needed), ``"a"`` appends to one. Binary types are opened in binary mode. The size and
        checksum of a written object are recorded with the run's info.
        """
        if promise is not None:
            if not isinstance(promise, FilePromise):
                raise TypeError(f"open(promise=...) takes a FilePromise, got {type(promise).__name__}.")
            mode = mode or promise.mode or "r"
            on_close = getattr(promise, "on_change", None) if any(c in mode for c in "wa+") else None
            return File(promise.path, mode, promise.save_fn, promise.load_fn, promise.open_fn,
                        promise.load_kwargs, on_close=on_close, **promise.open_kwargs)
        missing = [arg for arg, value in (("name", name), ("task_name", task_name),
                                          ("task_unique_config", task_unique_config), ("mode", mode)) if value is None]
        if missing:
            raise ValueError(f"LocalFileStore.open needs a promise, or name, task_name, task_unique_config and "
                             f"mode; missing: {', '.join(missing)}.")
        assert name is not None and task_name is not None and task_unique_config is not None and mode is not None
        _check_name(name)
        if "r" not in mode:
            self._check_writable(f'open "{name}" for writing', task_name)
        if "r" in mode:
            run_dir = self._find_run(task_name, task_unique_config)
            entry = None if run_dir is None else self._entries(run_dir, task_name, task_unique_config).get(name)
            if run_dir is None or entry is None:
                raise FileNotFoundError(f'Task "{task_name}" has no saved object "{name}" for this config '
                                        f"(run directory: {run_dir or 'none'}).")
            path, type_info = self._path(run_dir, name, entry)
            problem = check_entry(path, entry)
            if problem is not None:
                raise self._damaged(run_dir, task_name, task_unique_config, name, path, problem)
            load_kwargs, stored_open_kwargs = entry_kwargs(entry)
            return File(path, _binary(mode, type_info), type_info.save_fn, type_info.load_fn, type_info.open_fn,
                        load_kwargs, **{**stored_open_kwargs, **open_kwargs})
        run_dir = self._run_dir(task_name, task_unique_config)
        entry = self._entries(run_dir, task_name, task_unique_config).get(name) if "a" in mode else None
        if "a" in mode and entry is None and self._records.attempt(self._key(task_name, task_unique_config)) is not None:
            mode = mode.replace("a", "w")  # every attempt starts clean: nothing of an earlier one is appended to
        if entry is not None:
            entry = dict(entry, size=None, crc32=None)
            relative = entry.get("dir") or "."
            obj_dir = os.path.normpath(os.path.join(run_dir, relative))
        else:
            self._type(type_)
            obj_dir, relative = self._object_dir(run_dir, sub_dir)
            entry = make_entry(type_ or "pickle", relative, None, None, open_kwargs, None)
        type_info = self._type(entry["type"])
        path = os.path.join(obj_dir, type_info.file_name(name))
        _check_reserved(run_dir, path, name, task_name)
        with self._writing(task_name, name, run_dir, path):
            file = File(path, _binary(mode, type_info), type_info.save_fn, type_info.load_fn, type_info.open_fn,
                        entry_kwargs(entry)[0], on_close=self._on_change(run_dir, task_name, task_unique_config, name),
                        **open_kwargs)
            entry["_deferred"] = True
            self._records.record(run_dir, self._key(task_name, task_unique_config), name, entry)
        return file

    def _register_result(self, name: Optional[str], task_name: str, task_unique_config: Dict) -> None:
        """Nothing to do: ``save`` and ``open`` list what they write."""

    def _unregister_result(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Nothing to do: ``delete`` unlists what it deletes."""

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


def _field(info: Any, key: str) -> Optional[str]:
    value = info.get(key) if isinstance(info, dict) else getattr(info, key, None)
    return str(value) if value not in (None, "") else None


def _reason(error: OSError) -> str:
    return f"{error.strerror} (errno {error.errno})" if error.strerror else str(error)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in _BAD_NAME_CHARS):
        raise ValueError(f"The object name {name!r} cannot be a file name; use a non-empty name without path "
                         f"separators.")


def _check_reserved(run_dir: str, path: str, name: str, task_name: str) -> None:
    path = os.path.normpath(path)
    if os.path.dirname(path) == os.path.normpath(run_dir) and os.path.basename(path) in _RESERVED_FILES:
        raise ValueError(f'Task "{task_name}": the object "{name}" would be written to {path} and replace the '
                         f"run's own {os.path.basename(path)}; save it under another name or type.")


def _check_run(task_name: Optional[str], task_unique_config: Optional[Dict]) -> Tuple[str, Dict]:
    if task_name is None or task_unique_config is None:
        raise TypeError("LocalFileStore.save needs task_name and task_unique_config (the run to save into).")
    return task_name, task_unique_config


def _binary(mode: str, type_info: TypeInfo) -> str:
    return mode + "b" if type_info.is_binary and "b" not in mode and not type_info.needs_path else mode
