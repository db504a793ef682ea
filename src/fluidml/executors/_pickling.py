"""Pickling for worker processes: cloudpickle, except for the main module's own functions and classes.

cloudpickle sends what a script defines by value. That works everywhere, but the copy is not the
module's object: its tracebacks lose their file and source lines, ``isinstance`` against the
module's class fails, and a task that hands one of the script's functions to its own
``multiprocessing.Pool`` cannot pickle it. So a top-level function or class of ``__main__`` is sent
by name *and* by value: a worker that imported the same script (spawn and forkserver import it
again, fork inherits it) uses its own object of that name, any other falls back to the copy.
"""

import io
import pickle
import sys
import types
import weakref
from typing import Any, NamedTuple, Optional, Tuple

import cloudpickle

__all__ = ["SpecRef", "WorkerPickler", "dumps"]


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


def dumps(obj: Any) -> bytes:
    """``obj`` pickled for a worker process (``pickle.loads`` reads it)."""
    buffer = io.BytesIO()
    WorkerPickler(buffer).dump(obj)
    return buffer.getvalue()
