"""The run index of an ``FsspecStore``: which run directory holds a task's unique config.

Object storage has no rename, no append and no lock, so runs are found and made with listings and
conditional creates only. Under the store's root, beside the runs (which are laid out as a
``LocalFileStore`` lays them out, so that copies read both ways)::

    <task>/<run_name>-<NNN>/config.json       made with a conditional create: it takes the counter
    .fluidml/claims/<task>/<digest>            a conditional create too, holding the run directory's
                                               name: one run per config, whoever claims it first
    .fluidml/index/<task>/<digest>/<run dir>   an empty marker: one listing finds every run of a task

A process's first look at a task lists its markers and its run directories (a request per 1000 of
them); a digest not found there is looked up by its claim (one GET), which finds runs that other
processes made since. Run directories without a marker (a ``LocalFileStore`` copied up, a crash
between the steps above) are adopted from their ``config.json``; markers of removed directories are
dropped. Two processes making a run for one config at once both take a counter, but only one claim
succeeds; the other removes its ``config.json`` and uses the claimed directory.
"""

import json
import logging
import threading
from typing import Any, Dict, List, Optional, Tuple

from fluidml.config import config_digest
from fluidml.storage._fsspec_access import FileAccess
from fluidml.storage._runindex import CONFIG_FILE, META_DIR, split_run_dir_name

__all__ = ["RunIndex", "check_task"]

logger = logging.getLogger(__name__)

_BAD_NAME_CHARS = ("/", "\\", "\x00")


def check_task(task_name: Any) -> None:
    """Raises ValueError for a task name that cannot be a directory name."""
    if not isinstance(task_name, str) or not task_name or task_name.startswith(".") or any(
        c in task_name for c in _BAD_NAME_CHARS
    ):
        raise ValueError(f"FsspecStore: the task name {task_name!r} cannot be a directory name; use a non-empty "
                         f"name without path separators that does not start with '.'.")


class _TaskRuns:
    """What this process knows about one task's runs."""

    __slots__ = ("by_digest", "by_dir", "counters")

    def __init__(self) -> None:
        self.by_digest: Dict[str, str] = {}
        self.by_dir: Dict[str, str] = {}
        self.counters: Dict[str, int] = {}  # run name -> highest sweep counter seen

    def add(self, digest: str, dir_name: str) -> None:
        old = self.by_digest.get(digest)
        if old is not None:
            self.by_dir.pop(old, None)
        self.by_digest[digest] = dir_name
        self.by_dir[dir_name] = digest
        self.count(dir_name)

    def drop(self, digest: str) -> None:
        dir_name = self.by_digest.pop(digest, None)
        if dir_name is not None:
            self.by_dir.pop(dir_name, None)

    def count(self, dir_name: str) -> None:
        parts = split_run_dir_name(dir_name)
        if parts is not None and parts[1] > self.counters.get(parts[0], -1):
            self.counters[parts[0]] = parts[1]


