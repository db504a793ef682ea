"""LocalFileStore: results in a directory tree, laid out as the original fluidml lays them out.

    <base_dir>/<task_name>/<run_name>-<NNN>/
        config.json              the run's unique config
        fluidml_info.json        the run's TaskInfo (written last: a run is finished once it says so)
        <name>.<ext>             each saved object (<sub_dir>/<name>.<ext> with sub_dir)
        .fluidml/                .saved_results.json and .<name>_load_info.p (type, kwargs, sub_dir)
    <base_dir>/.fluidml/         the store's lock and run index (see _runindex.py)

Runs are found by the digest of their exact unique config through the index (O(1)); objects and
bookkeeping are written to a temporary name and renamed into place.
"""

import json
import logging
import os
import pickle
from typing import Any, Dict, Iterator, Optional, Tuple

from fluidml.config import config_digest
from fluidml.storage._filetypes import (
    File, FilePromise, TypeInfo, builtin_types, remove_path, replace_into_place, temp_path, write_atomic,
)
from fluidml.storage._claims import FileClaims
from fluidml.storage._runindex import META_DIR, RunIndex
from fluidml.storage.base import SAVED_RESULTS, TASK_INFO, ResultsStore, StoreContext

__all__ = ["File", "FilePromise", "LocalFileStore", "TypeInfo"]

logger = logging.getLogger(__name__)

