"""What a ``LocalFileStore`` knows about the objects its runs saved: the lists of the attempts in
progress in this store object (kept in memory, written once with the run's info), and the infos on
disk (read through a cache, changed by rewriting them whole). It also finds what is damaged in a
run directory. The layout of the files is in _runlayout.py.
"""

import logging
import os
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

from fluidml.config import config_digest
from fluidml.storage._integrity import check_entry, checksum_path
from fluidml.storage._runindex import CONFIG_FILE, RunIndex
from fluidml.storage._runlayout import (
    BadFile, InfoCache, info_entries, legacy_entries, mark_run_dir, write_info,
)
from fluidml.storage.base import Damage, damage_marker

__all__ = ["Entries", "PathOf", "RunRecords"]

logger = logging.getLogger(__name__)

Entries = Dict[str, Dict[str, Any]]
#: (run directory, object name, entry) -> the path of the object's file
PathOf = Callable[[str, str, Dict[str, Any]], str]
Key = Tuple[str, str]  # (task name, config digest)


class RunRecords:
    """The saved-object lists of a store's runs (see the module docstring).

    Args:
        lock: Makes a context manager that holds the store's lock (rewrites of an info take it).
    """

    def __init__(self, lock: Callable[[], ContextManager]):
        self._lock = lock
        self._attempts: Dict[Key, Entries] = {}
        self._infos = InfoCache()

    def __getstate__(self) -> Dict[str, Any]:
        return {"_lock": self._lock}  # attempts and cached infos are this process's

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["_lock"])  # type: ignore[misc]

    # ------------------------------------------------------------------------------ attempts

    def begin(self, key: Key) -> None:
        """An attempt of the run starts here: its objects are listed in memory until its info."""
        self._attempts[key] = {}

    def attempt(self, key: Key) -> Optional[Entries]:
        """The objects the run's attempt in progress here saved so far (None: none in progress)."""
        return self._attempts.get(key)

    def drop(self, key: Key, run_dir: Optional[str] = None) -> None:
        """Forgets the run's attempt in progress and its cached info (the run is deleted)."""
        self._attempts.pop(key, None)
        if run_dir is not None:
            self._infos.forget(run_dir)

    def forget(self, run_dir: str) -> None:
        """Forgets the cached info of a run (its info file was changed)."""
        self._infos.forget(run_dir)

    # ------------------------------------------------------------------------------ reading

    def info(self, run_dir: str) -> Optional[Dict[str, Any]]:
        """The run's info (None if it has none); raises ``BadFile`` if it is unreadable."""
        return self._infos.read(run_dir)

    def entries(self, run_dir: str, key: Key) -> Entries:
        """The run's saved objects: those of the attempt in progress here, else its info's (or, in
        the older layout, its registry's). Raises ``BadFile``."""
        attempt = self._attempts.get(key)
        if attempt is not None:
            return attempt
        entries = info_entries(self._infos.read(run_dir))
        return entries if entries is not None else legacy_entries(run_dir)

    # ------------------------------------------------------------------------------ writing

    def record(self, run_dir: str, key: Key, name: str, entry: Optional[Dict[str, Any]]) -> None:
        """Lists (or, with ``entry=None``, unlists) an object of the run: in memory while its attempt
        is in progress here, else in its info file at once."""
        attempt = self._attempts.get(key)
        if attempt is not None:
            if entry is None:
                attempt.pop(name, None)
            else:
                attempt[name] = entry
            return

        def change(entries: Entries) -> None:
            if entry is None:
                entries.pop(name, None)
            else:  # (an object still being written through open() has no size yet)
                entries[name] = {k: v for k, v in entry.items() if k != "_deferred"}
        self.rewrite(run_dir, None, change)

    def rewrite(self, run_dir: str, info: Optional[Dict[str, Any]], change: Callable[[Entries], None],
                **json_kwargs: Any) -> None:
        """Rewrites the run's info file (``info`` if given, else the one there) with its objects
        changed by ``change``; a run in the older layout is converted to format 2."""
        with self._lock():
            self._infos.forget(run_dir)
            try:
                stored = self._infos.read(run_dir)
            except BadFile:
                stored = None  # unreadable: written anew
            entries = info_entries(stored)
            legacy = entries is None
            if entries is None:
                try:
                    entries = legacy_entries(run_dir)
                except BadFile:
                    entries = {}
            entries = dict(entries)
            change(entries)
            write_info(run_dir, info if info is not None else stored or {}, entries, legacy=legacy,
                       **(json_kwargs or {"indent": 4}))
            self._infos.forget(run_dir)

    def save_info(self, run_dir: str, key: Key, info: Dict[str, Any], path_of: PathOf, **json_kwargs: Any) -> None:
        """Writes the run's info with the objects its attempt saved (then the attempt is over); the
        size and checksum of objects written through open() are taken now."""
        attempt = self._attempts.pop(key, None)
        if attempt is None:
            self.rewrite(run_dir, info, lambda entries: None, **json_kwargs)
            return
        entries = {}
        for name, entry in attempt.items():
            if entry.pop("_deferred", False):
                path = path_of(run_dir, name, entry)
                try:
                    entry["size"], entry["crc32"] = checksum_path(path)
                except FileNotFoundError:
                    logger.warning('Task "%s": the object "%s" it opened is gone (%s); it is not listed as saved.',
                                   key[0], name, path)
                    continue
            entries[name] = entry
        write_info(run_dir, info, entries, **json_kwargs)
        self._infos.forget(run_dir)

    def rechecksum(self, run_dir: str, key: Key, name: str, path_of: PathOf) -> None:
        """Records the size and checksum of an object written through an open file (at once for a
        run whose attempt is not in progress here; else when its info is written)."""
        if key in self._attempts:
            return

        def change(entries: Entries) -> None:
            entry = entries.get(name)
            if entry is not None:
                size, crc = checksum_path(path_of(run_dir, name, entry))
                entries[name] = dict(entry, size=size, crc32=crc)
        self.rewrite(run_dir, None, change)

    def mark(self, run_dir: str, location: str, problem: str) -> None:
        """Marks the run not finished because of damage (see ``ResultsStore.mark_damaged``)."""
        mark_run_dir(run_dir, location, problem)
        self._infos.forget(run_dir)

    # ------------------------------------------------------------------------------ checking

    def damage(self, task_name: str, run_dir: str, path_of: PathOf, deep: bool = False,
               digest: Optional[str] = None) -> List[Damage]:
        """What is wrong with a finished run directory: an unreadable info or list of objects, a
        saved object gone or of another size, a damage it was marked with (with ``deep`` also: an
        object of another checksum, a config.json that is gone or does not hold the config of
        ``digest``). A run without info is not finished: nothing is checked."""
        run_id = os.path.basename(run_dir)
        try:
            info = self._infos.read(run_dir)
            if info is None:
                return []
            entries = info_entries(info)
            if entries is None:
                entries = legacy_entries(run_dir)
        except BadFile as bad:
            return [Damage(task_name, run_id, bad.location, bad.problem)]
        found = []
        marker = damage_marker(info)
        if marker is not None:
            found.append(Damage(task_name, run_id, str(marker.get("location")), f"{marker.get('problem')} (marked)"))
        if deep:  # (runs are found through the index: planning does not need their config.json)
            config_path = run_dir + os.sep + CONFIG_FILE
            config = RunIndex._read_config(run_dir)
            if config is None:
                found.append(Damage(task_name, run_id, config_path, "is missing or unreadable"))
            elif digest is not None and config_digest(config) != digest:
                found.append(Damage(task_name, run_id, config_path, "holds another config than its run was made for"))
        for name, entry in entries.items():
            try:
                path = path_of(run_dir, name, entry)
            except KeyError:
                continue  # a type this store does not know: its file name cannot be told
            problem = check_entry(path, entry, deep)
            if problem is not None:
                found.append(Damage(task_name, run_id, path, problem))
        return found

    def check_task(self, task_name: str, task_dir: str, digests: Dict[str, str], path_of: PathOf,
                   repair: bool) -> List[Damage]:
        """Deep checks of every run directory of a task (``digests``: run directory -> the config
        digest the index has for it); with ``repair`` damaged runs are marked not finished."""
        try:
            dir_names = sorted(e.name for e in os.scandir(task_dir) if not e.name.startswith(".") and e.is_dir())
        except FileNotFoundError:
            return []
        found: List[Damage] = []
        for dir_name in dir_names:
            run_dir = os.path.join(task_dir, dir_name)
            damage = self.damage(task_name, run_dir, path_of, deep=True, digest=digests.get(dir_name))
            if damage and repair:
                self.mark(run_dir, damage[0].location, damage[0].problem)
            found.extend(damage)
        return found
