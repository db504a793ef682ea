"""Multiprocessing contexts for worker processes, with a fork server of fluidml's own.

``start_method="forkserver"`` starts workers from a fork server that has already imported what
running a task needs (``PRELOAD``), so a new worker skips those imports. The server is fluidml's
own instance, started on first use: the preload list of the process's default fork server (the
one ``multiprocessing.get_context("forkserver")`` uses) is left as it is. Where the standard
library's internals differ from what this module expects, the default fork server is used,
without a preload.
"""

import functools
import io
import multiprocessing
import os
import threading
from multiprocessing import context as _context
from multiprocessing import process as _process
from typing import Any, Optional

__all__ = ["PRELOAD", "process_context"]

#: What fluidml's fork server imports before it forks workers: the worker loop and everything it imports
#: (the task runner, the task classes, the store interface, cloudpickle).
PRELOAD = ["fluidml.executors.worker"]

_server: Optional[Any] = None
_server_lock = threading.Lock()


def process_context(start_method: str) -> Any:
    """The multiprocessing context of ``start_method``; for "forkserver", one whose fork server
    preloads ``PRELOAD``."""
    if start_method == "forkserver" and _preloading_supported():
        return _PreloadedForkServerContext()
    return multiprocessing.get_context(start_method)


def _preloading_supported() -> bool:
    try:
        from multiprocessing import forkserver, popen_forkserver  # noqa: F401

        return hasattr(forkserver, "ForkServer") and hasattr(popen_forkserver.Popen, "_launch") and \
            hasattr(forkserver, "read_signed") and hasattr(_context, "ForkServerContext")
    except ImportError:  # no fork server on this platform
        return False


def _fork_server() -> Any:
    """fluidml's fork server (started by its first worker, ended when this process ends)."""
    global _server
    from multiprocessing import forkserver

    with _server_lock:
        if _server is None:
            server = forkserver.ForkServer()
            server.set_forkserver_preload(list(PRELOAD))
            _server = server
        return _server


@functools.lru_cache(maxsize=None)
def _make_popen() -> Any:
    from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util

    class PreloadedPopen(popen_forkserver.Popen):
        """Starts a process from fluidml's fork server instead of the default one (the rest of the
        protocol, on both sides, is the standard library's)."""

        def _launch(self, process_obj: Any) -> None:
            data = io.BytesIO()
            _context.set_spawning_popen(self)
            try:
                reduction.dump(spawn.get_preparation_data(process_obj._name), data)
                reduction.dump(process_obj, data)
            finally:
                _context.set_spawning_popen(None)
            self.sentinel, write_end = _fork_server().connect_to_new_process(self._fds)  # type: ignore[attr-defined]
            keep_open = os.dup(write_end)  # the child watches it: closed when this process ends
            self.finalizer = util.Finalize(self, util.close_fds,  # type: ignore[attr-defined]
                                           (keep_open, self.sentinel))
            with open(write_end, "wb", closefd=True) as stream:
                stream.write(data.getbuffer())
            self.pid = forkserver.read_signed(self.sentinel)

    return PreloadedPopen


class _PreloadedForkServerProcess(_process.BaseProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _make_popen()(process_obj)


if hasattr(_context, "ForkServerContext"):  # (not on Windows)
    class _PreloadedForkServerContext(_context.ForkServerContext):  # type: ignore[misc,name-defined]
        Process = _PreloadedForkServerProcess  # type: ignore[assignment]