#: Bookkeeping objects live at fixed places, as JSON, without load info.
_FIXED = {TASK_INFO: ("", "fluidml_info.json"), SAVED_RESULTS: (META_DIR, ".saved_results.json")}
_BAD_NAME_CHARS = ("/", "\\", "\x00")


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

    Attributes:
        base_dir: The base directory that is used to store results from tasks.
        type_registry: Type name -> ``TypeInfo``, used by ``save``, ``load`` and ``open``.
    """

    keeps_objects = False
    process_safe = True  # worker processes open the same directory

    def __init__(self, base_dir: str):
        super().__init__()
        self.base_dir = os.fspath(base_dir)
        self.type_registry: Dict[str, TypeInfo] = builtin_types()
        self._run_info: Any = None
        self._index = RunIndex(self.base_dir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_dir!r})"

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
        self._task_dir(task_name)
        dir_name = self._index.find(task_name, config_digest(task_unique_config))
        return None if dir_name is None else os.path.join(self.base_dir, task_name, dir_name)

    def _run_dir(self, task_name: str, task_unique_config: Dict) -> str:
        """The run directory of (task, exact unique config), created if there is none."""
        run_dir = self._find_run(task_name, task_unique_config)
        if run_dir is None:
            run_dir = self.get_context(task_name, task_unique_config).run_dir
        assert run_dir is not None
        return run_dir

    def get_context(self, task_name: str, task_unique_config: Dict) -> StoreContext:
        """The run's directory and sweep counter; creates the run directory if there is none.

        A new directory is named after ``run_info`` (``<run_name>-<NNN>``, the next counter of that
        run name, or the stored counter of a run that is re-created).
        """
        self._task_dir(task_name)
        info = self._run_info
        run_name = _field(info, "run_name")
        counter = _field(info, "sweep_counter")
        dir_name = self._index.create(task_name, config_digest(task_unique_config), task_unique_config,
                                      run_name, counter)
        return StoreContext(run_dir=os.path.join(self.base_dir, task_name, dir_name),
                            sweep_counter=dir_name.rpartition("-")[2])

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

    # ------------------------------------------------------------------------------ types, load info

    def _type(self, type_: Optional[str]) -> TypeInfo:
        name = "pickle" if type_ is None else type_
        try:
            return self.type_registry[name]
        except KeyError:
            raise KeyError(f"LocalFileStore has no type {name!r}; registered types: {sorted(self.type_registry)}. "
                           f"Register it with a TypeInfo in type_registry (see LocalFileStore).") from None

    @staticmethod
    def _load_info_path(run_dir: str, name: str) -> str:
        return os.path.join(run_dir, META_DIR, f".{name.lstrip('.')}_load_info.p")

    def _read_load_info(self, run_dir: str, name: str) -> Optional[Dict]:
        path = self._load_info_path(run_dir, name)
        try:
            with open(path, "rb") as f:
                info = pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception as error:  # a torn or foreign file: the object cannot be found through it
            logger.warning('Cannot read how the object "%s" was saved: %s is unreadable (%s).', name, path, error)
            return None
        return info if isinstance(info, dict) else None

    def _object(self, run_dir: str, name: str) -> Optional[Tuple[str, TypeInfo, Dict, Dict]]:
        """(path, type, load kwargs, open kwargs) of a saved object, or None if it was never saved."""
        fixed = _FIXED.get(name)
        if fixed is not None:
            return os.path.join(run_dir, *fixed), self.type_registry.get("json") or builtin_types()["json"], {}, {}
        info = self._read_load_info(run_dir, name)
        if info is None:
            return None
        type_info = self._type(info.get("type_"))
        obj_dir = os.path.normpath(os.path.join(run_dir, info.get("obj_dir") or "."))
        path = os.path.join(obj_dir, type_info.file_name(name))
        return path, type_info, info.get("load_kwargs") or {}, info.get("open_kwargs") or {}

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

    def _write_load_info(self, run_dir: str, name: str, type_: str, obj_dir: str,
                         open_kwargs: Optional[Dict], load_kwargs: Optional[Dict]) -> None:
        info = {"open_kwargs": open_kwargs or {}, "load_kwargs": load_kwargs or {}, "obj_dir": obj_dir, "type_": type_}
        write_atomic(self._load_info_path(run_dir, name), pickle.dumps(info, protocol=pickle.HIGHEST_PROTOCOL))

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
        file appears complete or not at all.
        """
        _check_name(name)
        task_name, task_unique_config = _check_run(task_name, task_unique_config)
        type_info = self._type(type_)
        run_dir = self._run_dir(task_name, task_unique_config)
        fixed = _FIXED.get(name)
        if fixed is not None:
            write_atomic(os.path.join(run_dir, *fixed), _json_text(obj, kwargs))
            return
        obj_dir, relative = self._object_dir(run_dir, sub_dir)
        self._write_load_info(run_dir, name, type_ or "pickle", relative, open_kwargs, load_kwargs)
        path = os.path.join(obj_dir, type_info.file_name(name))
        mode = mode or type_info.write_mode()
        if "a" in mode or "+" in mode:  # appending to or updating the file there is: in place
            _write(type_info, obj, path, mode, open_kwargs, kwargs)
            return
        temp = temp_path(path)
        try:
            _write(type_info, obj, temp, mode, open_kwargs, kwargs)
            if type_info.needs_path and not os.path.lexists(temp):
                raise FileNotFoundError(f'The save function of the type for "{name}" did not write {temp}.')
            replace_into_place(temp, path)
        except BaseException:
            remove_path(temp)
            raise

    def load(self, name: str, task_name: str, task_unique_config: Dict, lazy: bool = False,
             **kwargs: Any) -> Optional[Any]:
        """The object ``name`` of the run, or None if there is none.

        With ``lazy=True`` a ``FilePromise`` is returned, loaded on ``promise.load()``. Keyword
        arguments go to the type's load function (over the ``load_kwargs`` given at save time).
        """
        run_dir = self._find_run(task_name, task_unique_config)
        if run_dir is None:
            return None
        found = self._object(run_dir, name)
        if found is None and not os.path.isdir(run_dir) and self._index.refresh(task_name):
            return self.load(name, task_name, task_unique_config, lazy, **kwargs)  # moved by another process
        if found is None:
            return None
        path, type_info, load_kwargs, open_kwargs = found
        load_kwargs = {**load_kwargs, **kwargs}
        read_mode = None if type_info.needs_path else type_info.read_mode()
        if lazy and name not in _FIXED:
            if not os.path.lexists(path):
                return None
            return FilePromise(name, path, type_info.save_fn, type_info.load_fn, type_info.open_fn, read_mode,
                               load_kwargs, **open_kwargs)
        try:
            if read_mode is None:
                return type_info.load_fn(path, **load_kwargs)
            with File(path, read_mode, type_info.save_fn, type_info.load_fn, type_info.open_fn,
                      **open_kwargs) as file:
                return file.load(**load_kwargs)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return type_info.load_fn(path, **load_kwargs)
        except Exception as error:
            if name not in _FIXED:
                if hasattr(error, "add_note"):
                    error.add_note(f'fluidml: while loading the object "{name}" of task "{task_name}" from {path}')
                raise
            logger.warning('Ignoring the unreadable %s of task "%s" (%s): %s. The run counts as not finished.',
                           path, task_name, type(error).__name__, error)
            return None

    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the object ``name`` of the run (its file or directory and its load info)."""
        run_dir = self._find_run(task_name, task_unique_config)
        found = None if run_dir is None else self._object(run_dir, name)
        if run_dir is None or found is None:
            logger.debug('Nothing to delete: task "%s" has no object "%s" for this config.', task_name, name)
            return
        remove_path(found[0])
        if name not in _FIXED:
            remove_path(self._load_info_path(run_dir, name))

    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the run's whole directory."""
        self._task_dir(task_name)
        if self._index.remove(task_name, config_digest(task_unique_config)) is None:
            logger.debug('Nothing to delete: task "%s" has no run for this config.', task_name)

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
        if needed), ``"a"`` appends to one. Binary types are opened in binary mode.
        """
        if promise is not None:
            if not isinstance(promise, FilePromise):
                raise TypeError(f"open(promise=...) takes a FilePromise, got {type(promise).__name__}.")
            return File(promise.path, mode or promise.mode or "r", promise.save_fn, promise.load_fn, promise.open_fn,
                        promise.load_kwargs, **promise.open_kwargs)
        missing = [arg for arg, value in (("name", name), ("task_name", task_name),
                                          ("task_unique_config", task_unique_config), ("mode", mode)) if value is None]
        if missing:
            raise ValueError(f"LocalFileStore.open needs a promise, or name, task_name, task_unique_config and "
                             f"mode; missing: {', '.join(missing)}.")
        assert name is not None and task_name is not None and task_unique_config is not None and mode is not None
        _check_name(name)
        if "r" in mode:
            run_dir = self._find_run(task_name, task_unique_config)
            found = None if run_dir is None else self._object(run_dir, name)
            if found is None:
                raise FileNotFoundError(f'Task "{task_name}" has no saved object "{name}" for this config '
                                        f"(run directory: {run_dir or 'none'}).")
            path, type_info, load_kwargs, stored_open_kwargs = found
            return File(path, _binary(mode, type_info), type_info.save_fn, type_info.load_fn, type_info.open_fn,
                        load_kwargs, **{**stored_open_kwargs, **open_kwargs})
        run_dir = self._run_dir(task_name, task_unique_config)
        stored = self._read_load_info(run_dir, name) if "a" in mode else None
        if stored is not None:
            type_name, relative = stored.get("type_") or "pickle", stored.get("obj_dir") or "."
            obj_dir = os.path.normpath(os.path.join(run_dir, relative))
            load_kwargs = stored.get("load_kwargs") or {}
        else:
            type_name = type_ or "pickle"
            self._type(type_name)
            obj_dir, relative = self._object_dir(run_dir, sub_dir)
            load_kwargs = {}
            self._write_load_info(run_dir, name, type_name, relative, open_kwargs, None)
        type_info = self._type(type_name)
        return File(os.path.join(obj_dir, type_info.file_name(name)), _binary(mode, type_info), type_info.save_fn,
                    type_info.load_fn, type_info.open_fn, load_kwargs, **open_kwargs)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_run_info"] = None  # the planning process's; a copy names no directories
        return state


def _field(info: Any, key: str) -> Optional[str]:
    value = info.get(key) if isinstance(info, dict) else getattr(info, key, None)
    return str(value) if value not in (None, "") else None


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in _BAD_NAME_CHARS):
        raise ValueError(f"The object name {name!r} cannot be a file name; use a non-empty name without path "
                         f"separators.")


def _check_run(task_name: Optional[str], task_unique_config: Optional[Dict]) -> Tuple[str, Dict]:
    if task_name is None or task_unique_config is None:
        raise TypeError("LocalFileStore.save needs task_name and task_unique_config (the run to save into).")
    return task_name, task_unique_config


def _binary(mode: str, type_info: TypeInfo) -> str:
    return mode + "b" if type_info.is_binary and "b" not in mode and not type_info.needs_path else mode


def _json_text(obj: Any, kwargs: Dict[str, Any]) -> str:
    return json.dumps(obj, **kwargs)


def _write(type_info: TypeInfo, obj: Any, path: str, mode: str, open_kwargs: Optional[Dict], kwargs: Dict) -> None:
    if type_info.needs_path:
        type_info.save_fn(obj, path, **kwargs)
        return
    file = (type_info.open_fn or open)(path, mode, **(open_kwargs or {}))
    try:
        type_info.save_fn(obj, file, **kwargs)
    finally:
        file.close()
