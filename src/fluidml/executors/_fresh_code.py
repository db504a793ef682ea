"""Keeps a long-lived worker's copy of the user's code as fresh as a new worker's would be.

A task's function or class defined in a module travels by reference (its module and name), so a
worker that imported the module during an earlier run would keep running the old code after the
file changed. At the start of each run, a worker of a ``WorkerPool`` checks the files of the
user's modules it has imported (modules outside the standard library, site-packages and fluidml);
when one changed or is gone, it forgets all of them, and they are imported afresh as the run's
tasks arrive, exactly as a new worker would. Code in ``__main__`` (a script, a notebook) travels by
value with each run anyway.
"""

import importlib
import os
import sys
import sysconfig
from typing import Dict, Optional, Tuple

__all__ = ["CodeWatch"]

_Stamp = Optional[Tuple[int, int]]  # (mtime in ns, size) of a module's file; None: gone


def _stamp(path: str) -> _Stamp:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def _library_dirs() -> Tuple[str, ...]:
    """Where code that is not the user's lives (never reloaded)."""
    paths = sysconfig.get_paths()
    dirs = {paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # fluidml itself
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


class CodeWatch:
    """The user's modules this worker has imported, with the state of their files when first seen."""

    def __init__(self) -> None:
        self._stamps: Dict[str, Tuple[str, _Stamp]] = {}  # module name -> (file, stamp)
        self._seen = 0  # len(sys.modules) when last looked
        self._library = _library_dirs()

    def note_new_modules(self) -> None:
        """Records the user's modules imported since the last call (cheap when none were)."""
        if len(sys.modules) == self._seen:
            return
        for name, module in list(sys.modules.items()):
            if name in self._stamps or name in ("__main__", "__mp_main__"):
                continue
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.endswith(".py") and not os.path.abspath(path).startswith(self._library):
                self._stamps[name] = (path, _stamp(path))
        self._seen = len(sys.modules)

    def forget_if_changed(self) -> bool:
        """If any recorded module's file changed (or is gone), removes every recorded module from
        ``sys.modules`` (modules import each other: all are imported afresh) and returns True."""
        if all(_stamp(path) == stamp for path, stamp in self._stamps.values()):
            return False
        for name in self._stamps:
            sys.modules.pop(name, None)
        self._stamps.clear()
        self._seen = 0
        importlib.invalidate_caches()
        return True
