"""How a ``LocalFileStore`` run records what it saved: run layout format 2, and the older layout it
still reads.

Format 2 (written by this version)::

    <run>/config.json          the unique config, written when the run is created
    <run>/<name>.<ext>         each saved object (<sub_dir>/<name>.<ext> with sub_dir)
    <run>/fluidml_info.json    written last, atomically: the TaskInfo fields and
                               "fluidml": {"format": 2, "objects": {name: entry, ...}, ...}

An entry is ``{"type", "dir", "size", "crc32", "load_kwargs", "open_kwargs"}``: the type name, the
directory relative to the run (``"."``), the size in bytes and CRC-32 (hex) of the object's file
(see _integrity.py; None where unknown), and the keyword arguments kept for loads. Keyword
arguments that JSON cannot hold are kept pickled, base64-encoded, as ``"kwargs_pickle"``. The
registry of saved results is the key order of ``"objects"``.

Layout 1 (fluidml 0.3.4 and 0.4.0 of this project): ``<run>/.fluidml/.saved_results.json`` lists
the names, and ``<run>/.fluidml/.<name>_load_info.p`` (a pickled dict: ``type_``, ``obj_dir``,
``load_kwargs``, ``open_kwargs``) tells how each was saved. A run in that layout is converted to
format 2 when it is changed.
"""

import base64
import json
import os
import pickle
from typing import Any, Dict, Optional, Tuple

from fluidml.storage._filetypes import remove_path, write_atomic
from fluidml.storage._runindex import META_DIR
from fluidml.storage.base import EXTRA, info_problem

__all__ = ["BadFile", "FORMAT", "INFO_FILE", "InfoCache", "entry_kwargs", "legacy_entries", "make_entry",
           "mark_run_dir", "read_info", "write_info"]

FORMAT = 2
INFO_FILE = "fluidml_info.json"
REGISTRY_FILE = ".saved_results.json"
_CACHED_INFOS = 256  # parsed infos a store keeps (each checked against its file's stat before use)


class BadFile(Exception):
    """A run's bookkeeping file cannot be used: ``location`` is the file, ``problem`` completes
    "<location> ..."."""

    def __init__(self, location: str, problem: str):
        super().__init__(f"{location} {problem}")
        self.location = location
        self.problem = problem


def make_entry(type_name: str, relative_dir: str, size: Optional[int], crc: Optional[str],
               open_kwargs: Optional[Dict], load_kwargs: Optional[Dict]) -> Dict[str, Any]:
    """The entry of one saved object (see the module docstring)."""
    entry: Dict[str, Any] = {"type": type_name, "dir": relative_dir, "size": size, "crc32": crc}
    kwargs = {"load_kwargs": dict(load_kwargs or {}), "open_kwargs": dict(open_kwargs or {})}
    try:
        plain = json.loads(json.dumps(kwargs)) == kwargs
    except (TypeError, ValueError):
        plain = False
    if plain:
        entry.update(kwargs)
    else:
        entry.update(load_kwargs={}, open_kwargs={},
                     kwargs_pickle=base64.b64encode(pickle.dumps(kwargs)).decode("ascii"))
    return entry


