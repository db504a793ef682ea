"""The runs of an ``FsspecStore`` (the base class it builds on): the file system and run index of
each process (made on first use and after a fork), finding and making a run's directory, where
each object lies, and reading what the store holds (task names, runs) and checking it.
``fsspec_store.py`` adds the objects themselves.
"""

import os
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from fluidml.config import config_digest, config_hash
from fluidml.exception import StoredResultDamaged
from fluidml.storage._file_store_base import info_field, registered_type
from fluidml.storage._filetypes import TypeInfo, builtin_types
from fluidml.storage._fsspec_access import FileAccess
from fluidml.storage._fsspec_errors import import_driver, safe_url
from fluidml.storage._fsspec_index import RunIndex, check_task
from fluidml.storage._fsspec_runs import RunFiles
from fluidml.storage.base import Damage, ObjectMeta, ResultsStore, RunRecord, StoreContext

__all__ = ["FsspecRuns"]


class FsspecRuns(ResultsStore):
    """A results store's runs at an fsspec URL (see ``FsspecStore``, the store)."""

    def __init__(self, url: str, *, read_only: bool = False, **storage_options: Any):
        super().__init__()
        self.read_only = read_only
        url = os.fspath(url) if isinstance(url, os.PathLike) else url
        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"FsspecStore needs a URL or path, such as 's3://bucket/prefix', got {url!r}.")
        protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
        import_driver(protocol)
        self._url = url
        self._options = dict(storage_options)
        #: memory:// is a dict of this process: other processes would each see their own, empty one.
        self.process_safe = protocol != "memory"
        self.type_registry: Dict[str, TypeInfo] = builtin_types()
        self._run_info: Any = None
        self._mutex = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._access: Optional[FileAccess] = None
        self._index: Optional[RunIndex] = None
        self._run_files: Optional[RunFiles] = None  # with the entries of runs this process writes
        self._pid: Optional[int] = None

    def __getstate__(self) -> Dict[str, Any]:
        state = {key: value for key, value in self.__dict__.items() if key != "_mutex"}
        state.update(_access=None, _index=None, _run_files=None, _pid=None, _run_info=None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mutex = threading.RLock()

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        return safe_url(self._url).rstrip("/")

    def __repr__(self) -> str:
        endpoint = self._options.get("endpoint_url")
        return f"FsspecStore({self.url!r}" + (f", endpoint_url={safe_url(str(endpoint))!r})" if endpoint else ")")

    @property
    def run_info(self) -> Any:
        """The run info (``run_name``, ``sweep_counter``) that names new run directories."""
        return self._run_info

    @run_info.setter
    def run_info(self, run_info: Any) -> None:
        self._run_info = run_info

    def _io(self) -> Tuple[FileAccess, RunIndex]:
        """This process's file system and run index, made on first use (and after a fork)."""
        if self._access is None or self._index is None or self._pid != os.getpid():
            with self._mutex:
                if self._access is None or self._pid != os.getpid():
                    self._reset()
                    access = FileAccess(self._url, self._options)
                    access.check()
                    self._index, self._run_files = RunIndex(access, self.read_only), RunFiles(access)
                    self._access, self._pid = access, os.getpid()
        assert self._access is not None and self._index is not None
        return self._access, self._index

    def _files(self) -> RunFiles:
        self._io()
        assert self._run_files is not None
        return self._run_files

    # ------------------------------------------------------------------------------ addressing

    def _run(self, task_name: str, config: Dict, create: bool = False, check: bool = False) -> Optional[str]:
        """The run directory name of (task, exact unique config), or None; made if ``create`` (and,
        with ``check``, checked to exist still: see ``RunIndex.create``)."""
        check_task(task_name)
        index = self._io()[1]
        digest = config_digest(config)
        dir_name = index.find(task_name, digest)
        if (dir_name is not None and not check) or not create:
            return dir_name
        info = self._run_info
        return index.create(task_name, digest, config, info_field(info, "run_name"), info_field(info, "sweep_counter"),
                            check)

    def _path(self, task_name: str, dir_name: str, *parts: str) -> str:
        return self._io()[0].path(task_name, dir_name, *parts)

    def _object_path(self, task_name: str, dir_name: str, name: str, entry: Dict) -> str:
        return self._path(task_name, dir_name, entry.get("dir") or ".", self._type(entry.get("type")).file_name(name))

    def _type(self, type_: Optional[str]) -> TypeInfo:
        return registered_type(self.type_registry, type_, "FsspecStore")

    def _damaged(self, task_name: str, config: Dict, name: str, path: str) -> Callable[[str], Exception]:
        where = self._io()[0].url_of(path)

        def error(problem: str) -> Exception:
            return StoredResultDamaged(
                f'The stored object "{name}" of task "{task_name}" (config {config_hash(config)}) at {where} '
                f"{problem}. Run the task again (flow.run(..., force=\"{task_name}\")) or delete its run "
                f"(store.delete_run) so that it is made anew.", task_name=task_name, key=name,
                config_hash=config_hash(config), location=where)

        return error

    def get_context(self, task_name: str, task_unique_config: Dict) -> StoreContext:
        """The run's location and sweep counter; makes the run if there is none (named after
        ``run_info``: ``<run_name>-<NNN>``). The location is a local path for local stores, else a URL."""
        self._check_writable("create a run", task_name)
        dir_name = self._run(task_name, task_unique_config, create=True, check=True)
        assert dir_name is not None
        access = self._io()[0]
        path = self._path(task_name, dir_name)
        return StoreContext(run_dir=path if access.kind == "local" else access.url_of(path),
                            sweep_counter=dir_name.rpartition("-")[2])

    # ------------------------------------------------------------------------------ listings

    def stored_configs(self, task_name: str) -> Iterator[Dict]:
        """The unique configs of the task's runs (each config.json is read once per process)."""
        check_task(task_name)
        index = self._io()[1]
        for digest, dir_name in index.runs(task_name):
            config = index.config(task_name, digest, dir_name)
            if config is not None:
                yield config

    def task_names(self) -> List[str]:
        """The tasks that have run directories in the store (one listing)."""
        access = self._io()[0]
        return [name for name in access.listing(access.root, dirs=True)[1] if not name.startswith(".")]

    def runs(self, task_name: str) -> Iterator[RunRecord]:
        """The task's runs, by run directory name: config, info and objects (a listing, then the
        config.json and info of each run)."""
        check_task(task_name)
        access, index = self._io()
        for digest, dir_name in index.runs(task_name):
            config = index.config(task_name, digest, dir_name)
            if config is None:
                continue
            info = self._files().read_info(task_name, dir_name)
            entries = self._files().current(task_name, dir_name, info)
            objects = {name: ObjectMeta(entry["type"], entry.get("size")) for name, entry in entries.items()
                       if entry.get("type")}
            yield RunRecord(task_name, dir_name, config, info, objects, access.url_of(access.path(task_name, dir_name)))

    def run_damage(self, task_name: str, task_unique_config: Dict, deep: bool = False) -> List[Damage]:
        """Problems of a finished run: listed objects that are missing or not of their recorded size
        (``deep``: whose CRC-32 differs too). Sizes come from one listing of the task per process
        (a request per 1000 objects for all its runs); a run that looks damaged is listed again first."""
        dir_name = self._run(task_name, task_unique_config)
        files = self._files()
        info = None if dir_name is None else files.read_info(task_name, dir_name, reuse=not deep)
        if dir_name is None or info is None or info.get("state") != "finished":
            return []
        objects = [(name, self._object_path(task_name, dir_name, name, entry), entry)
                   for name, entry in files.entries(task_name, dir_name, info).items() if entry.get("type")]
        return [Damage(task_name, dir_name, location, problem)
                for location, problem in files.damage(task_name, dir_name, objects, deep)]
