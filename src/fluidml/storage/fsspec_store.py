"""FsspecStore: results in object storage (S3, GCS, Azure, ...) or any fsspec file system.

Runs are laid out as ``LocalFileStore`` lays them out (format 2), so that a bucket prefix copied to
disk reads as a ``LocalFileStore`` and a ``LocalFileStore`` copied up reads here::

    <prefix>/<task>/<run_name>-<NNN>/
        config.json          the unique config, written when the run is made (a conditional create)
        <name>.<ext>         each saved object (<sub_dir>/<name>.<ext> with sub_dir)
        fluidml_info.json    written LAST: TaskInfo fields + "fluidml": {"format": 2, "objects": {...}}
    <prefix>/.fluidml/       claims and index markers (see _fsspec_index.py)

Object storage has no rename and no directories, so an object appears only once it is complete, a
run's objects are recorded in its info, which is written after them, and a run counts as finished
only when its info says so. While a task runs, the store object that writes its run keeps the run's
object entries in memory (the run's own task is its only writer) and writes them with the info;
objects of a finished run can be changed later, and then its info is written again. Runs in the
older layout (``.fluidml/.saved_results.json`` and ``.fluidml/.<name>_load_info.p``) read too.
"""
import logging
from typing import Any, Dict, Optional

from fluidml.config import config_digest
from fluidml.exception import ResultsStoreError
from fluidml.storage._file_store_base import check_name
from fluidml.storage._fsspec_objects import (
    FsspecFile, FsspecPromise, ObjectWriter, append_start, crc_text, digest, entry_kwargs, make_entry, open_stream,
    read_object, reading, relative_dir, write_object, writing,
)
from fluidml.storage._fsspec_store_base import FsspecRuns
from fluidml.storage._fsspec_runs import put_entry, set_registry
from fluidml.storage.base import SAVED_RESULTS, TASK_INFO

__all__ = ["FsspecStore"]

logger = logging.getLogger(__name__)


