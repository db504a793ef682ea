"""What the files of an ``FsspecStore`` run say: its info and its object entries, and whether the
objects it lists are there. One ``RunFiles`` per store and process.

A run's info is ``<run>/fluidml_info.json``; format 2 keeps the entries of its objects under
``"fluidml"."objects"`` (their key order is the run's registry of saved results). Runs written in the
older layout keep the registry in ``.fluidml/.saved_results.json`` and each object's entry in
``.fluidml/.<name>_load_info.p``; they read the same way.

While a task runs, the process that writes its run keeps the run's entries here (``pending``) and
writes them with the info (the run's own task is its only writer); a change to a finished run's
objects writes its info again at once.

``damage`` checks a finished run's objects against a listing of the task's prefix, which is kept
until a run is checked a second time: checking every run of a task costs a request per 1000
objects, not one per run. A run that looks damaged there is listed again before it is reported.
"""

import json
import logging
import pickle
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from fluidml.exception import StoredResultDamaged
from fluidml.storage._fsspec_access import FileAccess
from fluidml.storage._fsspec_objects import digest, entry_from_load_info
from fluidml.storage._runindex import META_DIR

__all__ = ["INFO_FILE", "Entries", "RunFiles", "put_entry", "set_registry"]

logger = logging.getLogger(__name__)

INFO_FILE = "fluidml_info.json"
Entries = Dict[str, Dict[str, Any]]  # object name -> entry, in the order the objects were first saved


def objects_of(info: Optional[Dict]) -> Optional[Entries]:
    """The format-2 object entries of an info, or None (an older info, or none)."""
    extra = info.get("fluidml") if isinstance(info, dict) else None
    objects = extra.get("objects") if isinstance(extra, dict) else None
    return objects if isinstance(objects, dict) else None


def put_entry(entries: Entries, name: str, entry: Optional[Dict]) -> bool:
    """Sets an entry (None: registers the name only, if it is new); True if anything changed."""
    if entry is None:
        if name in entries:
            return False
        entries[name] = {}
        return True
    entries[name] = entry
    return True


def set_registry(entries: Entries, names: List[str]) -> bool:
    """Makes the registry exactly ``names``, in that order (entries of other names are dropped)."""
    new = {name: entries.get(name, {}) for name in names}
    changed = list(new) != list(entries)
    entries.clear()
    entries.update(new)
    return changed


