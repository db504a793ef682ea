"""Listing a ``LocalFileStore`` for people: its tasks, a task's runs, a run's objects.

Everything here only reads, straight from the directories (never through the run index, which
writes when it meets runs it does not know), so listing a store that another process is writing,
or a store written by fluidml 0.3.4, changes nothing in it. Small files are read with plain ``os``
calls: listing 10 000 runs reads 20 000 of them.
"""

import json
import logging
import os
import stat
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from fluidml.storage._runindex import CONFIG_FILE, split_run_dir_name
from fluidml.storage.base import ObjectMeta, RunRecord

__all__ = ["list_runs", "list_task_names", "path_size", "read_bytes", "read_json"]

logger = logging.getLogger(__name__)

INFO_FILE = "fluidml_info.json"


def read_bytes(path: str) -> bytes:
    """The bytes of a small file, read with plain ``os`` calls (FileNotFoundError if there is none)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks: List[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_json(path: str) -> Any:
    """The JSON value in a small file (FileNotFoundError if there is none, ValueError if it is not JSON)."""
    return json.loads(read_bytes(path))


def _subdirs(path: str) -> List[str]:
    """The names of the directories in ``path`` that do not start with a dot (none if it is not there)."""
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _run_order(name: str) -> Tuple[str, int]:
    parts = split_run_dir_name(name)
    return parts if parts is not None else (name, -1)


def list_task_names(base_dir: str) -> List[str]:
    """The task directories of the store that hold at least one run (a directory with a config.json)."""
    return sorted(name for name in _subdirs(base_dir) if _holds_a_run(os.path.join(base_dir, name)))


def _holds_a_run(task_dir: str) -> bool:
    return any(os.path.exists(os.path.join(task_dir, name, CONFIG_FILE)) for name in _subdirs(task_dir))


def _read_part(run_dir: str, file_name: str, what: str) -> Optional[Any]:
    """A run's JSON file, or None if it is missing or unreadable (with a warning naming it)."""
    path = f"{run_dir}{os.sep}{file_name}"
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("Cannot read the %s of the run %s: %s is unreadable (%s).", what, run_dir, path, error)
        return None


def list_runs(task_dir: str, task_name: str,
              objects_of: Callable[[str, Optional[Dict]], Mapping[str, ObjectMeta]]) -> Iterator[RunRecord]:
    """A RunRecord per run directory of the task that has a config (a directory still being created has
    none yet and is left out); ``objects_of(run_dir, info)`` gives its objects."""
    for name in sorted(_subdirs(task_dir), key=_run_order):
        run_dir = f"{task_dir}{os.sep}{name}"
        config = _read_part(run_dir, CONFIG_FILE, "config")
        if not isinstance(config, dict):
            continue
        info = _read_part(run_dir, INFO_FILE, "info")
        info = info if isinstance(info, dict) else None
        yield RunRecord(task_name, name, config, info, objects_of(run_dir, info), run_dir)


def path_size(path: str) -> Optional[int]:
    """Bytes in a file, or in all files under a directory; None if there is nothing at ``path``."""
    try:
        mode = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(mode.st_mode):
        return mode.st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for file_name in files:
            try:
                total += os.stat(os.path.join(folder, file_name)).st_size
            except FileNotFoundError:
                pass
    return total
