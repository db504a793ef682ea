"""``WorkerPool``: worker processes kept warm between runs (``flow.run(executor=pool)``)."""

import multiprocessing
import threading
from multiprocessing import util as _mp_util
from typing import Any, List, Optional

from fluidml.exception import RunConfigError
from fluidml.executors._workers import WorkerSet
from fluidml.executors.base import Executor, RunSettings
from fluidml.executors.processes import ProcessExecutor

__all__ = ["WorkerPool"]


class WorkerPool:
    """Worker processes that outlive one ``flow.run`` and serve the next: pass the pool as
    ``flow.run(executor=pool)``; the second run starts without any process start-up.

    Worker ``i`` always holds ``resources[i]`` (round robin when the counts differ), also after a
    task killed it and it was replaced. Tasks, with their code, travel with each run; a worker
    imports the user's modules afresh when their files changed since it last used them. Workers stop
    on ``close()`` (or at the end of a ``with`` block), when the pool is garbage collected, at
    interpreter exit, and when this process dies, even by SIGKILL.

    One run at a time: a second ``flow.run`` on a pool that is running one (from another thread)
    raises ``RunConfigError``. A failed run leaves the pool as it was; after Ctrl-C the workers whose
    tasks were interrupted are killed with everything they started, and replaced at the next run.

    Args:
        num_workers: The number of worker processes (at least 1).
        resources: One resource (e.g. a GPU id) or a list of them, one per worker; tasks see their
            worker's as ``task.resource``.
        start_method: ``"spawn"`` (the safe default), ``"forkserver"`` (workers are forked from a
            server that has imported fluidml's task runner already: quicker to start; the server is
            fluidml's own, the default fork server's preload list is not changed) or ``"fork"``
            (quickest, but unsafe when this process has threads or has initialised CUDA).
    """

    def __init__(self, num_workers: int, resources: Optional[Any] = None, start_method: str = "spawn"):
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1:
            raise RunConfigError(f"WorkerPool(num_workers=...) must be a positive int, got {num_workers!r}.",
                                 key="num_workers")
        if start_method not in multiprocessing.get_all_start_methods():
            raise RunConfigError(f"WorkerPool(start_method={start_method!r}) is not available here; use one of "
                                 f"{multiprocessing.get_all_start_methods()}.", key="start_method")
        self.num_workers = num_workers
        self.start_method = start_method
        self.resources: Optional[List[Any]] = _as_list(resources)
        self._workers: Optional[WorkerSet] = WorkerSet(num_workers, self.resources, start_method, lasting=True)
        self._lock = threading.Lock()
        self._running = False
        # at exit, before multiprocessing joins the remaining (non-daemonic) children; also when collected
        self._finalizer = _mp_util.Finalize(self, _stop, (self._workers,), exitpriority=10)
        self._workers.fill()  # they boot while the caller prepares its flow

    @property
    def closed(self) -> bool:
        return self._workers is None

    @property
    def pids(self) -> List[int]:
        """The process ids of the pool's current workers, in slot order."""
        workers = self._workers.workers if self._workers is not None else []
        return [worker.pid for worker in sorted(workers, key=lambda worker: worker.slot) if worker.pid is not None]

    def close(self) -> None:
        """Stops the workers (and what their tasks started) and waits for them to exit. Calling it
        again does nothing; a pool that is running a flow raises ``RuntimeError``."""
        with self._lock:
            if self._running:
                raise RuntimeError("This WorkerPool is running a flow; close it after flow.run() has returned.")
            workers, self._workers = self._workers, None
        if workers is not None:
            self._finalizer.cancel()
            _stop(workers)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running a flow" if self._running else "idle")
        return f"WorkerPool(num_workers={self.num_workers}, start_method={self.start_method!r}, {state})"

    def executor_for(self, settings: RunSettings) -> Executor:
        """The executor of one run on this pool's workers (``flow.run(executor=pool)`` calls it)."""
        if self._workers is None:
            raise RunConfigError("This WorkerPool is closed; make a new fluidml.WorkerPool(...) to run on.",
                                 key="executor")
        if settings.num_workers and settings.num_workers != self.num_workers:
            raise RunConfigError(f"run(num_workers={settings.num_workers}) differs from the pool's "
                                 f"WorkerPool(num_workers={self.num_workers}); leave num_workers out, or make a pool "
                                 f"of that size.", key="num_workers")
        if settings.resources is not None and _as_list(settings.resources) != self.resources:
            raise RunConfigError(f"run(resources={settings.resources!r}) differs from the pool's "
                                 f"WorkerPool(resources={self.resources!r}); each worker keeps its resource: leave "
                                 f"resources out, or make a pool with these.", key="resources")
        if settings.start_method not in ("spawn", self.start_method):
            raise RunConfigError(f"run(start_method={settings.start_method!r}) differs from the pool's "
                                 f"WorkerPool(start_method={self.start_method!r}); leave start_method out.",
                                 key="start_method")
        if self._running:
            raise RunConfigError(_BUSY, key="executor")
        return _PoolRun(self, settings)

    def _claim(self) -> WorkerSet:
        with self._lock:
            if self._workers is None:
                raise RunConfigError("This WorkerPool was closed before the run started.", key="executor")
            if self._running:
                raise RunConfigError(_BUSY, key="executor")
            self._running = True
            return self._workers

    def _release(self) -> None:
        with self._lock:
            self._running = False


_BUSY = ("This WorkerPool is already running a flow (one run at a time); wait for it, or give the other flow "
         "a WorkerPool of its own.")


class _PoolRun(ProcessExecutor):
    """One run on a pool's workers: claims the pool when the run starts, frees it when it ends."""

    def __init__(self, pool: WorkerPool, settings: RunSettings):
        assert pool._workers is not None
        super().__init__(pool.num_workers, settings.store, tmux_session=settings.tmux_session,
                         max_panes_per_window=settings.max_panes_per_window, workers=pool._workers,
                         on_shutdown=pool._release)
        self._pool = pool

    def start(self) -> None:
        self._pool._claim()


def _stop(workers: WorkerSet) -> None:
    workers.stop(kill=False, wait_for_exit=True)


def _as_list(resources: Any) -> Optional[List[Any]]:
    if resources is None:
        return None
    return list(resources) if isinstance(resources, (list, tuple)) else [resources]
