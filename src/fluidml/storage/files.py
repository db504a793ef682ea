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

import functools
import logging
import os
from typing import Any, Dict, Optional, Tuple

from fluidml.config import config_digest
from fluidml.exception import ResultsStoreError
from fluidml.storage._claims import FileClaims
from fluidml.storage._file_store_base import NOT_FOUND, RunDirectories, check_name, reason_of
from fluidml.storage._filetypes import File, FilePromise, TypeInfo, remove_path, write_new_object, write_object
from fluidml.storage._integrity import Damaged, check_entry, checksum_path, load_checked
from fluidml.storage._runindex import CONFIG_FILE
from fluidml.storage._runlayout import INFO_FILE, entry_kwargs, info_entries, make_entry
from fluidml.storage.base import SAVED_RESULTS, TASK_INFO, RunRecord

__all__ = ["File", "FilePromise", "LocalFileStore", "TypeInfo"]

logger = logging.getLogger(__name__)

_RESERVED_FILES = (CONFIG_FILE, INFO_FILE)  # a run's own files, which no object may replace


class LocalFileStore(RunDirectories):
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

    def claims(self) -> "FileClaims":
        """Where drivers sharing this directory claim runs (see ``_claims.py``)."""
        return FileClaims(self._index.meta_dir, self._index.locked)


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
        check_name(name)
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
        return self._load_entry(run_dir, name, entry, task_name, task_unique_config, lazy, kwargs)

    def load_listed(self, record: RunRecord, name: str) -> Optional[Any]:
        """The object ``name`` of a run that ``runs()`` listed, loaded from the run directory and the
        object list that the listing read (no index lookup, no second read of the info)."""
        entries = info_entries(record.info)
        if entries is None or not record.location:
            return super().load_listed(record, name)  # the older layout: its registry is read anyway
        entry = entries.get(name)
        if entry is None:
            return None
        try:
            return self._load_entry(record.location, name, entry, record.task_name, record.unique_config,
                                    False, {}, damage_is_final=False)
        except Damaged:  # the run may have changed since it was listed: find it and read it again
            return self.load(name, record.task_name, record.unique_config)

    def _load_entry(self, run_dir: str, name: str, entry: Dict[str, Any], task_name: str, task_unique_config: Dict,
                    lazy: bool, kwargs: Dict[str, Any], damage_is_final: bool = True) -> Any:
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
            if not damage_is_final:
                raise
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
        self._last_found = NOT_FOUND
        dir_name = self._index.find(task_name, digest)
        self._records.drop((task_name, digest), None if dir_name is None else os.path.join(task_dir, dir_name))
        if dir_name is None:
            logger.debug('Nothing to delete: task "%s" has no run for this config.', task_name)
            return
        try:
            self._index.remove(task_name, digest)
        except OSError as error:
            raise ResultsStoreError(f'Task "{task_name}": its run {os.path.join(task_dir, dir_name)} cannot be '
                                    f"removed: {reason_of(error)}.", task_name=task_name) from error

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
        check_name(name)
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
