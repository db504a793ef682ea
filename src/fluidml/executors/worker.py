"""The worker process of the process pool.

A worker receives jobs from the parent over its pipe, runs each with ``run_task`` and sends back
the outcome. It may serve several runs (a ``WorkerPool``'s workers do): each run begins with a
``RUN`` message (the run's store and log settings), and the user's modules it imported are
imported afresh when their files changed (_fresh_code.py). Its log records and printed output travel to the parent on the same pipe, labelled
with the worker's name. A store that only lives in the parent (e.g. an ``InMemoryStore``) is
reached through a ``ParentStore`` (parent_store.py).

A worker never outlives its parent. It leads its own process group (what its tasks start is in
it, and goes with it). SIGTERM, which it also gets when the parent dies (``PR_SET_PDEATHSIG`` on
Linux, and a thread that sees the parent's end of a "lifeline" pipe close, everywhere), stops it as
if interrupted: a running task gets ``KeyboardInterrupt`` (its ``finally`` blocks run, its run is
marked KILLED where the store can be written), and ``ORPHAN_GRACE`` seconds later at the latest the
whole group is killed. A worker whose parent is gone exits without a word: nothing is left to
report to, and writing to the closed pipe would only print tracebacks.
"""

import atexit
import contextlib
import logging
import os
import pickle
import signal
import sys
import threading
import traceback
from multiprocessing.connection import wait
from typing import Any, List, NoReturn, Optional, Sequence

from tblib import pickling_support

from fluidml.exception import TaskFailedError
from fluidml.executors import _pickling
from fluidml.executors._fresh_code import CodeWatch
from fluidml.executors._shipping import load_specs, resolve_specs
from fluidml.executors._worker_io import (
    DONE, FATAL, JOB, READY, RUN, SPECS, Channel, ForwardingHandler, OutputWriter, ParentGone,
)
from fluidml.executors.parent_store import ParentStore, Write
from fluidml.runner import Outcome, error_text, run_task
from fluidml.storage.base import ResultsStore
from fluidml.task import TaskState

__all__ = ["pack_outcome", "worker_main"]

#: Seconds a worker told to stop (SIGTERM, or its parent died) gives its task before it kills its group.
ORPHAN_GRACE = 2.0
_PR_SET_PDEATHSIG = 1


