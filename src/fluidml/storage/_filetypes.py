"""The file side of ``LocalFileStore``: how objects become files (``TypeInfo`` and the built-in
types), the file-like ``File`` and the lazy ``FilePromise``, and atomic writes (a temporary name in
the same directory, then ``os.replace``), so that a reader sees a whole file or none.
"""

import itertools
import json
import logging
import os
import pickle
import shutil
from dataclasses import dataclass
from typing import IO, Any, AnyStr, Callable, Dict, Iterator, List, Optional, Tuple

from fluidml.exception import StoredResultDamaged
from fluidml.storage._integrity import ChecksumWriter, Damaged, checksum_path, hex_crc, load_checked
from fluidml.storage.base import Promise

__all__ = ["File", "FilePromise", "TypeInfo", "builtin_types", "remove_leftovers", "remove_path", "replace_into_place",
           "temp_path", "write_atomic", "write_new_file", "write_new_object", "write_object"]

logger = logging.getLogger(__name__)


@dataclass
class TypeInfo:
    """How objects of one type are saved to and loaded from files.

    ``save_fn(obj, file, **kwargs)`` writes and ``load_fn(file, **kwargs)`` reads, where ``file`` is
    the object ``open_fn(path, mode, **open_kwargs)`` returns (the builtin ``open`` by default);
    with ``needs_path=True`` both get the path instead (for writers that create directories or open
    files themselves, e.g. ``torch.save`` or ``save_pretrained``).
    """

    #: Save function used to save the object to store.
    save_fn: Callable
    #: Load function used to load the object from store.
    load_fn: Callable
    #: File extension the object is saved with.
    extension: Optional[str] = None
    #: Read, write and append in binary mode.
    is_binary: Optional[bool] = None
    #: Function used to open a file object (default is builtin open()).
    open_fn: Optional[Callable] = None
    #: Whether save and load fn should operate on path and not on file like object. Default false.
    needs_path: bool = False

    def file_name(self, name: str) -> str:
        """The file name of the object ``name``: ``name.extension`` (no extension: the bare name)."""
        return f"{name}.{self.extension}" if self.extension else name

    def write_mode(self) -> str:
        return "wb" if self.is_binary else "w"

    def read_mode(self) -> str:
        return "rb" if self.is_binary else "r"


def _save_json(obj: Any, file: IO[str], **kwargs: Any) -> None:
    file.write(json.dumps(obj, **kwargs))  # one write: json.dump writes every token separately


def _load_json(file: IO[str], **kwargs: Any) -> Any:
    return json.loads(file.read(), **kwargs)


def _save_pickle(obj: Any, file: IO[bytes], protocol: int = pickle.HIGHEST_PROTOCOL, **kwargs: Any) -> None:
    # protocol 5 writes large buffers (numpy arrays) straight to the file instead of copying them first
    pickle.dump(obj, file, protocol=protocol, **kwargs)


def _load_pickle(file: IO[bytes], **kwargs: Any) -> Any:
    return pickle.load(file, **kwargs)


def _save_text(obj: Any, file: IO[str], **kwargs: Any) -> None:
    file.write(str(obj))


def _load_text(file: IO[str], **kwargs: Any) -> str:
    return file.read()


def builtin_types() -> Dict[str, TypeInfo]:
    """A fresh registry of the built-in types: ``json``, ``pickle``, ``text`` (and ``event``, text
    without an extension, which the original also knows)."""
    return {
        "json": TypeInfo(_save_json, _load_json, "json"),
        "pickle": TypeInfo(_save_pickle, _load_pickle, "p", is_binary=True),
        "text": TypeInfo(_save_text, _load_text, "txt"),
        "event": TypeInfo(_save_text, _load_text),
    }


# ------------------------------------------------------------------------------- atomic writes

