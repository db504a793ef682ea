"""The objects of an ``FsspecStore``: how each is written and read, and the entry its run keeps of it.

An entry, kept in the run's ``fluidml_info.json`` under ``"fluidml"."objects"`` (format 2, as
``LocalFileStore`` keeps it)::

    {"type": "pickle", "dir": ".", "size": 123, "crc32": "89abcdef", "load_kwargs": {}, "open_kwargs": {}}

Keyword arguments that JSON cannot hold are kept pickled (base64) under ``"kwargs_pickle"``. Runs
written in the older layout keep the same facts in ``.fluidml/.<name>_load_info.p``.

Objects stream through a ``Sink`` a piece at a time, with their size and CRC-32 counted on the way,
and appear under their name only when complete. Types that save to a path (``needs_path``) write
into a local temporary directory that is then uploaded (on a local file system: next to the object,
then renamed into place), and load from a downloaded copy.
"""

import base64
import io
import json
import os
import pickle
import shutil
import tempfile
import zlib
from typing import Any, Callable, Dict, Optional, Tuple

from fluidml.storage._filetypes import File, TypeInfo, remove_path, replace_into_place, temp_path
from fluidml.storage._fsspec_access import PIECE, FileAccess, Sink
from fluidml.storage._fsspec_errors import is_storage_error
from fluidml.storage.base import Promise

__all__ = ["FsspecFile", "FsspecPromise", "ObjectWriter", "crc_text", "entry_from_load_info", "entry_kwargs",
           "append_start", "digest", "make_entry", "open_stream", "read_object", "reading", "relative_dir", "write_object",
           "writing"]

Damaged = Callable[[str], Exception]  # builds the error for a listed object that cannot be read
_TEXT_OPTIONS = ("encoding", "errors", "newline")


def make_entry(type_name: str, relative_dir: str, load_kwargs: Optional[Dict], open_kwargs: Optional[Dict]) -> Dict:
    """A new object entry (size and checksum are added once the object is written)."""
    entry: Dict[str, Any] = {"type": type_name, "dir": relative_dir, "size": None, "crc32": None}
    kwargs = {"load_kwargs": dict(load_kwargs or {}), "open_kwargs": dict(open_kwargs or {})}
    try:
        json.dumps(kwargs)
        entry.update(kwargs)
    except (TypeError, ValueError):
        entry["kwargs_pickle"] = base64.b64encode(pickle.dumps(kwargs)).decode("ascii")
    return entry


def relative_dir(sub_dir: Optional[str], url: str) -> str:
    if not sub_dir:
        return "."
    parts = [p for p in os.fspath(sub_dir).replace("\\", "/").split("/") if p not in ("", ".")]
    if os.path.isabs(os.fspath(sub_dir)) or ".." in parts:
        raise ValueError(f"sub_dir {sub_dir!r} leaves the run's directory in {url}; give a relative path inside it.")
    return "/".join(parts) or "."


def entry_kwargs(entry: Dict) -> Tuple[Dict, Dict]:
    """(load kwargs, open kwargs) of an entry."""
    if "kwargs_pickle" in entry:
        kwargs = pickle.loads(base64.b64decode(entry["kwargs_pickle"]))
        return kwargs.get("load_kwargs") or {}, kwargs.get("open_kwargs") or {}
    return entry.get("load_kwargs") or {}, entry.get("open_kwargs") or {}


def entry_from_load_info(info: Dict) -> Dict:
    """The entry of an object from its older-layout load info (size and checksum unknown)."""
    entry = make_entry(info.get("type_") or "pickle", info.get("obj_dir") or ".", info.get("load_kwargs"),
                       info.get("open_kwargs"))
    return entry


def crc_text(crc: int) -> str:
    return f"{crc & 0xFFFFFFFF:08x}"


# ------------------------------------------------------------------------------------------- writing


class ObjectWriter(io.BufferedIOBase):
    """A binary file that passes what it gets to a ``Sink`` a piece at a time (so the file system
    never buffers a whole large write), counting the bytes and their CRC-32."""

    def __init__(self, sink: Sink, access: FileAccess, path: str, size: int = 0, crc: Optional[int] = 0):
        super().__init__()
        self._sink, self._access, self._path = sink, access, path
        self.size, self.crc = size, crc

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, view.nbytes, PIECE):
            piece = view[start:start + PIECE]
            with self._access.guard("writing", self._path):
                self._sink.write(piece)
            if self.crc is not None:
                self.crc = zlib.crc32(piece, self.crc)
        self.size += view.nbytes
        return view.nbytes

    def finish(self) -> Tuple[int, Optional[str]]:
        """Commits the object; its (size, CRC-32 text or None)."""
        with self._access.guard("writing", self._path):
            self._sink.commit()
        return self.size, None if self.crc is None else crc_text(self.crc)

    def abandon(self) -> None:
        """Drops the object: nothing appears under its name (appends so far stay)."""
        self._sink.discard()


