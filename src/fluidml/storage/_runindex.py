"""The run index of a ``LocalFileStore``: for each task, unique-config digest -> run directory.

On disk it is an append-only log per task, ``<base_dir>/.fluidml/index/<task_name>.jsonl``, one
JSON line per change: ``["<digest>", "<run dir name>"]`` adds a run, ``["<digest>", null]`` removes
it. Each process keeps the log it has read in memory and reads only what other processes appended
since (its size tells). Changes to the directories and to the log happen under one file lock
(``<base_dir>/.fluidml/lock``, ``fcntl.flock``), so two processes never allocate the same run
directory or two directories for one config.

The log is a cache of what ``config.json`` files say. The first time a process looks at a task it
lists the task's directory: run directories the log does not know (a store written by the original
fluidml, an index that was deleted) are read from their ``config.json`` and added; directories that
are gone are removed. A read-only index (``read_only=True``) does the same in memory only: it never
takes the lock or appends to a log.
"""

import contextlib
import json
import logging
import os
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

from fluidml.config import config_digest
from fluidml.storage._filetypes import remove_path, temp_path, write_new_file

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one process per store directory
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunIndex", "split_run_dir_name"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
META_DIR = ".fluidml"


def split_run_dir_name(name: str) -> Optional[Tuple[str, int]]:
    """(run name, sweep counter) of a run directory name ``<run_name>-<NNN>`` (or ``<NNN>``)."""
    if name.isascii() and name.isdigit():
        return "", int(name)
    head, sep, tail = name.rpartition("-")
    if sep and tail.isascii() and tail.isdigit():
        return head, int(tail)
    return None


class _TaskRuns:
    """What the index says about one task's runs."""

    __slots__ = ("by_digest", "by_dir", "counters", "offset", "removed")

    def __init__(self) -> None:
        self.by_digest: Dict[str, str] = {}
        self.by_dir: Dict[str, str] = {}
        self.counters: Dict[str, int] = {}  # run name -> highest sweep counter seen
        self.offset = 0  # bytes of the log read so far
        self.removed: Dict[str, str] = {}  # digest -> directory name of its run until it was removed

    def apply(self, digest: str, dir_name: Optional[str]) -> None:
        if dir_name is None:
            old = self.by_digest.pop(digest, None)
            if old is not None:
                self.by_dir.pop(old, None)
                self.removed[digest] = old
            return
        self.removed.pop(digest, None)
        previous = self.by_dir.get(dir_name)
        if previous is not None:
            self.by_digest.pop(previous, None)
        old = self.by_digest.get(digest)
        if old is not None:
            self.by_dir.pop(old, None)
        self.by_digest[digest] = dir_name
        self.by_dir[dir_name] = digest
        self.count(dir_name)

    def count(self, dir_name: str) -> None:
        parts = split_run_dir_name(dir_name)
        if parts is not None and parts[1] > self.counters.get(parts[0], -1):
            self.counters[parts[0]] = parts[1]