class RunIndex:
    """Finds, makes and forgets the runs of one store in one process (see the module docstring)."""

    def __init__(self, access: FileAccess, read_only: bool = False):
        self._access = access
        self._read_only = read_only  # (indexes in memory only: no markers or claims are written)
        self._tasks: Dict[str, _TaskRuns] = {}
        self._configs: Dict[Tuple[str, str], Dict] = {}  # (task, digest) -> config (a digest's config never changes)
        self._absent: Optional[Tuple[str, str]] = None  # the last digest found missing (saves a GET)
        self._lock = threading.RLock()

    def _marker(self, task_name: str, digest: str, dir_name: str) -> str:
        return self._access.path(META_DIR, "index", task_name, digest, dir_name)

    def _claim(self, task_name: str, digest: str) -> str:
        return self._access.path(META_DIR, "claims", task_name, digest)

    def config_path(self, task_name: str, dir_name: str) -> str:
        return self._access.path(task_name, dir_name, CONFIG_FILE)

    # ------------------------------------------------------------------------------ loading

    def _runs(self, task_name: str) -> _TaskRuns:
        runs = self._tasks.get(task_name)
        if runs is None:
            runs = self._tasks[task_name] = self._load(task_name)
        return runs

    def _load(self, task_name: str) -> _TaskRuns:
        """Lists the task's markers and run directories; adopts unmarked directories, drops stale markers."""
        access = self._access
        runs = _TaskRuns()
        markers = access.listing(access.path(META_DIR, "index", task_name), dirs=False)[0]
        on_disk = set(access.listing(access.path(task_name), dirs=True)[1])
        stale = []
        for relative in sorted(markers):
            digest, _, dir_name = relative.partition("/")
            if not dir_name or "/" in dir_name:
                continue
            if dir_name in on_disk:
                runs.add(digest, dir_name)
                continue
            stale.append(self._marker(task_name, digest, dir_name))  # its directory was removed
            if access.cat(self._claim(task_name, digest)) == dir_name.encode("utf-8"):
                stale.append(self._claim(task_name, digest))
        if stale and not self._read_only:
            access.remove(stale)
        for dir_name in sorted(on_disk - set(runs.by_dir)):
            if not dir_name.startswith("."):
                runs.count(dir_name)
                self._adopt(task_name, dir_name, runs)
        return runs

    def _adopt(self, task_name: str, dir_name: str, runs: _TaskRuns) -> None:
        """Indexes a run directory that has no marker, from its config.json."""
        config = self.read_config(task_name, dir_name)
        if config is None:
            return
        digest = config_digest(config)
        if self._read_only:
            if digest not in runs.by_digest:
                self._configs[(task_name, digest)] = config
                runs.add(digest, dir_name)
            return
        owner = self._take_claim(task_name, digest, dir_name)
        if owner != dir_name:
            logger.warning('Run directories %s and %s of task "%s" in %s hold the same config; using %s.',
                           dir_name, owner, task_name, self._access.url, owner)
            return
        self._access.pipe(self._marker(task_name, digest, dir_name), b"")
        self._configs[(task_name, digest)] = config
        runs.add(digest, dir_name)

    def read_config(self, task_name: str, dir_name: str) -> Optional[Dict]:
        """The unique config in a run directory's config.json (None, with a warning, if unreadable)."""
        path = self.config_path(task_name, dir_name)
        data = self._access.cat(path)
        where = self._access.url_of(path)
        if data is None:
            logger.warning("Skipping the run directory %s: it has no %s.", where.rsplit("/", 1)[0], CONFIG_FILE)
            return None
        try:
            config = json.loads(data)
        except ValueError as error:
            logger.warning("Skipping the run directory of %s: the file is unreadable (%s). Delete the "
                           "directory, or restore the file, to use it again.", where, error)
            return None
        if not isinstance(config, dict):
            logger.warning("Skipping the run directory of %s: it does not hold a config (a JSON object).", where)
            return None
        return config

    def _take_claim(self, task_name: str, digest: str, dir_name: str) -> Optional[str]:
        """Claims the config for ``dir_name``; the directory that holds the claim (ours or another's)."""
        path = self._claim(task_name, digest)
        if self._access.create(path, dir_name.encode("utf-8")):
            return dir_name
        owner = self._access.cat(path)
        return owner.decode("utf-8") if owner is not None else None

    # ------------------------------------------------------------------------------ lookups

    def find(self, task_name: str, digest: str) -> Optional[str]:
        """The run directory name of the config, or None (looks up the claim on a miss)."""
        with self._lock:
            runs = self._runs(task_name)
            dir_name = runs.by_digest.get(digest)
            if dir_name is not None or self._absent == (task_name, digest):
                return dir_name
            owner = self._access.cat(self._claim(task_name, digest))
            if owner is None:
                self._absent = (task_name, digest)
                return None
            dir_name = owner.decode("utf-8")
            runs.add(digest, dir_name)
            return dir_name

    def runs(self, task_name: str) -> List[Tuple[str, str]]:
        """(digest, run directory name) of each run of the task, by name (lists the task again)."""
        with self._lock:
            self._tasks.pop(task_name, None)
            by_dir = self._runs(task_name).by_dir
            return [(by_dir[name], name) for name in sorted(by_dir)]

    def config(self, task_name: str, digest: str, dir_name: str) -> Optional[Dict]:
        """The unique config of a run (read once per process: a digest's config never changes)."""
        config = self._configs.get((task_name, digest))
        if config is None:
            config = self.read_config(task_name, dir_name)
            if config is not None:
                self._configs[(task_name, digest)] = config
        return config

    # ------------------------------------------------------------------------------ changes

    def create(self, task_name: str, digest: str, config: Dict, run_name: Optional[str],
               sweep_counter: Optional[str], check: bool = False) -> str:
        """The run directory of the config, made (config.json, claim, marker) if there is none.

        A new directory is ``<run_name>-<NNN>`` with the next counter of that run name (``<NNN>``
        without a run name); a given ``sweep_counter`` is used when that name is free. With ``check``
        (a run is about to be written) a run this process knew is checked to still exist, and made
        whole again if another process deleted it or its making was cut short (one request).
        """
        data = json.dumps(config, indent=4).encode("utf-8")
        with self._lock:
            dir_name = self.find(task_name, digest)
            if dir_name is not None:
                if check and self._access.create(self.config_path(task_name, dir_name), data):
                    dir_name = self._claimed(task_name, digest, dir_name)
                return dir_name
            runs = self._runs(task_name)
            prefix = f"{run_name}-" if run_name else ""
            candidates = []
            if sweep_counter is not None and f"{prefix}{sweep_counter}" not in runs.by_dir:
                candidates.append(f"{prefix}{sweep_counter}")
            while True:
                dir_name = candidates.pop() if candidates else f"{prefix}{runs.counters.get(run_name or '', -1) + 1:03d}"
                if self._access.create(self.config_path(task_name, dir_name), data):
                    break
                runs.count(dir_name)  # taken by another process
            self._absent = None
            dir_name = self._claimed(task_name, digest, dir_name)
            self._configs[(task_name, digest)] = config
            return dir_name

    def _claimed(self, task_name: str, digest: str, dir_name: str) -> str:
        """Claims the config for ``dir_name`` (which has its config.json) and marks it; the run to use:
        this one, or the one another process claimed first (``dir_name`` is then removed)."""
        owner = self._take_claim(task_name, digest, dir_name)
        if owner != dir_name:
            self._access.remove_tree(self._access.path(task_name, dir_name))
            if owner is None:
                raise RuntimeError(f"the claim of a run of task {task_name!r} vanished while it was made")
            dir_name = owner
        self._access.pipe(self._marker(task_name, digest, dir_name), b"")
        self._runs(task_name).add(digest, dir_name)
        return dir_name

    def forget(self, task_name: str, digest: str) -> Optional[str]:
        """Removes the run's marker and claim (its objects are the caller's); its directory name."""
        with self._lock:
            dir_name = self.find(task_name, digest)
            if dir_name is None:
                return None
            self._access.remove([self._marker(task_name, digest, dir_name), self._claim(task_name, digest)])
            self._tasks[task_name].drop(digest)
            self._absent = None
            return dir_name