class _InterruptGate:
    """SIGINT raises KeyboardInterrupt only while a task runs, and only once per task, so that a
    Ctrl-C from the terminal and the parent's forwarded one do not interrupt the task's cleanup.
    SIGTERM stops the worker: it interrupts the task the same way, or ends an idle worker at once,
    and kills the worker's group after ``ORPHAN_GRACE`` seconds whatever the task does."""

    def __init__(self) -> None:
        self.busy = False
        self.interrupted = False
        self.stopping = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._stop)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.busy and not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt

    def _stop(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        self.stopping = True
        logging.raiseExceptions = False  # a record that cannot be sent any more is dropped quietly
        if not self.busy:
            _quit()
        timer = threading.Timer(ORPHAN_GRACE, _quit)
        timer.daemon = True
        timer.start()
        self._handle(signum, frame)


def _quit() -> None:
    """Ends the worker and everything in its process group (what its tasks started), at once."""
    try:
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(1)


def _follow_parent(parent_pid: Optional[int], lifeline: Any, deathsig: bool = True) -> None:
    """Makes the worker leader of its own process group and stop (SIGTERM) when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpgid(0, 0)
    if deathsig and sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if lifeline is not None:
        threading.Thread(target=_watch_lifeline, args=(lifeline,), name="fluidml-lifeline", daemon=True).start()
    if hasattr(signal, "pthread_sigmask"):  # (a mask the parent held while starting us may be inherited)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if parent_pid is not None and os.getppid() != parent_pid:  # it died before we watched
        os.kill(os.getpid(), signal.SIGTERM)


def _watch_lifeline(lifeline: Any) -> None:
    """The parent never writes to the lifeline: it becomes readable when the parent's end closes."""
    wait([lifeline])
    os.kill(os.getpid(), signal.SIGTERM)


_GATE = _InterruptGate()


class _RunSettings:
    """What a worker holds for the run it serves (``RUN`` message): the store, the specs, the log."""

    def __init__(self, channel: Channel, worker: str, stdout: OutputWriter, stderr: OutputWriter):
        self.channel, self.worker, self.streams = channel, worker, (stdout, stderr)
        self.store: Optional[ResultsStore] = None
        self.specs: List[Any] = []
        self.log_file: Optional[Any] = None

    def begin(self, data: bytes) -> None:
        options = pickle.loads(data)
        self.store = options["store"] if options["store"] is not None else ParentStore(self.channel.call)
        self.specs = []
        if self.log_file is not None:
            self.log_file.close()
        self.log_file = open(options["log_file"], "a", encoding="utf-8") if options["log_file"] else None
        for stream in self.streams:
            stream.tee = self.log_file
        _setup_logging(self.channel, self.worker, options["log_level"], self.log_file)


def _setup_logging(channel: Channel, worker: str, level: int, log_file: Optional[Any]) -> None:
    """Replaces every handler (the user's main module may have added its own when it was imported
    again here) with one that forwards to the parent, so no line is printed twice."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(ForwardingHandler(channel, worker))
    if log_file is not None:
        file_handler = logging.StreamHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s", "%H:%M:%S"))
        root.addHandler(file_handler)
    root.setLevel(level)


def worker_main(conn: Any, worker: str, setup: bytes, lifeline: Any = None, parent_pid: Optional[int] = None,
                close_fds: Sequence[int] = (), deathsig: bool = True) -> None:
    """The worker's life: set up from ``setup`` (resource, timeout grace), then serve runs (each
    begins with a ``RUN`` message: store, log level, log file) until the parent says stop or goes
    away. ``lifeline``: the pipe whose other end only the parent holds; ``close_fds``: descriptors
    inherited through fork that are the parent's alone; ``deathsig``: also stop when the thread
    that started this worker ends (Linux), which a pool that outlives its run cannot rely on."""
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    gate = _GATE
    channel = Channel(conn, lambda: gate.busy)
    gate.install()  # (SIGINT was ignored while this process started: no traceback from a Ctrl-C then)
    _follow_parent(parent_pid, lifeline, deathsig)
    try:
        options = pickle.loads(setup)
        resource = options["resource"]
        channel.send((READY,))
    except ParentGone:
        _quit()
    except BaseException:
        with contextlib.suppress(ParentGone):
            channel.send((FATAL, traceback.format_exc()))
        return
    stdout = OutputWriter(channel, "stdout", sys.stdout)
    stderr = OutputWriter(channel, "stderr", sys.stderr)
    sys.stdout, sys.stderr = stdout, stderr  # type: ignore[assignment]
    run = _RunSettings(channel, worker, stdout, stderr)
    code = CodeWatch()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            _quit()  # the parent is gone: nothing left to report to
        if message[0] == RUN:
            code.forget_if_changed()
            try:
                run.begin(message[1])
            except Exception:  # e.g. the store cannot be opened here: the run stops with this error
                with contextlib.suppress(ParentGone):
                    channel.send((FATAL, traceback.format_exc()))
                _exit_now(stdout, stderr)
            continue
        if message[0] == SPECS:
            run.specs = load_specs(message[1])
            continue
        if message[0] != JOB or run.store is None:
            _exit_now(stdout, stderr)
        _, task_id, payload, sizes = message
        buffers = _pickling.receive_buffers(conn, sizes)
        gate.busy, gate.interrupted = True, False
        try:
            outcome = _run_job(payload, buffers, run.specs, run.store, resource, options.get("timeout_grace"))
        except KeyboardInterrupt as exc:  # interrupted outside the task's own code
            outcome = Outcome(TaskState.KILLED, error=exc, traceback="KeyboardInterrupt\n")
        finally:
            gate.busy = False
        stdout.flush()
        stderr.flush()
        code.note_new_modules()
        writes = run.store.take_writes() if isinstance(run.store, ParentStore) else []
        out_of_band: List[Any] = []
        data = _pack_writes(writes, out_of_band)
        try:
            channel.send_with_buffers((DONE, task_id, pack_outcome(outcome), data), out_of_band)
        except ParentGone:
            _quit()
        if gate.stopping:
            _quit()


def _exit_now(*streams: Any) -> NoReturn:
    """Ends the worker when the parent says stop: runs the exit handlers (``atexit``, which also
    joins processes a task started and flushes logging), then exits without tearing the interpreter
    down, which would cost more CPU than a short task."""
    for stream in streams:
        stream.flush()
    atexit._run_exitfuncs()
    os._exit(0)


def _run_job(payload: bytes, buffers: List[bytearray], specs: List[Any], store: ResultsStore, resource: Any,
             grace: Optional[float]) -> Outcome:
    try:
        task, predecessors, reason, prefetched = pickle.loads(payload, buffers=buffers)
        resolve_specs(task, specs)
    except Exception as exc:
        return Outcome(TaskState.FAILED, error=exc, traceback=traceback.format_exc())
    if prefetched is not None and isinstance(store, ParentStore):
        store.seed(prefetched)
    task.results_store = store
    task.resource = resource
    try:
        return run_task(task, predecessors, store, reason, in_worker=True, grace=grace)
    except Exception as exc:  # the store failed (e.g. its server went away): the task fails, the worker lives on
        return Outcome(TaskState.FAILED, reason=reason, error=exc, traceback=traceback.format_exc(),
                       run_name=task.run_name, sweep_counter=task.sweep_counter, run_history=task.run_history)


def _pack_writes(writes: List[Write], buffers: List[Any]) -> bytes:
    """The writes pickled, their saved objects' large buffers appended to ``buffers`` (sent raw)."""
    try:
        return _pickling.dumps(writes, buffers)
    except Exception as exc:  # e.g. an unpicklable keyword argument of save(): nothing is applied
        buffers.clear()
        return _pickling.dumps(TypeError(f"The task's writes to the results store cannot be sent to the parent "
                                           f"process: {exc}"))


def pack_outcome(outcome: Outcome) -> bytes:
    """The outcome as bytes, its exception with its traceback (tblib). An exception that does not
    survive pickling is replaced by a ``TaskFailedError`` holding its type, message and traceback."""
    error = outcome.error
    if error is None:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        pickling_support.install(error)
        data = _pickling.dumps(outcome)
        pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
        return data
    except Exception:
        text = outcome.traceback or f"{type(error).__qualname__}: {error_text(error)}\n"
        outcome.error = TaskFailedError(
            f"{type(error).__module__}.{type(error).__qualname__}: {error_text(error)} (the original exception could "
            f"not be sent from the worker process; its traceback:)\n{text}"
        )
        return _pickling.dumps(outcome)