class RunFiles:
    """Reads and writes the bookkeeping files of runs (see the module docstring)."""

    def __init__(self, access: FileAccess):
        self._access = access
        self._pending: Dict[Tuple[str, str], Entries] = {}  # runs this process writes, not yet in an info
        self._lock = threading.RLock()
        self._listings: Dict[str, Dict[str, int]] = {}  # task -> relative path -> size
        self._checked: Dict[str, set] = {}  # task -> run directories checked against its listing
        self._last_read: Optional[Tuple[str, Optional[Dict]]] = None  # (path, info) of the last read_info

    def info_path(self, task_name: str, dir_name: str) -> str:
        return self._access.path(task_name, dir_name, INFO_FILE)

    def read_info(self, task_name: str, dir_name: str, reuse: bool = False) -> Optional[Dict]:
        """The run's info, or None if it has none (or, with a warning, if it is unreadable). With
        ``reuse``, the info the previous call read is taken if it was this run's (the planner reads a
        run's info and then checks the run: one GET, not two)."""
        path = self.info_path(task_name, dir_name)
        last, self._last_read = self._last_read, None
        if reuse and last is not None and last[0] == path:
            return last[1]
        info = self._read_info(path, task_name)
        self._last_read = (path, info)
        return info

    def _read_info(self, path: str, task_name: str) -> Optional[Dict]:
        data = self._access.cat(path)
        if data is None:
            return None
        try:
            info = json.loads(data)
        except ValueError as error:
            logger.warning('Ignoring the unreadable %s of task "%s" (%s). The run counts as not finished.',
                           self._access.url_of(path), task_name, error)
            return None
        return info if isinstance(info, dict) else None

    def write_info(self, task_name: str, dir_name: str, info: Any, entries: Entries, kwargs: Dict) -> None:
        """Writes the run's info with its object entries (format 2)."""
        if isinstance(info, dict):
            extra = info.get("fluidml")
            info = {**info, "fluidml": {**(extra if isinstance(extra, dict) else {}), "format": 2, "objects": entries}}
        self._listings.pop(task_name, None)
        self._access.pipe(self.info_path(task_name, dir_name), json.dumps(info, **kwargs).encode("utf-8"))

    # ------------------------------------------------------------------------------ entries

    def current(self, task_name: str, dir_name: str, info: Optional[Dict] = None) -> Entries:
        """The run's object entries as this process sees them: its pending ones while it writes the
        run, else those of the stored info (``info`` if given)."""
        pending = self._pending.get((task_name, dir_name))
        if pending is not None:
            return pending
        return self.entries(task_name, dir_name, info if info is not None else self.read_info(task_name, dir_name))

    def current_entry(self, task_name: str, dir_name: str, name: str) -> Optional[Dict]:
        """The entry of one object as this process sees it."""
        pending = self._pending.get((task_name, dir_name))
        return pending.get(name) if pending is not None else self.entry(task_name, dir_name, name)

    def change(self, task_name: str, dir_name: str, change: Callable[[Entries], bool]) -> None:
        """Applies ``change`` to the run's entries: to the pending ones while this process writes the
        run; to a finished run's at once (its info is written again)."""
        key = (task_name, dir_name)
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                info = self.read_info(task_name, dir_name)
                entries = self.entries(task_name, dir_name, info) if info is not None else {}
                if info is not None and info.get("state") == "finished":
                    if change(entries):
                        self.write_info(task_name, dir_name, info, entries, {"indent": 4})
                    return
                pending = self._pending[key] = entries
            change(pending)

    def save_info(self, task_name: str, dir_name: str, info: Any, kwargs: Dict) -> None:
        """Writes the run's info with its entries (the pending ones, else those stored)."""
        with self._lock:
            entries = self._pending.pop((task_name, dir_name), None)
            if entries is None:
                stored = self.read_info(task_name, dir_name)
                entries = self.entries(task_name, dir_name, stored) if stored is not None else {}
            self.write_info(task_name, dir_name, info, entries, kwargs)

    def forget(self, task_name: str, dir_name: str) -> None:
        """Drops what this process keeps of a run (it is being deleted)."""
        with self._lock:
            self._pending.pop((task_name, dir_name), None)
            self.forget_listing(task_name)

    def entries(self, task_name: str, dir_name: str, info: Optional[Dict]) -> Entries:
        """The object entries of a stored run: its info's, else the older layout's files."""
        objects = objects_of(info)
        if objects is not None:
            return dict(objects)
        names = self._old_file(task_name, dir_name, ".saved_results.json") or []
        return {name: self.old_entry(task_name, dir_name, name) or {} for name in names if isinstance(name, str)}

    def entry(self, task_name: str, dir_name: str, name: str) -> Optional[Dict]:
        """The entry of one object of a stored run (one or two requests)."""
        objects = objects_of(self.read_info(task_name, dir_name))
        if objects is not None:
            return objects.get(name)
        return self.old_entry(task_name, dir_name, name)

    def old_entry(self, task_name: str, dir_name: str, name: str) -> Optional[Dict]:
        """The entry of an object from its older-layout load info."""
        info = self._old_file(task_name, dir_name, self.old_load_info(name))
        return entry_from_load_info(info) if isinstance(info, dict) else None

    @staticmethod
    def old_load_info(name: str) -> str:
        return f".{name.lstrip('.')}_load_info.p"

    def old_paths(self, task_name: str, dir_name: str, name: str) -> List[str]:
        """The older layout's bookkeeping file of an object (removed with it)."""
        return [self._access.path(task_name, dir_name, META_DIR, self.old_load_info(name))]

    def _old_file(self, task_name: str, dir_name: str, file_name: str) -> Any:
        path = self._access.path(task_name, dir_name, META_DIR, file_name)
        data = self._access.cat(path)
        if data is None:
            return None
        try:
            return json.loads(data) if file_name.endswith(".json") else pickle.loads(data)
        except Exception as error:
            where = self._access.url_of(path)
            raise StoredResultDamaged(f'{where} of task "{task_name}" cannot be read ({type(error).__name__}: '
                                      f"{error}). Delete the run so that it is made anew.",
                                      task_name=task_name, location=where) from None

    # ------------------------------------------------------------------------------ damage

    def forget_listing(self, task_name: str) -> None:
        self._listings.pop(task_name, None)
        self._checked.pop(task_name, None)

    def damage(self, task_name: str, dir_name: str, objects: List[Tuple[str, str, Dict]],
               deep: bool) -> List[Tuple[str, str]]:
        """(URL, problem) for each listed object (name, path, entry) that is missing or of the wrong
        size (``deep``: or CRC-32)."""
        found = []
        task_path = self._access.path(task_name)
        checked = self._checked.setdefault(task_name, set())
        if dir_name in checked:  # checked before: the listing may be older than what changed since
            self.forget_listing(task_name)
            checked = self._checked.setdefault(task_name, set())
        checked.add(dir_name)
        for name, path, entry in objects:
            relative = path[len(task_path) + 1:]
            problem = self._size_problem(task_name, relative, entry, fresh=False)
            if problem is not None:
                problem = self._size_problem(task_name, relative, entry, fresh=True)
            if problem is None and deep and entry.get("crc32"):
                problem = self._crc_problem(path, entry["crc32"])
            if problem is not None:
                found.append((self._access.url_of(path), f'object "{name}" {problem}'))
        return found

    def _listing(self, task_name: str, run_dir: str, fresh: bool) -> Dict[str, int]:
        access = self._access
        listing = self._listings.get(task_name)
        if listing is None:
            listing = self._listings[task_name] = access.listing(access.path(task_name), dirs=False)[0]
        elif fresh:
            for key in [key for key in listing if key.startswith(run_dir + "/")]:
                del listing[key]
            below = access.listing(access.path(task_name, run_dir), dirs=False)[0]
            listing.update((f"{run_dir}/{key}", size) for key, size in below.items())
        return listing

    def _size_problem(self, task_name: str, relative: str, entry: Dict, fresh: bool) -> Optional[str]:
        listing = self._listing(task_name, relative.split("/", 1)[0], fresh)
        if relative in listing:
            size: Optional[int] = listing[relative]
        else:  # a directory object (of a type that saves to a path): the sum of its files
            parts = [value for key, value in listing.items() if key.startswith(relative + "/")]
            size = sum(parts) if parts else None
        expected = entry.get("size")
        if size is None:
            return "is missing"
        if expected is not None and size != expected:
            return f"has {size} bytes, but its run recorded {expected}"
        return None

    def _crc_problem(self, path: str, expected: str) -> Optional[str]:
        try:
            crc = digest(self._access, path)[1]
        except FileNotFoundError:
            return "is missing"
        return None if crc == expected else f"has CRC-32 {crc}, but its run recorded {expected}"