_temp_numbers = itertools.count()
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def temp_path(path: str) -> str:
    """A unique temporary path next to ``path`` that keeps its file name (and so its extension, for
    writers such as ``numpy.save`` that append one when it is missing)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".~{_pid}-{next(_temp_numbers)}.{tail}")


def remove_path(path: str) -> None:
    """Removes a file or a directory tree; nothing if it does not exist."""
    try:
        os.remove(path)
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        pass
    except PermissionError:  # a directory on some platforms
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            raise


def remove_leftovers(directory: str) -> None:
    """Removes the temporary files (see ``temp_path``) that processes of this machine which have
    died left in ``directory`` and below (a write cut short). Those of live processes stay."""
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            if not name.startswith(".~"):
                continue
            pid = name[2:].partition("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                remove_path(os.path.join(root, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def replace_into_place(temp: str, path: str) -> None:
    """Moves the finished ``temp`` (a file or a directory) to ``path``, replacing what is there."""
    try:
        os.replace(temp, path)
    except OSError:
        if not os.path.isdir(path):
            raise
        # a directory object replaces an older directory: move the old one aside first
        old = temp_path(path)
        os.replace(path, old)
        os.replace(temp, path)
        remove_path(old)


def write_new_file(path: str, data: bytes) -> None:
    """Creates the file ``path`` (it must not exist) holding ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_atomic(path: str, data: AnyStr) -> None:
    """Writes ``data`` (text or bytes) to ``path`` through a temporary file."""
    temp = temp_path(path)
    try:
        write_new_file(temp, data if isinstance(data, bytes) else data.encode("utf-8"))
        os.replace(temp, path)
    except BaseException:
        remove_path(temp)
        raise


def write_object(type_info: TypeInfo, obj: Any, path: str, mode: str, open_kwargs: Optional[Dict], kwargs: Dict) -> None:
    """Writes ``obj`` to ``path`` with its type's save function (a ``TypeInfo``), in place."""
    if type_info.needs_path:
        type_info.save_fn(obj, path, **kwargs)
        return
    file = (type_info.open_fn or open)(path, mode, **(open_kwargs or {}))
    try:
        type_info.save_fn(obj, file, **kwargs)
    finally:
        file.close()


def write_new_object(type_info: TypeInfo, obj: Any, path: str, mode: str, open_kwargs: Optional[Dict], kwargs: Dict,
                     name: str) -> Tuple[int, str]:
    """Writes an object through a temporary file that replaces ``path`` once complete; returns its
    size and checksum, counted as it is written where its bytes pass through here (a binary file
    of the builtin ``open``), else read back from the new file."""
    temp = temp_path(path)
    try:
        if type_info.needs_path:
            type_info.save_fn(obj, temp, **kwargs)
            if not os.path.lexists(temp):
                raise FileNotFoundError(f'The save function of the type for "{name}" did not write {temp}.')
            size, crc = checksum_path(temp)
        elif type_info.open_fn is None and "b" in mode:
            with open(temp, mode, **(open_kwargs or {})) as file:
                writer = ChecksumWriter(file)
                type_info.save_fn(obj, writer, **kwargs)
            size, crc = (writer.size, hex_crc(writer.crc)) if writer.exact else checksum_path(temp)
        else:
            write_object(type_info, obj, temp, mode, open_kwargs, kwargs)
            size, crc = checksum_path(temp)
        replace_into_place(temp, path)
    except BaseException:
        remove_path(temp)
        raise
    return size, crc


# ------------------------------------------------------------------------------ File, FilePromise


