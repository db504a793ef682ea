"""Pickling for worker processes: cloudpickle, except for the main module's own functions and classes.

cloudpickle sends what a script defines by value. That works everywhere, but the copy is not the
module's object: its tracebacks lose their file and source lines, ``isinstance`` against the
module's class fails, and a task that hands one of the script's functions to its own
``multiprocessing.Pool`` cannot pickle it. So a top-level function or class of ``__main__`` is sent
by name *and* by value: a worker that imported the same script (spawn and forkserver import it
again, fork inherits it) uses its own object of that name, any other falls back to the copy.
"""

import io
import os
import pickle
import struct
import sys
import types
import weakref
from typing import Any, List, NamedTuple, Optional, Tuple

import cloudpickle

__all__ = ["Packed", "SpecRef", "WorkerPickler", "dumps", "pack", "receive_buffers", "send_with_buffers"]


#: What the main module is called: "__main__", and "__mp_main__" where spawn imported it again.
_MAIN_NAMES = frozenset({"__main__", "__mp_main__"})


#: The main module's objects already sent: (qualified name, first line, the pickled copy).
_MAIN_ARGUMENTS: "weakref.WeakKeyDictionary[Any, Tuple[str, Optional[int], bytes]]" = weakref.WeakKeyDictionary()


def _lookup(qualname: str) -> Any:
    obj: Any = sys.modules.get("__main__")
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _main_global(obj: Any) -> bool:
    """A function or class defined at the top level of the main module (or nested in such a class)."""
    if not isinstance(obj, (types.FunctionType, type)) or getattr(obj, "__module__", None) not in _MAIN_NAMES:
        return False
    qualname = getattr(obj, "__qualname__", "")
    return "<" not in qualname and _lookup(qualname) is obj


def _first_line(obj: Any) -> Optional[int]:
    code = getattr(obj, "__code__", None)
    return code.co_firstlineno if code is not None else None


def _from_main(qualname: str, first_line: Optional[int], by_value: bytes) -> Any:
    """The main module's object of that name when this process has it, else the copy."""
    obj = _lookup(qualname)
    if obj is not None and isinstance(obj, (types.FunctionType, type)) and _first_line(obj) == first_line:
        return obj
    return pickle.loads(by_value)


class SpecRef(NamedTuple):
    """Stands for a task's spec in a job: the number of the spec in the worker's table."""

    number: int


class WorkerPickler(cloudpickle.Pickler):
    """cloudpickle with the main module's objects sent by name (see the module docstring)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type)):
            if getattr(obj, "__module__", "").startswith("fluidml."):
                return NotImplemented  # ours: importable by name everywhere (the common case, made fast)
            if _main_global(obj):
                arguments = _MAIN_ARGUMENTS.get(obj)
                if arguments is None:  # pickled by value once per object, not once per job
                    arguments = _MAIN_ARGUMENTS[obj] = (obj.__qualname__, _first_line(obj), cloudpickle.dumps(obj))
                return _from_main, arguments
        return super().reducer_override(obj)


def dumps(obj: Any, buffers: Optional[List[pickle.PickleBuffer]] = None) -> bytes:
    """``obj`` pickled for a worker process (``pickle.loads`` reads it). With a ``buffers`` list, large
    buffers (numpy arrays, ``Packed`` objects) are appended to it instead of copied into the stream
    (pickle protocol 5, out of band); ``pickle.loads(data, buffers=...)`` then needs them back."""
    stream = io.BytesIO()
    callback = None if buffers is None else buffers.append
    WorkerPickler(stream, protocol=5, buffer_callback=callback).dump(obj)
    return stream.getvalue()


class Packed:
    """An object pickled now, with its large buffers kept apart and not copied (``pack``).

    Pickled again out of band (``dumps(..., buffers=...)``), it costs no copy of those buffers;
    ``load()`` rebuilds the object on them.
    """

    __slots__ = ("header", "buffers")

    def __init__(self, header: bytes, buffers: List[Any]):
        self.header = header
        self.buffers = buffers

    def load(self) -> Any:
        """The object, rebuilt on the buffers (a numpy array uses their memory as it is)."""
        return pickle.loads(self.header, buffers=self.buffers)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Packed, (self.header, [pickle.PickleBuffer(b) for b in self.buffers])


def pack(obj: Any) -> Packed:
    """``obj`` pickled at once (so a problem shows at the call), its large buffers referenced."""
    buffers: List[pickle.PickleBuffer] = []
    header = dumps(obj, buffers)
    return Packed(header, [b.raw() for b in buffers])


def send_with_buffers(conn: Any, message: Tuple, buffers: List[pickle.PickleBuffer]) -> None:
    """Sends ``message`` with the sizes of ``buffers`` appended, then each buffer as a raw frame."""
    views = [b.raw() for b in buffers]
    conn.send((*message, [v.nbytes for v in views]))
    for view in views:
        conn.send_bytes(view)


def receive_buffers(conn: Any, sizes: List[int]) -> List[bytearray]:
    """The raw frames that follow a message of ``send_with_buffers``, each read straight into its own
    writable buffer (the pipe's bytes are copied once, into it)."""
    buffers = []
    for size in sizes:
        buffer = bytearray(size)
        _read_frame_into(conn, buffer)
        buffers.append(buffer)
    return buffers


def _read_frame_into(conn: Any, buffer: bytearray) -> None:
    """Reads one ``send_bytes`` frame into ``buffer``. ``Connection.recv_bytes_into`` would read the
    frame into a temporary copy first, so on POSIX the frame is read from the descriptor directly
    (a Connection reads exactly what a frame holds, so nothing it buffers is skipped)."""
    if os.name != "posix":
        conn.recv_bytes_into(buffer)
        return
    with io.FileIO(conn.fileno(), "rb", closefd=False) as raw:
        size = struct.unpack("!i", _read_exactly(raw, 4))[0]
        if size == -1:  # frames over 2 GiB carry their size in 8 more bytes
            size = struct.unpack("!Q", _read_exactly(raw, 8))[0]
        if size != len(buffer):
            raise EOFError(f"expected a frame of {len(buffer)} bytes, got one of {size}")
        view = memoryview(buffer)
        position = 0
        while position < size:
            count = raw.readinto(view[position:])
            if not count:
                raise EOFError("the pipe closed in the middle of a frame")
            position += count


def _read_exactly(raw: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = raw.read(size - len(data))
        if not chunk:
            raise EOFError("the pipe closed in the middle of a frame")
        data += chunk
    return data
