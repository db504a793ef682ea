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
from typing import Any, Dict, Optional

import cloudpickle

from fluidml.task_spec import TaskSpec

__all__ = ["WorkerPickler", "dumps", "loads"]


#: What the main module is called: "__main__", and "__mp_main__" where spawn imported it again.
_MAIN_NAMES = frozenset({"__main__", "__mp_main__"})


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


class WorkerPickler(cloudpickle.Pickler):
    """cloudpickle with the main module's objects sent by name (see the module docstring) and task
    specs, optionally, as references into a table the worker already has."""

    def __init__(self, file: Any, spec_numbers: Optional[Dict[int, int]] = None):
        super().__init__(file)
        self._spec_numbers = spec_numbers or {}

    def persistent_id(self, obj: Any) -> Optional[int]:
        return self._spec_numbers.get(id(obj)) if isinstance(obj, TaskSpec) else None

    def reducer_override(self, obj: Any) -> Any:
        if _main_global(obj):
            return _from_main, (obj.__qualname__, _first_line(obj), cloudpickle.dumps(obj))
        return super().reducer_override(obj)


def dumps(obj: Any, spec_numbers: Optional[Dict[int, int]] = None) -> bytes:
    """``obj`` pickled for a worker process."""
    buffer = io.BytesIO()
    WorkerPickler(buffer, spec_numbers).dump(obj)
    return buffer.getvalue()


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, specs: Any):
        super().__init__(io.BytesIO(data))
        self._specs = specs

    def persistent_load(self, pid: Any) -> Any:
        return self._specs[pid]


def loads(data: bytes, specs: Any = ()) -> Any:
    """Reads what ``dumps`` wrote; spec references are looked up in ``specs``."""
    return _Unpickler(data, specs).load()