def entry_kwargs(entry: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(load kwargs, open kwargs) of an entry."""
    packed = entry.get("kwargs_pickle")
    kwargs = pickle.loads(base64.b64decode(packed)) if packed else entry
    return dict(kwargs.get("load_kwargs") or {}), dict(kwargs.get("open_kwargs") or {})


def read_info(run_dir: str) -> Optional[Dict[str, Any]]:
    """The run's info, or None if it has none; raises ``BadFile`` if it cannot be read or is not
    shaped like a run info."""
    return _read_info(run_dir + os.sep + INFO_FILE)[0]


def _read_info(path: str) -> Tuple[Optional[Dict[str, Any]], Optional[os.stat_result]]:
    """(the info in ``path`` or None if there is none, the stat of the file read)."""
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            data = file.read()
    except FileNotFoundError:
        return None, None
    except OSError as error:
        raise BadFile(path, f"cannot be read ({error})") from error
    try:
        info = json.loads(data.decode("utf-8"))
    except ValueError as error:  # (UnicodeDecodeError too)
        raise BadFile(path, f"is not valid JSON ({error})") from error
    problem = info_problem(info)
    if problem is not None:
        raise BadFile(path, f"is not a run info: {problem}")
    return info, stat


def info_entries(info: Optional[Dict[str, Any]]) -> Optional[Dict[str, Dict[str, Any]]]:
    """The format-2 entries of an info (None for an info of the older layout)."""
    extra = info.get(EXTRA) if info is not None else None
    objects = extra.get("objects") if isinstance(extra, dict) else None
    return objects if isinstance(objects, dict) else None


def legacy_entries(run_dir: str) -> Dict[str, Dict[str, Any]]:
    """The entries of a run in the older layout (sizes and checksums unknown); raises ``BadFile``
    if its registry or a listed object's load info cannot be read."""
    meta = os.path.join(run_dir, META_DIR)
    registry = os.path.join(meta, REGISTRY_FILE)
    try:
        with open(registry, "rb") as file:
            names = json.loads(file.read())
    except FileNotFoundError:
        if any(name.endswith("_load_info.p") for name in _listing(meta)):
            raise BadFile(registry, "is missing, but objects were saved") from None
        return {}
    except (OSError, ValueError) as error:
        raise BadFile(registry, f"cannot be read ({error})") from error
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise BadFile(registry, "does not hold a list of names")
    entries = {}
    for name in names:
        path = os.path.join(meta, f".{name.lstrip('.')}_load_info.p")
        try:
            with open(path, "rb") as file:
                load_info = pickle.load(file)
        except FileNotFoundError:
            raise BadFile(path, f'is missing, but "{name}" is listed as saved') from None
        except Exception as error:  # a torn or foreign file
            raise BadFile(path, f"cannot be read ({type(error).__name__}: {error})") from error
        if not isinstance(load_info, dict):
            raise BadFile(path, "does not hold load info (a dict)")
        entries[name] = make_entry(load_info.get("type_") or "pickle", load_info.get("obj_dir") or ".", None, None,
                                   load_info.get("open_kwargs"), load_info.get("load_kwargs"))
    return entries


def _listing(path: str) -> list:
    try:
        return os.listdir(path)
    except OSError:
        return []


def write_info(run_dir: str, info: Dict[str, Any], objects: Dict[str, Dict[str, Any]], legacy: bool = False,
               **json_kwargs: Any) -> None:
    """Writes the run's info with its objects (format 2), atomically. A run that was in the older
    layout (``legacy``) loses that layout's files after."""
    info = dict(info)
    extra = dict(info.get(EXTRA) or {})
    extra.update(format=FORMAT, objects=objects)
    info[EXTRA] = extra
    write_atomic(os.path.join(run_dir, INFO_FILE), json.dumps(info, **json_kwargs))
    if legacy:
        remove_path(os.path.join(run_dir, META_DIR))


def mark_run_dir(run_dir: str, location: str, problem: str) -> None:
    """Marks the run in ``run_dir`` not finished because of damage (see ``ResultsStore.mark_damaged``).
    A run without info is not finished already and stays as it is."""
    try:
        info = read_info(run_dir)
    except BadFile:
        info = {}
    if info is None:
        return
    extra = dict(info.get(EXTRA) or {})
    extra["damage"] = {"location": location, "problem": problem}
    info.update(state="failed", **{EXTRA: extra})
    write_atomic(os.path.join(run_dir, INFO_FILE), json.dumps(info, indent=4))


class InfoCache:
    """The infos a store read last, each kept with the stat of its file and used only while the
    file is unchanged. The info read last is used again without a stat by the next read of the
    same run (planning reads a cached run's info, then checks the run: one read, no second stat)."""

    def __init__(self) -> None:
        self._infos: Dict[str, Tuple[Tuple[int, int, int, int], Optional[Dict[str, Any]]]] = {}
        self._last: Tuple[Optional[str], Optional[Dict[str, Any]]] = (None, None)

    def read(self, run_dir: str) -> Optional[Dict[str, Any]]:
        """``read_info(run_dir)``, from the cache while the file is unchanged."""
        last_dir, last_info = self._last
        if last_dir == run_dir:
            self._last = (None, None)
            return last_info
        path = run_dir + os.sep + INFO_FILE
        cached = self._infos.get(run_dir)
        if cached is not None:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                self._infos.pop(run_dir, None)
                return None
            except OSError as error:
                raise BadFile(path, f"cannot be read ({error})") from error
            if cached[0] == (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns):
                self._last = (run_dir, cached[1])
                return cached[1]
        info, read = _read_info(path)
        if read is None:
            self._infos.pop(run_dir, None)
            return None
        if len(self._infos) >= _CACHED_INFOS:
            self._infos.clear()
        self._infos[run_dir] = ((read.st_ino, read.st_size, read.st_mtime_ns, read.st_ctime_ns), info)
        self._last = (run_dir, info)
        return info

    def forget(self, run_dir: str) -> None:
        self._infos.pop(run_dir, None)
        self._last = (None, None)
