"""How MongoDBStore keeps one object: pickled, inline in the run document when small, else as a
GridFS file (the entry in the document is then ``{"gridfs": <file id>, "size": <bytes>}``).

Large objects are streamed: pickling writes into the GridFS upload a few MB at a time, and loading
reads the file's chunks a window at a time (plain queries on ``<bucket>.chunks``, as the GridFS
spec lays them out) straight into the unpickler's buffers, so each server reply stays small and a
large array is not copied twice.
"""

import pickle
from collections import deque
from typing import Any, Deque, Dict, List, Optional

__all__ = ["BrokenFile", "decode", "encode", "entry_size", "file_id", "is_entry"]

_PIECE = 1 << 22  # bytes per write into a GridFS upload
_WINDOW = 32  # chunks per query when reading a GridFS file (8 MB with the default chunk size)


class BrokenFile(Exception):
    """A GridFS file is there but incomplete (chunks missing); the text says what is wrong."""


def file_id(entry: Any) -> Any:
    """The GridFS file id of a stored entry, None for inline objects (and for no entry)."""
    return entry.get("gridfs") if isinstance(entry, dict) else None


def is_entry(entry: Any) -> bool:
    """True if ``entry`` has the shape ``encode`` gives: inline bytes or a GridFS reference."""
    return isinstance(entry, bytes) or (isinstance(entry, dict) and entry.get("gridfs") is not None)


def entry_size(entry: Any) -> Optional[int]:
    """Bytes of the pickle an entry holds (inline or in GridFS); None for no entry."""
    if entry is None:
        return None
    return entry.get("size") if isinstance(entry, dict) else len(entry)


def encode(obj: Any, inline_limit: int, bucket: Any, filename: str, metadata: Dict[str, Any]) -> Any:
    """The entry for ``obj``: its pickle as BSON binary if it is at most ``inline_limit`` bytes,
    otherwise a reference to the GridFS file it was written to (in ``bucket``)."""
    from bson import Binary

    buffers: List[Any] = []
    head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)  # large buffers are not copied
    size = len(head) + sum(memoryview(buffer).nbytes for buffer in buffers)
    if size <= inline_limit:
        return Binary(pickle.dumps(obj, protocol=5) if buffers else head)
    stream = bucket.open_upload_stream(filename, metadata=metadata)
    try:
        if buffers:
            pickle.dump(obj, _PieceWriter(stream), protocol=5)
        else:
            _PieceWriter(stream).write(head)
    except BaseException:
        stream.abort()
        raise
    stream.close()
    return {"gridfs": stream._id, "size": size}


def decode(entry: Any, files: Any, chunks: Any) -> Any:
    """The object of an entry. Raises ``gridfs.errors.NoFile`` if its GridFS file is gone and
    ``BrokenFile`` if chunks of it are missing."""
    import gridfs.errors

    ref = file_id(entry)
    if ref is None:
        return pickle.loads(entry)
    info = files.find_one({"_id": ref})
    if info is None:
        raise gridfs.errors.NoFile(f"no GridFS file with id {ref}")
    return pickle.load(_ChunkReader(chunks, info))


class _PieceWriter:
    """Lets ``pickle.dump`` write into a GridFS upload stream, which takes bytes only."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, view.nbytes, _PIECE):
            self._stream.write(view[start:start + _PIECE].tobytes())
        return view.nbytes


class _ChunkReader:
    """A read-only file over the chunks of one GridFS file, fetched ``_WINDOW`` chunks per query."""

    def __init__(self, chunks: Any, info: Dict[str, Any]):
        self._chunks = chunks
        self._id = info["_id"]
        self._count = -(-int(info["length"]) // int(info["chunkSize"]))
        self._next = 0  # the next chunk number to fetch
        self._pending: Deque[bytes] = deque()
        self._chunk: Optional[memoryview] = None
        self._pos = 0

    def _advance(self) -> bool:
        """Moves to the next chunk; False at the end of the file."""
        if not self._pending:
            if self._next >= self._count:
                return False
            stop = min(self._next + _WINDOW, self._count)
            docs = list(self._chunks.find({"files_id": self._id, "n": {"$gte": self._next, "$lt": stop}},
                                          sort=[("n", 1)]))
            if [doc["n"] for doc in docs] != list(range(self._next, stop)):
                missing = sorted(set(range(self._next, stop)) - {doc["n"] for doc in docs})
                raise BrokenFile(f"is missing chunk(s) {', '.join(map(str, missing[:5]))} of {self._count}")
            self._pending.extend(bytes(doc["data"]) for doc in docs)
            self._next = stop
        self._chunk, self._pos = memoryview(self._pending.popleft()), 0
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < view.nbytes:
            if self._chunk is None or self._pos >= len(self._chunk):
                if not self._advance():
                    break
            assert self._chunk is not None
            piece = min(len(self._chunk) - self._pos, view.nbytes - done)
            view[done:done + piece] = self._chunk[self._pos:self._pos + piece]
            done += piece
            self._pos += piece
        return done

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            parts: List[bytes] = []
            while True:
                part = self.read(_PIECE)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        data = bytearray(size)
        return bytes(data[:self.readinto(data)])

    def readline(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return bytes(line)