class File:
    """A file-like wrapper for reading or writing an object of the store incrementally.

    It opens ``path`` at once with ``open_fn(path, mode, **open_kwargs)`` (the builtin ``open`` by
    default), delegates the usual file methods, and adds ``save(obj)`` / ``load()`` through the
    type's functions. Use it as a context manager, or call ``close()`` (which calls ``on_close``,
    if given: the store then records the file's new size and checksum).
    """

    def __init__(
        self,
        path: str,
        mode: str,
        save_fn: Callable,
        load_fn: Callable,
        open_fn: Optional[Callable] = None,
        load_kwargs: Optional[Dict] = None,
        *,
        on_close: Optional[Callable[[], None]] = None,
        **open_kwargs: Any,
    ):
        self.path = path
        self.mode = mode
        self.save_fn = save_fn
        self.load_fn = load_fn
        self.open_fn = open_fn
        self.load_kwargs = load_kwargs or {}
        self.open_kwargs = open_kwargs
        self._file = (open_fn or open)(path, mode, **open_kwargs)
        self._on_close = on_close

    @classmethod
    def from_promise(cls, promise: "FilePromise") -> "File":
        """Creates a File object from a ``FilePromise`` (in the promise's mode)."""
        mode = promise.mode or "r"
        return cls(promise.path, mode, promise.save_fn, promise.load_fn, promise.open_fn, promise.load_kwargs,
                   **promise.open_kwargs)

    def __repr__(self) -> str:
        return f"<fluidml File {self.path!r} mode={self.mode!r}>"

    def __enter__(self) -> "File":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        return iter(self._file)

    def load(self, **kwargs: Any) -> Any:
        """Reads the object from the file with the type's load function."""
        return self.load_fn(self._file, **{**self.load_kwargs, **kwargs})

    def save(self, obj: Any, **kwargs: Any) -> None:
        """Writes ``obj`` to the file with the type's save function."""
        self.save_fn(obj, self._file, **kwargs)

    def read(self, size: int = -1) -> Any:
        return self._file.read(size)

    def readline(self, size: int = -1) -> Any:
        return self._file.readline(size)

    def readlines(self, hint: int = -1) -> List:
        return self._file.readlines(hint)

    def write(self, obj: Any) -> Any:
        return self._file.write(obj)

    def writelines(self, lines: List) -> None:
        self._file.writelines(lines)

    def close(self) -> None:
        self._file.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def flush(self) -> None:
        self._file.flush()

    def readable(self) -> bool:
        return self._file.readable()

    def writable(self) -> bool:
        return self._file.writable()

    def seekable(self) -> bool:
        return self._file.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def truncate(self, size: Optional[int] = None) -> int:
        return self._file.truncate(size)


class FilePromise(Promise):
    """A stored object that is read only when ``load()`` is called (what lazy inputs receive).

    ``mode`` is the read mode (``None`` for types that load from a path). ``entry`` (the object's
    recorded size and checksum) and ``verify`` say what is checked when it loads; ``on_damage``
    makes the error for a damaged object (it gets the path and what is wrong), and ``on_change``
    records a change made through ``store.open(promise=..., mode="a")``.
    """

    def __init__(
        self,
        name: str,
        path: str,
        save_fn: Callable,
        load_fn: Callable,
        open_fn: Optional[Callable] = None,
        mode: Optional[str] = None,
        load_kwargs: Optional[Dict] = None,
        *,
        entry: Optional[Dict[str, Any]] = None,
        verify: bool = False,
        on_damage: Optional[Callable[[str, str], BaseException]] = None,
        on_change: Optional[Callable[[], None]] = None,
        **open_kwargs: Any,
    ):
        self.name = name
        self.path = path
        self.save_fn = save_fn
        self.load_fn = load_fn
        self.open_fn = open_fn
        self.mode = mode
        self.load_kwargs = load_kwargs or {}
        self.open_kwargs = open_kwargs
        self.entry = entry or {}
        self.verify = verify
        self.on_damage = on_damage
        self.on_change = on_change  # called after the file was written through open(promise=...)

    def __repr__(self) -> str:
        return f"<fluidml FilePromise {self.name!r} at {self.path!r}>"

    def load(self, **kwargs: Any) -> Any:
        """Loads the actual object. A file that is gone or not what was saved raises
        ``StoredResultDamaged``."""
        kwargs = {**self.load_kwargs, **kwargs}
        mode = self.mode
        opener = None if mode is None else (lambda: (self.open_fn or open)(self.path, mode, **self.open_kwargs))
        raw = mode is not None and "b" in mode and self.open_fn is None
        try:
            return load_checked(self.path, self.entry, lambda file: self.load_fn(file, **kwargs), opener,
                                self.verify, raw)
        except Damaged as damaged:
            if self.on_damage is not None:
                raise self.on_damage(self.path, str(damaged)) from damaged.__cause__
            raise StoredResultDamaged(f'The object "{self.name}" cannot be read: {self.path} {damaged}.',
                                      key=self.name, location=self.path) from damaged.__cause__
        except IsADirectoryError:
            return self.load_fn(self.path, **kwargs)
