"""Integrity data of ``LocalFileStore`` objects: the size and CRC-32 of each saved object, taken
while it is written where possible, checked when it is loaded and by ``fluidml.results.verify``.

An object is a file or, for types that write to a path (``needs_path``), possibly a directory.
The checksum of a directory covers its files in sorted order, each as its path relative to the
object (UTF-8, then a NUL byte) followed by its bytes; its size is the total of its files' sizes.
Checksums are written as 8 lowercase hex digits.
"""

import io
import json
import os
import pickle
import zlib
from stat import S_ISDIR
from typing import IO, Any, Callable, Dict, Iterator, Optional, Tuple

__all__ = ["ALWAYS_VERIFIED", "ChecksumReader", "ChecksumWriter", "Damaged", "check_entry", "checksum_path",
           "hex_crc", "load_checked", "size_of"]

_BLOCK = 1 << 20  # bytes read at a time when a file is checksummed
#: Errors that mean the bytes of an object are not what its type wrote (truncated, cut, garbled).
DECODE_ERRORS = (EOFError, pickle.UnpicklingError, UnicodeDecodeError, json.JSONDecodeError)


class Damaged(Exception):
    """An object's file is missing or is not what was saved; the text completes "<path> ...",
    e.g. "is missing" or "has 10 bytes, 100 were saved"."""


def hex_crc(crc: int) -> str:
    return f"{crc & 0xFFFFFFFF:08x}"


class ChecksumWriter:
    """Wraps a binary file opened for writing and counts and checksums the bytes written through it.

    A writer that seeks, truncates or takes the file descriptor may change bytes behind the running
    checksum; ``exact`` is then False, and the file is checksummed again once it is written.
    """

    def __init__(self, file: IO[bytes]):
        self._file = file
        self.size = 0
        self.crc = 0
        self.exact = True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        written = self._file.write(view)
        self.crc = zlib.crc32(view, self.crc)
        self.size += view.nbytes
        if written is not None and written != view.nbytes:
            self.exact = False
        return view.nbytes if written is None else written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def seek(self, *args: Any) -> int:
        self.exact = False
        return self._file.seek(*args)

    def truncate(self, *args: Any) -> int:
        self.exact = False
        return self._file.truncate(*args)

    def fileno(self) -> int:
        self.exact = False
        return self._file.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> "ChecksumWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._file.close()