def writing(writer: ObjectWriter, type_info: TypeInfo, binary: bool, open_kwargs: Dict) -> Any:
    """What the type's save function writes to: the writer, a text wrapper, or its ``open_fn``'s file."""
    if type_info.open_fn is not None:
        return type_info.open_fn(writer, "wb" if binary else "wt", **open_kwargs)
    if binary:
        return writer
    return io.TextIOWrapper(writer, **{"encoding": "utf-8", **_text_options(open_kwargs)})


def _text_options(open_kwargs: Dict) -> Dict:
    return {key: open_kwargs[key] for key in _TEXT_OPTIONS if open_kwargs.get(key) is not None}


def _release(target: Any, writer: ObjectWriter) -> None:
    """Flushes what ``_writing`` made into the writer, without closing the writer's sink."""
    if target is writer:
        return
    if isinstance(target, io.TextIOWrapper):
        target.flush()
        target.detach()
    else:
        target.close()


def write_object(access: FileAccess, path: str, type_info: TypeInfo, obj: Any, mode: str, open_kwargs: Dict,
                 save_kwargs: Dict, appended_to: Optional[Dict] = None) -> Tuple[int, Optional[str]]:
    """Writes ``obj`` at ``path`` with the type's save function; (size, CRC-32). With
    ``appended_to`` (the entry of the object there) the bytes are appended."""
    if type_info.needs_path:
        return _save_to_path(access, path, type_info, obj, save_kwargs)
    writer = ObjectWriter(access.open_write(path, append=appended_to is not None), access, path,
                          *append_start(appended_to))
    try:
        target = writing(writer, type_info, type_info.is_binary or "b" in mode, open_kwargs)
        type_info.save_fn(obj, target, **save_kwargs)
        _release(target, writer)
        size, crc = writer.finish()
    except BaseException:
        writer.abandon()
        raise
    return (size, crc) if crc is not None else digest(access, path)


def append_start(entry: Optional[Dict]) -> Tuple[int, Optional[int]]:
    """(size, CRC-32) to count on from when appending to the object of ``entry`` (CRC None: unknown)."""
    if entry is None:
        return 0, 0
    size, crc = entry.get("size"), entry.get("crc32")
    return (size, int(crc, 16)) if isinstance(size, int) and isinstance(crc, str) else (0, None)


def digest(access: FileAccess, path: str) -> Tuple[int, Optional[str]]:
    """(size, CRC-32) of the object at ``path``, read a piece at a time."""
    stream = access.open_read(path)[0]
    crc, size = 0, 0
    with stream:
        for piece in iter(lambda: stream.read(PIECE), b""):
            crc, size = zlib.crc32(piece, crc), size + len(piece)
    return size, crc_text(crc)


def _save_to_path(access: FileAccess, path: str, type_info: TypeInfo, obj: Any,
                  save_kwargs: Dict) -> Tuple[int, Optional[str]]:
    if access.kind == "local":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temp = temp_path(path)
        try:
            type_info.save_fn(obj, temp, **save_kwargs)
            if not os.path.lexists(temp):
                raise FileNotFoundError(f"The save function of the type did not write {temp}.")
            found = _local_digest(temp)
            replace_into_place(temp, path)
            return found
        except BaseException:
            remove_path(temp)
            raise
    work = tempfile.mkdtemp(prefix="fluidml-upload-")
    try:
        local = os.path.join(work, path.rsplit("/", 1)[-1])
        type_info.save_fn(obj, local, **save_kwargs)
        if not os.path.lexists(local):
            raise FileNotFoundError(f"The save function of the type did not write {local}.")
        access.remove_tree(path)  # an older version, which may be a directory of other files
        if not os.path.isdir(local):
            return _upload(access, local, path)
        total = 0
        for folder, _, names in os.walk(local):
            for name in sorted(names):
                relative = os.path.relpath(os.path.join(folder, name), local).replace(os.sep, "/")
                total += _upload(access, os.path.join(folder, name), f"{path}/{relative}")[0]
        return total, None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _upload(access: FileAccess, local: str, path: str) -> Tuple[int, Optional[str]]:
    writer = ObjectWriter(access.open_write(path), access, path)
    try:
        with open(local, "rb") as source:
            shutil.copyfileobj(source, writer, PIECE)
        return writer.finish()
    except BaseException:
        writer.abandon()
        raise