class FsspecStore(FsspecRuns):
    """A results store at an fsspec URL: S3 and S3-compatible services, GCS, Azure, ``memory://`` and
    local paths, through one implementation.

    ``FsspecStore("s3://bucket/sweeps", endpoint_url="http://127.0.0.1:9000", key=..., secret=...)``:
    keyword arguments are fsspec storage options, passed to the file system as they are (credentials
    may also come from the environment, as the file system's package reads them). s3fs, gcsfs and
    adlfs come with the extras ``fluidml[s3]``, ``[gcs]`` and ``[azure]``.

    Worker processes and Ray tasks read and write the store directly (``process_safe``), except for
    ``memory://``, whose objects live in one process: that store stays in the calling process. Types
    are registered as for ``LocalFileStore`` (``type_registry``; ``open_fn`` gets a file object).
    """

    keeps_objects = False
    process_safe = True

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
        """Saves ``obj`` as ``<run>[/<sub_dir>]/<name>.<ext>`` (making the run if needed); the object
        appears complete or not at all. Arguments as for ``LocalFileStore.save``; ``mode="a"`` appends
        where the file system can (local paths, ``memory://``) and is refused elsewhere."""
        check_name(name)
        if task_name is None or task_unique_config is None:
            raise TypeError("FsspecStore.save needs task_name and task_unique_config (the run to save into).")
        self._check_writable(f'save "{name}"', task_name)
        dir_name = self._run(task_name, task_unique_config, create=True)
        assert dir_name is not None
        if name == TASK_INFO:
            self._files().save_info(task_name, dir_name, obj, kwargs)
            return
        if name == SAVED_RESULTS:  # the registry, as a worker's view of the store sends it
            names = [str(n) for n in obj]
            self._files().change(task_name, dir_name, lambda entries: set_registry(entries, names))
            return
        type_info = self._type(type_)
        mode = mode or type_info.write_mode()
        previous = self._append_target(name, task_name, dir_name, mode)
        entry = make_entry(type_ or "pickle", relative_dir(sub_dir, self.url), load_kwargs, open_kwargs)
        path = self._object_path(task_name, dir_name, name, entry)
        size, crc = write_object(self._io()[0], path, type_info, obj, mode, open_kwargs or {}, kwargs, previous)
        entry.update(size=size, crc32=crc)
        self._files().change(task_name, dir_name, lambda entries: put_entry(entries, name, entry))

    def _append_target(self, name: str, task_name: str, dir_name: str, mode: str) -> Optional[Dict]:
        """For a mode that appends: the entry of the object appended to (checked to be possible)."""
        if "+" in mode:
            raise ValueError(f'FsspecStore cannot open the object "{name}" in mode {mode!r}; use "w", "a" or "r".')
        if "a" not in mode:
            return None
        access = self._io()[0]
        if not access.can_append:
            raise ResultsStoreError(
                f'The object "{name}" of task "{task_name}" cannot be appended to: {self.url} is object storage, '
                f'which cannot append. Write it whole with mode "w" (or save the pieces as separate objects).',
                task_name=task_name, key=name)
        entry = self._files().current_entry(task_name, dir_name, name)
        return dict(entry) if entry and entry.get("type") else {"size": 0, "crc32": crc_text(0)}

    def load(self, name: str, task_name: str, task_unique_config: Dict, lazy: bool = False,
             **kwargs: Any) -> Optional[Any]:
        """The object ``name`` of the run, or None if the run never saved it. With ``lazy=True`` an
        ``FsspecPromise`` (no request is made until it is loaded). An object the run lists that cannot
        be read (missing, of another size) raises ``StoredResultDamaged``."""
        dir_name = self._run(task_name, task_unique_config)
        if dir_name is None:
            return None
        if name == TASK_INFO:
            return self._files().read_info(task_name, dir_name)
        if name == SAVED_RESULTS:
            return list(self._files().current(task_name, dir_name)) or None
        entry = self._files().current_entry(task_name, dir_name, name)
        if not entry or not entry.get("type"):
            return None
        path = self._object_path(task_name, dir_name, name, entry)
        if lazy:
            return FsspecPromise(self, name, task_name, task_unique_config, path, entry)
        return self._read_entry(name, task_name, task_unique_config, path, entry, kwargs)

    def _read_entry(self, name: str, task_name: str, config: Dict, path: str, entry: Dict, kwargs: Dict) -> Any:
        load_kwargs, open_kwargs = entry_kwargs(entry)
        return read_object(self._io()[0], path, self._type(entry.get("type")), entry, {**load_kwargs, **kwargs},
                           open_kwargs, self._damaged(task_name, config, name, path))

    def get_results(self, task_name: str, task_unique_config: Dict) -> Optional[Dict[str, Any]]:
        """All objects the run saved, read with one request for its info; None if it saved nothing."""
        dir_name = self._run(task_name, task_unique_config)
        entries = {} if dir_name is None else self._files().current(task_name, dir_name)
        if dir_name is None or not entries:
            return None
        return {name: self._read_entry(name, task_name, task_unique_config,
                                       self._object_path(task_name, dir_name, name, entry), entry, {})
                for name, entry in entries.items() if entry.get("type")}

    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the object ``name`` of the run (and its entry), if it exists."""
        self._check_writable(f'delete "{name}"', task_name)
        dir_name = self._run(task_name, task_unique_config)
        entry = None if dir_name is None else self._files().current_entry(task_name, dir_name, name)
        if dir_name is None or not entry or not entry.get("type"):
            logger.debug('Nothing to delete: task "%s" has no object "%s" for this config.', task_name, name)
            return
        access = self._io()[0]
        access.remove_tree(self._object_path(task_name, dir_name, name, entry))
        access.remove(self._files().old_paths(task_name, dir_name, name))
        self._files().change(task_name, dir_name, lambda entries: entries.pop(name, None) is not None)

    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        """Deletes the run: its info first (so it no longer counts as finished), then its marker and
        claim, then its objects. The config then gets a new run (the same name if the counter is given)."""
        self._check_writable("delete a run", task_name)
        dir_name = self._run(task_name, task_unique_config)
        if dir_name is None:
            logger.debug('Nothing to delete: task "%s" has no run for this config.', task_name)
            return
        access, index = self._io()
        files = self._files()
        files.forget(task_name, dir_name)
        access.remove([files.info_path(task_name, dir_name)])
        index.forget(task_name, config_digest(task_unique_config))
        access.remove_tree(self._path(task_name, dir_name))

    def open(
        self,
        name: Optional[str] = None,
        task_name: Optional[str] = None,
        task_unique_config: Optional[Dict] = None,
        mode: Optional[str] = None,
        promise: Optional[FsspecPromise] = None,  # type: ignore[override]
        type_: Optional[str] = None,
        sub_dir: Optional[str] = None,
        **open_kwargs: Any,
    ) -> FsspecFile:
        """Opens an object as a ``File``: ``"r"`` reads a saved object, ``"w"`` writes a new one (it
        streams, as a multipart upload on S3, and appears when the file is closed), ``"a"`` appends
        where the file system can. ``promise=`` opens a promised object."""
        if promise is not None:
            if not isinstance(promise, FsspecPromise):
                raise TypeError(f"open(promise=...) takes an FsspecPromise, got {type(promise).__name__}.")
            name, task_name, task_unique_config = promise.name, promise.task_name, promise.config
            mode = mode or "r"
        missing = [arg for arg, value in (("name", name), ("task_name", task_name),
                                          ("task_unique_config", task_unique_config), ("mode", mode)) if value is None]
        if missing:
            raise ValueError(f"FsspecStore.open needs a promise, or name, task_name, task_unique_config and mode; "
                             f"missing: {', '.join(missing)}.")
        assert name is not None and task_name is not None and task_unique_config is not None and mode is not None
        check_name(name)
        access = self._io()[0]
        if "r" in mode:
            dir_name = self._run(task_name, task_unique_config)
            entry = None if dir_name is None else self._files().current_entry(task_name, dir_name, name)
            if dir_name is None or not entry or not entry.get("type"):
                raise FileNotFoundError(f'Task "{task_name}" has no saved object "{name}" for this config '
                                        f"(store: {self.url}).")
            path = self._object_path(task_name, dir_name, name, entry)
            type_info = self._type(entry.get("type"))
            load_kwargs, stored = entry_kwargs(entry)
            stream = open_stream(access, path, entry.get("size"), self._damaged(task_name, task_unique_config,
                                                                               name, path))
            return FsspecFile(access.url_of(path), mode, type_info,
                              reading(stream, type_info, mode, {**stored, **open_kwargs}), load_kwargs, base=stream)
        self._check_writable(f'open "{name}" for writing', task_name)
        dir_name = self._run(task_name, task_unique_config, create=True)
        assert dir_name is not None
        previous = self._append_target(name, task_name, dir_name, mode)
        old = self._files().current_entry(task_name, dir_name, name) if previous is not None else None
        if old and old.get("type"):
            entry = dict(old)
        else:
            entry = make_entry(type_ or "pickle", relative_dir(sub_dir, self.url), None, open_kwargs)
        type_info = self._type(entry.get("type"))
        path = self._object_path(task_name, dir_name, name, entry)
        writer = ObjectWriter(access.open_write(path, append=previous is not None), access, path,
                              *append_start(previous))

        def committed(size: int, crc: Optional[str]) -> None:
            entry.update(zip(("size", "crc32"), (size, crc) if crc is not None else digest(access, path)))
            self._files().change(task_name, dir_name, lambda entries: put_entry(entries, name, entry))

        binary = bool(type_info.is_binary) or "b" in mode
        return FsspecFile(access.url_of(path), mode + ("b" if binary and "b" not in mode else ""), type_info,
                          writing(writer, type_info, binary, open_kwargs), entry_kwargs(entry)[0], writer, committed)

    # ------------------------------------------------------------------------------ registry, listings

    def _register_result(self, name: Optional[str], task_name: str, task_unique_config: Dict) -> None:
        """Adds ``name`` to the run's registry (the order of its object entries)."""
        self._check_writable(f'save "{name}"', task_name)
        dir_name = self._run(task_name, task_unique_config, create=True)
        assert dir_name is not None
        self._files().change(task_name, dir_name, lambda entries: put_entry(entries, str(name), None))

    def _unregister_result(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        """Removes ``name`` from the run's registry."""
        dir_name = self._run(task_name, task_unique_config)
        if dir_name is not None:
            self._files().change(task_name, dir_name, lambda entries: entries.pop(name, None) is not None)
