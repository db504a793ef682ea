"""The parent's side of a set of worker processes: starting them, replacing one, stopping them all.

Worker ``i`` (slot ``i``) always has resource ``i``, also after it was replaced. Every worker leads
its own process group, and whenever the parent ends a worker it ends the whole group, so nothing a
task started outlives it. Workers follow the parent when it dies (worker.py): through a "lifeline"
pipe whose writing end only the parent holds, and on Linux through ``PR_SET_PDEATHSIG``.
"""

import contextlib
import logging
import os
import signal
import threading
import time
from multiprocessing.connection import wait
from typing import Any, Iterator, List, Optional

from fluidml import _timeouts
from fluidml.executors import _pickling
from fluidml.executors._contexts import process_context
from fluidml.executors._worker_io import STOP
from fluidml.executors.worker import worker_main

__all__ = ["EXIT_GRACE", "WorkerProcess", "WorkerSet", "kill_group", "worker_resources"]

logger = logging.getLogger(__name__)

#: Seconds a worker may take to exit after being asked to, before it is killed.
EXIT_GRACE = 2.0


def worker_resources(resources: List[Any], num_workers: int) -> List[Any]:
    """One resource per worker: in order when the counts match; otherwise round robin, so that no
    two workers share a resource while another one is free."""
    if not resources:
        return [None] * num_workers
    return [resources[i % len(resources)] for i in range(num_workers)]


class WorkerProcess:
    """The parent's record of one worker process."""

    def __init__(self, slot: int, name: str, process: Any, conn: Any):
        self.slot = slot
        self.name = name
        self.process = process
        self.conn = conn
        self.job: Any = None  # the Job it runs, if any
        self.specs_sent = 0  # how many of its run's specs it has
        self.ready = False  # it started and reported READY
        self.serving: Any = None  # the executor whose run it was set up for (``RUN`` message)

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid  # type: ignore[no-any-return]


class WorkerSet:
    """``size`` worker processes started with ``start_method``, worker ``i`` holding ``resources[i]``
    (see ``worker_resources``). ``lasting``: the set serves several runs (a ``WorkerPool``), so a
    worker must not depend on the thread that started it."""

    def __init__(self, size: int, resources: Optional[List[Any]], start_method: str, lasting: bool = False):
        self.size = size
        self.start_method = start_method
        self.resources = worker_resources(resources or [], size)
        self.context: Any = process_context(start_method)
        self.lasting = lasting
        self.workers: List[WorkerProcess] = []
        self._setups: List[bytes] = []
        for slot, resource in enumerate(self.resources):
            try:
                self._setups.append(_pickling.dumps({"resource": resource, "timeout_grace": _timeouts.TIMEOUT_GRACE}))
            except Exception as exc:
                raise TypeError(f"The resource of worker {slot + 1} cannot be sent to a worker process: {exc}. "
                                f"Pass picklable resources (e.g. device ids).") from exc
        self._lifeline: Any = None  # (reader, writer): workers hold the reader; the writer closes when we end

    def fill(self) -> None:
        """Starts a worker for each slot without one; a worker that died while idle is replaced
        (they boot in parallel; jobs wait in their pipes meanwhile)."""
        for worker in list(self.workers):
            if worker.job is None and wait([worker.process.sentinel], 0):
                logger.warning("Worker process %s (pid %s) had ended while idle (exit code %s); starting another.",
                               worker.name, worker.pid, worker.process.exitcode)
                self.discard(worker)
        taken = {worker.slot for worker in self.workers}
        for slot in range(self.size):
            if slot not in taken:
                self.spawn(slot)

    def spawn(self, slot: int) -> WorkerProcess:
        """Starts the worker of ``slot``."""
        if self._lifeline is None:
            self._lifeline = self.context.Pipe(duplex=False)
        name = f"worker-{slot + 1}"
        parent_conn, child_conn = self.context.Pipe(duplex=True)
        reader, writer = self._lifeline
        forked = self.start_method == "fork"
        deathsig = not self.lasting or self.start_method == "forkserver" or \
            threading.current_thread() is threading.main_thread()
        args = (child_conn, name, self._setups[slot], reader,
                None if self.start_method == "forkserver" else os.getpid(),  # (a fork server is its parent)
                [parent_conn.fileno(), writer.fileno()] if forked else [], deathsig)
        process = self.context.Process(target=worker_main, args=args, name=name,
                                       daemon=False)  # not daemonic: tasks may start processes
        with _sigint_ignored():
            process.start()
        child_conn.close()
        worker = WorkerProcess(slot, name, process, parent_conn)
        self.workers.append(worker)
        return worker

    def discard(self, worker: WorkerProcess) -> None:
        """Kills a worker with its group and forgets it (its exit code is then known)."""
        kill_group(worker)  # (before it is reaped: its group id is still its own)
        worker.process.join(EXIT_GRACE)
        if worker in self.workers:
            self.workers.remove(worker)
        worker.conn.close()

    def stop(self, kill: bool = False, wait_for_exit: bool = True) -> None:
        """Stops every worker: asks idle ones to exit, terminates busy ones (as if interrupted), or
        with ``kill`` kills every group at once. Waits up to ``EXIT_GRACE`` for them, then kills those
        left; with ``wait_for_exit=False`` a background thread does that, and this returns at once."""
        for worker in self.workers:
            try:
                if kill:
                    kill_group(worker)
                elif worker.job is None:
                    worker.conn.send((STOP,))
                else:
                    worker.process.terminate()  # as if interrupted (see worker.py)
            except OSError:
                pass
            worker.conn.close()
        processes = [worker.process for worker in self.workers]
        lifeline, self._lifeline = self._lifeline, None
        self.workers = []
        if wait_for_exit:
            _reap(processes, lifeline)
        elif processes or lifeline is not None:
            threading.Thread(target=_reap, args=(processes, lifeline), name="fluidml-reaper", daemon=True).start()


def _reap(processes: List[Any], lifeline: Any) -> None:
    """Waits for stopped workers to exit; kills (with their groups) those that take longer than
    ``EXIT_GRACE``; then closes the lifeline."""
    deadline = time.monotonic() + EXIT_GRACE
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            _kill_process_group(process.pid)
            process.kill()
            process.join()
    if lifeline is not None:
        for end in lifeline:
            end.close()


def kill_group(worker: WorkerProcess) -> None:
    """Kills a worker and everything in its process group."""
    _kill_process_group(worker.process.pid)
    with contextlib.suppress(OSError):
        worker.process.kill()


def _kill_process_group(pid: Optional[int]) -> None:
    if pid is None or not hasattr(os, "killpg"):
        return
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:  # it leads its group (not yet, while it starts)
            os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Starts a worker with SIGINT ignored (it inherits that through exec, until it installs its own
    handler), so that a Ctrl-C while it imports prints no traceback. A Ctrl-C meanwhile is held
    (blocked) and delivered here right after. Only the main thread may change signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