class RunIndex:
    """Finds, creates and removes the run directories of a store (see the module docstring).

    Picklable: a copy in another process starts empty and reads the index again.
    """

    def __init__(self, base_dir: str, read_only: bool = False):
        self.base_dir = base_dir
        self.meta_dir = os.path.join(base_dir, META_DIR)
        self.read_only = read_only
        self._reset()

    def _reset(self) -> None:
        self._tasks: Dict[str, _TaskRuns] = {}
        self._lock_fd: Optional[int] = None
        self._pid = os.getpid()
        self._thread_lock = threading.RLock()
        self._depth = 0

    def __getstate__(self) -> Dict[str, Any]:
        return {"base_dir": self.base_dir, "meta_dir": self.meta_dir, "read_only": self.read_only}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # ------------------------------------------------------------------------------- locking

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the store's lock (re-entrant; shared with every process using this base_dir)."""
        if self._pid != os.getpid():  # forked: the lock file description is shared with the parent
            self._reset()
        with self._thread_lock:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and fcntl is not None and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _acquire(self) -> None:
        if fcntl is None:
            return
        if self._lock_fd is None:
            os.makedirs(self.meta_dir, exist_ok=True)
            self._lock_fd = os.open(os.path.join(self.meta_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    # ------------------------------------------------------------------------------- the log

    def _log_path(self, task_name: str) -> str:
        return os.path.join(self.meta_dir, "index", task_name + ".jsonl")

    def _read_log(self, task_name: str, runs: _TaskRuns) -> bool:
        """Applies what was appended to the task's log since it was last read; False if the log is
        missing or shorter than what was read (deleted or replaced: read it again from scratch)."""
        path = self._log_path(task_name)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return runs.offset == 0
        if size == runs.offset:
            return True
        if size < runs.offset:
            return False
        with open(path, "rb") as log:
            log.seek(runs.offset)
            data = log.read()
        end = data.rfind(b"\n") + 1  # a line still being appended is read next time
        for line in data[:end].splitlines():
            try:
                digest, dir_name = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash: the directory listing recovers its run
            runs.apply(digest, dir_name)
        runs.offset += end
        return True

    def _append(self, task_name: str, runs: _TaskRuns, entries: List[Tuple[str, Optional[str]]]) -> None:
        """Appends changes to the log (under the lock, after ``_read_log``) and applies them."""
        path = self._log_path(task_name)
        data = "".join(json.dumps(list(entry)) + "\n" for entry in entries).encode("utf-8")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, flags, 0o666)
        try:
            if os.fstat(fd).st_size > runs.offset:  # a line torn by a crash: do not glue ours to it
                data = b"\n" + data
            os.write(fd, data)
            runs.offset = os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)
        for digest, dir_name in entries:
            runs.apply(digest, dir_name)

    # ------------------------------------------------------------------------------- loading

    def _runs(self, task_name: str) -> _TaskRuns:
        runs = self._tasks.get(task_name)
        if runs is None:
            runs = self._tasks[task_name] = self._load(task_name)
        return runs

    def _load(self, task_name: str) -> _TaskRuns:
        """Reads the task's log and checks it against the task's directory, adding run directories
        it does not know (from their config.json) and removing those that are gone."""
        runs = _TaskRuns()
        self._read_log(task_name, runs)
        on_disk = self._list_dirs(task_name)
        if on_disk is not None and on_disk == set(runs.by_dir):
            return runs
        with contextlib.nullcontext() if self.read_only else self.locked():
            runs = _TaskRuns()
            self._read_log(task_name, runs)
            on_disk = self._list_dirs(task_name) or set()
            changes: List[Tuple[str, Optional[str]]] = []
            for dir_name in sorted(set(runs.by_dir) - on_disk):
                changes.append((runs.by_dir[dir_name], None))
            known = set(runs.by_digest)
            for dir_name in sorted(on_disk - set(runs.by_dir)):
                runs.count(dir_name)
                config = self._read_config(os.path.join(self.base_dir, task_name, dir_name))
                if config is None:
                    continue
                digest = config_digest(config)
                if digest in known:
                    logger.warning('Run directories %s and %s of task "%s" hold the same config; using %s.',
                                   dir_name, runs.by_digest.get(digest), task_name, runs.by_digest.get(digest))
                    continue
                known.add(digest)
                changes.append((digest, dir_name))
            if changes and self.read_only:
                for change in changes:
                    runs.apply(*change)
            elif changes:
                self._append(task_name, runs, changes)
        return runs

    def _list_dirs(self, task_name: str) -> Optional[set]:
        try:
            with os.scandir(os.path.join(self.base_dir, task_name)) as entries:
                return {e.name for e in entries if not e.name.startswith(".") and e.is_dir()}
        except FileNotFoundError:
            return None

    @staticmethod
    def _read_config(run_dir: str) -> Optional[Dict]:
        """The unique config in a run directory's config.json (None, with a warning, if unreadable)."""
        path = os.path.join(run_dir, CONFIG_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                config = json.loads(f.read())
        except FileNotFoundError:
            logger.warning("Skipping the run directory %s: it has no %s.", run_dir, CONFIG_FILE)
            return None
        except (OSError, ValueError) as error:
            logger.warning("Skipping the run directory %s: its %s is unreadable (%s). Delete the directory, or "
                           "restore the file, to use it again.", run_dir, path, error)
            return None
        if not isinstance(config, dict):
            logger.warning("Skipping the run directory %s: %s does not hold a config (a JSON object).", run_dir, path)
            return None
        return config

    # ------------------------------------------------------------------------------- lookups

    def find(self, task_name: str, digest: str) -> Optional[str]:
        """The run directory name of the config, or None (reads other processes' changes on a miss)."""
        with self._thread_lock:
            runs = self._runs(task_name)
            dir_name = runs.by_digest.get(digest)
            if dir_name is None and self.refresh(task_name):
                dir_name = self._tasks[task_name].by_digest.get(digest)
            return dir_name

    def refresh(self, task_name: str) -> bool:
        """Reads what other processes changed; True if anything may have changed."""
        with self._thread_lock:
            runs = self._runs(task_name)
            offset = runs.offset
            if not self._read_log(task_name, runs):
                self._tasks[task_name] = self._load(task_name)
                return True
            return runs.offset != offset

    def dir_names(self, task_name: str) -> List[str]:
        """The run directory names of the task, in the order they were indexed."""
        self.refresh(task_name)
        return list(self._tasks[task_name].by_dir)

    def digests(self, task_name: str) -> Dict[str, str]:
        """Run directory name -> config digest, for the task's indexed runs."""
        self.refresh(task_name)
        return dict(self._tasks[task_name].by_dir)

    def create(
        self, task_name: str, digest: str, config: Dict, run_name: Optional[str], sweep_counter: Optional[str]
    ) -> Tuple[str, bool]:
        """The run directory of the config, created (with its config.json) if there is none, and
        whether it was created now.

        A config whose run was removed gets its old directory name back (when it is free), so a
        run that is cleared and run again, or forced, keeps its name. Otherwise a new directory is
        ``<run_name>-<NNN>`` with the next counter of that run name (or ``<NNN>`` without a run
        name); a given ``sweep_counter`` is used when that name is free.
        """
        with self.locked():
            runs = self._runs(task_name)
            if not self._read_log(task_name, runs):
                runs = self._tasks[task_name] = self._load(task_name)
            dir_name = runs.by_digest.get(digest)
            task_dir = os.path.join(self.base_dir, task_name)
            if dir_name is not None:
                if os.path.isdir(os.path.join(task_dir, dir_name)):
                    return dir_name, False
                self._append(task_name, runs, [(digest, None)])  # deleted behind our back
            prefix = f"{run_name}-" if run_name else ""
            candidates = []
            if sweep_counter is not None and f"{prefix}{sweep_counter}" not in runs.by_dir:
                candidates.append(f"{prefix}{sweep_counter}")
            old_name = runs.removed.get(digest)
            if old_name is not None and old_name not in runs.by_dir:
                candidates.append(old_name)  # tried first
            counter = runs.counters.get(run_name or "", -1) + 1
            while True:
                dir_name = candidates.pop() if candidates else f"{prefix}{counter:03d}"
                run_dir = os.path.join(task_dir, dir_name)
                try:
                    os.mkdir(run_dir)
                    break
                except FileNotFoundError:
                    os.makedirs(task_dir, exist_ok=True)
                    candidates.append(dir_name)
                except FileExistsError:  # made by someone who does not keep the index
                    runs.count(dir_name)
                    counter = runs.counters.get(run_name or "", -1) + 1
            try:  # (no temporary file needed: the directory is new, and the index lists it only after)
                write_new_file(os.path.join(run_dir, CONFIG_FILE), json.dumps(config, indent=4).encode("utf-8"))
                self._append(task_name, runs, [(digest, dir_name)])
            except BaseException:
                remove_path(run_dir)  # a run directory without config.json could not be found again
                raise
            return dir_name, True

    def remove(self, task_name: str, digest: str) -> Optional[str]:
        """Deletes the config's run directory; its name, or None if there was none."""
        with self.locked():
            runs = self._runs(task_name)
            if not self._read_log(task_name, runs):
                runs = self._tasks[task_name] = self._load(task_name)
            dir_name = runs.by_digest.get(digest)
            if dir_name is None:
                return None
            run_dir = os.path.join(self.base_dir, task_name, dir_name)
            trash = os.path.join(self.meta_dir, "trash")
            os.makedirs(trash, exist_ok=True)
            doomed = temp_path(os.path.join(trash, f"{task_name}-{dir_name}"))
            try:
                os.replace(run_dir, doomed)  # the run disappears at once, even if the removal is cut short
            except FileNotFoundError:
                doomed = run_dir
            self._append(task_name, runs, [(digest, None)])
        remove_path(doomed)
        return dir_name