def _local_digest(path: str) -> Tuple[int, Optional[str]]:
    """(size, CRC-32) of a local file; a directory: (total size, None)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path) for n in names), None
    crc, size = 0, 0
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(PIECE), b""):
            crc, size = zlib.crc32(piece, crc), size + len(piece)
    return size, crc_text(crc)


# ------------------------------------------------------------------------------------------- reading


def open_stream(access: FileAccess, path: str, expected: Optional[int], damaged: Damaged) -> Any:
    """A binary stream of the object at ``path``; small objects are read whole with one request.
    Raises ``damaged(...)`` if the object is missing or its size is not the recorded one."""
    size: Optional[int]
    if expected is not None and expected <= PIECE and access.kind not in ("local", "memory"):
        data = access.cat(path)
        if data is None:
            raise damaged("is missing")
        stream, size = io.BytesIO(data), len(data)
    else:
        try:
            stream, size = access.open_read(path)
        except (FileNotFoundError, IsADirectoryError):
            raise damaged("is missing") from None
    if expected is not None and size is not None and size != expected:
        stream.close()
        raise damaged(f"has {size} bytes, but its run recorded {expected}")
    return stream


def reading(stream: Any, type_info: TypeInfo, mode: str, open_kwargs: Dict) -> Any:
    """What the type's load function reads from: the stream, a text wrapper, or its ``open_fn``'s file."""
    binary = type_info.is_binary or "b" in mode
    if type_info.open_fn is not None:
        return type_info.open_fn(stream, "rb" if binary else "rt", **open_kwargs)
    if binary:
        return stream
    return io.TextIOWrapper(stream, **{"encoding": "utf-8", **_text_options(open_kwargs)})


def read_object(access: FileAccess, path: str, type_info: TypeInfo, entry: Dict, load_kwargs: Dict,
                open_kwargs: Dict, damaged: Damaged) -> Any:
    """Loads the object at ``path`` with the type's load function."""
    if type_info.needs_path:
        return _load_from_path(access, path, type_info, load_kwargs, damaged)
    stream = open_stream(access, path, entry.get("size"), damaged)
    file = stream
    try:
        file = reading(stream, type_info, type_info.read_mode(), open_kwargs)
        return type_info.load_fn(file, **load_kwargs)
    except Exception as error:
        if is_storage_error(error):
            raise access.translate(error, "reading", path) from None
        if hasattr(error, "add_note"):
            error.add_note(f"fluidml: while loading {access.url_of(path)}")
        raise
    finally:
        file.close()
        stream.close()


def _load_from_path(access: FileAccess, path: str, type_info: TypeInfo, load_kwargs: Dict, damaged: Damaged) -> Any:
    if access.kind == "local":
        if not os.path.lexists(path):
            raise damaged("is missing")
        return type_info.load_fn(path, **load_kwargs)
    work = tempfile.mkdtemp(prefix="fluidml-download-")
    try:
        local = os.path.join(work, path.rsplit("/", 1)[-1])
        try:
            access.download(path, local)
        except FileNotFoundError:
            raise damaged("is missing") from None
        return type_info.load_fn(local, **load_kwargs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------- handles


class FsspecFile(File):
    """A ``File`` over an object of an ``FsspecStore`` (see ``FsspecStore.open``).

    A file opened for writing appears in the store when it is closed; leaving its ``with`` block
    with an exception drops what was written (appends so far stay).
    """

    def __init__(self, location: str, mode: str, type_info: TypeInfo, stream: Any, load_kwargs: Optional[Dict] = None,
                 writer: Optional[ObjectWriter] = None,
                 on_commit: Optional[Callable[[int, Optional[str]], None]] = None, base: Any = None):
        self.path, self.mode = location, mode
        self.save_fn, self.load_fn, self.open_fn = type_info.save_fn, type_info.load_fn, type_info.open_fn
        self.load_kwargs = load_kwargs or {}
        self.open_kwargs: Dict[str, Any] = {}
        self._file = stream
        self._writer, self._on_commit = writer, on_commit
        self._base = base  # the stream under a wrapper (closed with it when reading)
        self._closed = False

    def __reduce__(self) -> Any:
        raise TypeError(f"{self!r} is open in this process and cannot be sent to another one; open the object "
                        f"where it is used (a store that stays in the calling process cannot open files in workers).")

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None and self._writer is not None:
            self.discard()
        else:
            self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Closes the file; a written object is committed (it appears in the store) now."""
        if self._closed:
            return
        self._closed = True
        if self._writer is None:
            self._file.close()
            if self._base is not None:
                self._base.close()
            return
        _release(self._file, self._writer)
        size, crc = self._writer.finish()
        if self._on_commit is not None:
            self._on_commit(size, crc)

    def discard(self) -> None:
        """Closes the file without committing what was written."""
        if not self._closed:
            self._closed = True
            if self._writer is not None:
                self._writer.abandon()


class FsspecPromise(Promise):
    """A stored object of an ``FsspecStore``, read when ``load()`` is called (what lazy inputs get)."""

    def __init__(self, store: Any, name: str, task_name: str, config: Dict, path: str, entry: Dict):
        self.store, self.name, self.task_name, self.config = store, name, task_name, config
        self.path, self.entry = path, entry

    def __repr__(self) -> str:
        return f"<fluidml FsspecPromise {self.name!r} of task {self.task_name!r}>"

    def __getstate__(self) -> Dict[str, Any]:
        if not getattr(self.store, "process_safe", False):
            raise TypeError(f"{self!r} belongs to {self.store!r}, which keeps its objects in this process; load "
                            f"the object here (or without lazy=True), or use a store other processes reach.")
        return self.__dict__

    def load(self, **kwargs: Any) -> Any:
        """Loads the actual object (``kwargs`` go to the type's load function)."""
        return self.store._read_entry(self.name, self.task_name, self.config, self.path, self.entry, kwargs)