class ChecksumReader:
    """Wraps a binary file opened for reading and checksums the bytes read through it (what a
    load function such as ``pickle.load`` needs: ``read``, ``readinto``, ``readline``)."""

    def __init__(self, file: Any):
        self._file = file
        self.crc = 0
        self.size = 0

    def _seen(self, data: Any) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += memoryview(data).nbytes

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._seen(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self._seen(memoryview(buffer).cast("B")[:count])
        return count

    def readline(self, size: int = -1) -> bytes:
        data = self._file.readline(size)
        self._seen(data)
        return data

    def finish(self) -> Tuple[int, int]:
        """Reads what the load function left and returns (size, crc) of the whole file."""
        while True:
            data = self._file.read(_BLOCK)
            if not data:
                return self.size, self.crc
            self._seen(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def _files(path: str) -> Iterator[Tuple[str, str]]:
    """(relative path, path) of each file under a directory, in sorted order."""
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            yield os.path.relpath(full, path).replace(os.sep, "/"), full


def _crc_file(path: str, crc: int = 0) -> Tuple[int, int]:
    size = 0
    with open(path, "rb") as file:
        while True:
            block = file.read(_BLOCK)
            if not block:
                return size, crc
            crc = zlib.crc32(block, crc)
            size += len(block)


def checksum_path(path: str) -> Tuple[int, str]:
    """(size, crc32 as hex) of an object's file or directory."""
    if not os.path.isdir(path):
        size, crc = _crc_file(path)
        return size, hex_crc(crc)
    total, crc = 0, 0
    for relative, full in _files(path):
        crc = zlib.crc32(relative.encode("utf-8") + b"\0", crc)
        size, crc = _crc_file(full, crc)
        total += size
    return total, hex_crc(crc)


def size_of(path: str) -> int:
    """The size in bytes of an object's file or directory (a stat per file). Raises
    ``FileNotFoundError`` if it is gone."""
    stat = os.stat(path)
    if not S_ISDIR(stat.st_mode):
        return stat.st_size
    return sum(os.stat(full).st_size for _, full in _files(path))


def check_entry(path: str, entry: Dict[str, Any], deep: bool = False) -> Optional[str]:
    """What is wrong with an object against its recorded size (and checksum, if ``deep``), or None."""
    try:
        size = size_of(path)
    except FileNotFoundError:
        return "is missing"
    expected = entry.get("size")
    if expected is not None and size != expected:
        return f"has {size} bytes, {expected} were saved"
    crc = entry.get("crc32")
    if deep and crc:
        actual = checksum_path(path)[1]
        if actual != crc:
            return f"does not hold what was saved (crc32 {actual}, saved {crc})"
    return None


#: Objects up to this size have their checksum checked on every load (it costs little next to
#: loading them); larger ones with ``LocalFileStore(verify=True)``.
ALWAYS_VERIFIED = 256 * 1024


def load_checked(path: str, entry: Dict[str, Any], load: Callable[[Any], Any], opener: Optional[Callable[[], Any]],
                 verify: bool, raw: bool = False) -> Any:
    """Loads an object and checks it against its entry; raises ``Damaged`` when the file is not
    what was saved: missing, of another size, or of another checksum (checked for objects up to
    ``ALWAYS_VERIFIED`` bytes, for all with ``verify``, and whenever loading fails).

    ``opener()`` opens the file (None for types that load from the path); ``load(file_or_path)``
    loads it; ``raw`` says that the opened file gives the file's bytes as they are (a binary file
    of the builtin ``open``), so that a large one is checksummed as it is read. A load that fails
    on a file whose checksum is right raises its own error: the bytes are as saved, the load
    function failed. Without integrity data (stores of fluidml 0.3.4 and 0.4.0), undecodable bytes
    count as damage.
    """
    crc, size = entry.get("crc32"), entry.get("size")
    small = size is not None and size <= ALWAYS_VERIFIED
    checked = bool(crc) and (verify or small)
    streamed = opener if checked and raw else None  # opens an object checksummed as it is read
    if streamed is None or not small:  # a small streamed object is sized as it is read
        problem = check_entry(path, entry)
        if problem is not None:
            raise Damaged(problem)
    try:
        if streamed is not None:
            with streamed() as file:
                if small:  # read once, check, load from memory
                    data = file.read(ALWAYS_VERIFIED + 1)
                    if len(data) != size:
                        raise Damaged(f"has {size_of(path)} bytes, {size} were saved")
                    reader = io.BytesIO(data)
                    reader.name = path  # as the file's, for load functions that look at it
                    actual = hex_crc(zlib.crc32(reader.getbuffer()))
                    obj = None if actual != crc else load(reader)
                else:
                    checked_reader = ChecksumReader(file)
                    obj = load(checked_reader)
                    actual = hex_crc(checked_reader.finish()[1])
            if actual != crc:
                raise Damaged(f"does not hold what was saved (crc32 {actual}, saved {crc})")
            return obj
        if checked:
            problem = check_entry(path, entry, deep=True)
            if problem is not None:
                raise Damaged(problem)
        if opener is None:
            return load(path)
        with opener() as file:
            return load(file)
    except Damaged:
        raise
    except FileNotFoundError:
        raise Damaged("is missing") from None
    except Exception as error:
        if crc:
            problem = None if checked else check_entry(path, entry, deep=True)
            if problem is not None:
                raise Damaged(problem) from error
            raise
        if isinstance(error, DECODE_ERRORS):
            raise Damaged(f"cannot be decoded ({type(error).__name__}: {error})") from error
        raise
