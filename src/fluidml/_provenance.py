"""What a run records about itself beyond ``TaskInfo`` (the ``"fluidml"`` dict of its stored info,
DECISIONS §1): its unique name, where it ran (host, pid, worker), the fluidml version, and the error
of a failed or killed run."""

import os
import sys
from typing import Any, Dict, Optional, Tuple

from fluidml import __version__
from fluidml.exception import error_text

__all__ = ["run_extras"]


def run_extras(task: Any, error: Optional[BaseException], trace: Optional[str]) -> Dict[str, Any]:
    """What a run records beyond ``TaskInfo``: its unique name, where it ran (host, pid, worker),
    the fluidml version, and the error with its traceback if it failed or was killed."""
    pid, host, worker = _where()
    extras: Dict[str, Any] = {"unique_name": task.unique_name, "host": host, "pid": pid, "worker": worker,
                              "version": __version__}
    if error is not None:
        kind = type(error)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        extras["error"] = {"type": name, "message": error_text(error), "traceback": trace}
    return extras


_WHERE: Tuple[int, str, str] = (0, "", "")  # (pid, host, worker) of this process, found once


def _where() -> Tuple[int, str, str]:
    global _WHERE
    if _WHERE[0] != os.getpid():
        import socket  # once per process, not at `import fluidml`

        _WHERE = (os.getpid(), socket.gethostname(), _worker_label())
    return _WHERE


def _worker_label() -> str:
    """``"worker-N"`` in a process-pool worker, ``"ray"`` in a Ray worker, else ``"main"``."""
    multiprocessing = sys.modules.get("multiprocessing")  # a pool worker has it; a plain run need not load it
    name = multiprocessing.current_process().name if multiprocessing is not None else "MainProcess"
    if name != "MainProcess":
        return name
    ray = sys.modules.get("ray")
    worker = getattr(getattr(getattr(ray, "_private", None), "worker", None), "global_worker", None)
    if worker is not None and getattr(worker, "mode", None) == getattr(ray, "WORKER_MODE", object()):
        return "ray"
    return "main"
