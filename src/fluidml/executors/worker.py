"""The worker process of the process pool.

A worker receives jobs from the parent over its pipe, runs each with ``run_task`` and sends back
the outcome. Its log records and printed output travel to the parent on the same pipe, labelled
with the worker's name. A store that only lives in the parent (e.g. an ``InMemoryStore``) is
reached through ``ParentStore``: every call is answered by the parent.
"""

import contextlib
import io
import itertools
import logging
import pickle
import signal
import sys
import threading
import traceback
from typing import Any, Dict, Iterator, Optional, Tuple

import cloudpickle
from tblib import pickling_support

from fluidml.exception import TaskFailedError
from fluidml.runner import Outcome, run_task
from fluidml.storage.base import ResultsStore, StoreContext
from fluidml.task import TaskState

__all__ = ["ParentStore", "worker_main"]

# Messages from a worker to the parent.
DONE, LOG, OUTPUT, CALL, FATAL = "done", "log", "output", "call", "fatal"
# Messages from the parent to a worker.
JOB, REPLY, STOP = "job", "reply", "stop"

#: The store methods a worker may call on a store that lives in the parent.
PARENT_STORE_METHODS = frozenset({
    "load", "save", "delete", "delete_run", "get_context", "open", "stored_configs", "find_unique_config",
    "get_results", "is_finished", "_register_result", "_unregister_result",
})


class Channel:
    """The worker's end of its pipe. Sends from several threads are serialized, and each store call
    is numbered so that a reply left over from an interrupted call is never taken for the next one."""

    def __init__(self, conn: Any):
        self.conn = conn
        self._send_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._numbers = itertools.count()

    def send(self, message: Tuple) -> None:
        with self._send_lock, _sigint_blocked():
            self.conn.send(message)

    def call(self, method: str, args: Tuple, kwargs: Dict[str, Any]) -> Any:
        """Calls ``method`` on the parent's store and returns its result (or raises its error)."""
        with self._call_lock:
            number = next(self._numbers)
            try:
                payload = cloudpickle.dumps((method, args, kwargs))
            except Exception as exc:
                raise TypeError(
                    f"store.{method}(): the arguments cannot be sent to the parent process, which holds the "
                    f"results store ({exc}). Save picklable objects, or use a LocalFileStore."
                ) from exc
            with _sigint_blocked():  # a message cut in half would leave the pipe unreadable
                self.send((CALL, number, payload))
                while True:
                    kind, reply_number, ok, value = self.conn.recv()
                    if kind == REPLY and reply_number == number:
                        break
        if not ok:
            raise value
        return pickle.loads(value)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Defers Ctrl-C while a message is written or read (it is delivered right after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _forward(method: str) -> Any:
    def call_parent(self: "ParentStore", *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(method, args, kwargs)

    call_parent.__name__ = method
    call_parent.__doc__ = f"``{method}`` of the store in the parent process."
    return call_parent


class ParentStore(ResultsStore):
    """A worker's stand-in for a results store that lives in the parent process (one that is not
    ``process_safe``): each call is sent to the parent, run on the real store there, and answered."""

    def __init__(self, channel: Channel):
        super().__init__()
        self._channel = channel

    load = _forward("load")
    save = _forward("save")
    delete = _forward("delete")
    delete_run = _forward("delete_run")
    get_context = _forward("get_context")
    open = _forward("open")
    stored_configs = _forward("stored_configs")
    find_unique_config = _forward("find_unique_config")
    get_results = _forward("get_results")
    is_finished = _forward("is_finished")
    _register_result = _forward("_register_result")
    _unregister_result = _forward("_unregister_result")


class _ForwardingHandler(logging.Handler):
    """Sends the worker's log records to the parent (message formatted, exception as text)."""

    def __init__(self, channel: Channel, worker: str):
        super().__init__()
        self.channel = channel
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.worker = self.worker
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info:
                record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
            try:
                self.channel.send((LOG, record))
            except Exception:  # e.g. an unpicklable `extra` value: send the standard fields only
                plain = {k: v for k, v in vars(record).items() if k in _RECORD_FIELDS}
                self.channel.send((LOG, logging.makeLogRecord({**plain, "worker": self.worker})))
        except Exception:
            self.handleError(record)


_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))


class _OutputWriter(io.TextIOBase):
    """Replaces the worker's ``sys.stdout`` / ``sys.stderr``: complete lines go to the parent (and to
    the worker's log file for tmux, if any)."""

    def __init__(self, channel: Channel, stream: str, tee: Optional[Any] = None):
        super().__init__()
        self._channel = channel
        self._stream = stream
        self._tee = tee
        self._pending = ""
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self._send(complete + "\n")
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                text, self._pending = self._pending, ""
                self._send(text)

    def _send(self, text: str) -> None:
        self._channel.send((OUTPUT, self._stream, text))
        if self._tee is not None:
            self._tee.write(text)
            self._tee.flush()


class _InterruptGate:
    """SIGINT raises KeyboardInterrupt only while a task runs, and only once per task, so that a
    Ctrl-C from the terminal and the parent's forwarded one do not interrupt the task's cleanup."""

    def __init__(self) -> None:
        self.busy = False
        self.interrupted = False
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.busy and not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt


def _setup_logging(channel: Channel, worker: str, level: int, log_file: Optional[Any]) -> None:
    """Replaces every handler (the user's main module may have added its own when it was imported
    again here) with one that forwards to the parent, so no line is printed twice."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_ForwardingHandler(channel, worker))
    if log_file is not None:
        file_handler = logging.StreamHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s", "%H:%M:%S"))
        root.addHandler(file_handler)
    root.setLevel(level)


def worker_main(conn: Any, worker: str, setup: bytes) -> None:
    """The worker's life: set up from ``setup`` (store, resource, log level, log file), then run jobs
    until the parent says stop or goes away."""
    channel = Channel(conn)
    gate = _InterruptGate()
    try:
        options = cloudpickle.loads(setup)
        store = options["store"] if options["store"] is not None else ParentStore(channel)
        resource = options["resource"]
        log_file = open(options["log_file"], "a", encoding="utf-8") if options["log_file"] else None
    except BaseException:
        channel.send((FATAL, traceback.format_exc()))
        return
    _setup_logging(channel, worker, options["log_level"], log_file)
    stdout, stderr = _OutputWriter(channel, "stdout", log_file), _OutputWriter(channel, "stderr", log_file)
    sys.stdout, sys.stderr = stdout, stderr  # type: ignore[assignment]
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone: nothing left to report to
        if message[0] != JOB:
            return
        _, task_id, payload = message
        gate.busy, gate.interrupted = True, False
        try:
            outcome = _run_job(payload, store, resource)
        except KeyboardInterrupt as exc:  # interrupted outside the task's own code
            outcome = Outcome(TaskState.KILLED, error=exc, traceback="KeyboardInterrupt\n")
        finally:
            gate.busy = False
        stdout.flush()
        stderr.flush()
        channel.send((DONE, task_id, pack_outcome(outcome)))


def _run_job(payload: bytes, store: ResultsStore, resource: Any) -> Outcome:
    try:
        task, predecessors, reason = cloudpickle.loads(payload)
    except Exception as exc:
        return Outcome(TaskState.FAILED, error=exc, traceback=traceback.format_exc())
    task.results_store = store
    task.resource = resource
    try:
        return run_task(task, predecessors, store, reason)
    except Exception as exc:  # the store failed (e.g. its server went away): the task fails, the worker lives on
        return Outcome(TaskState.FAILED, reason=reason, error=exc, traceback=traceback.format_exc(),
                       run_name=task.run_name, sweep_counter=task.sweep_counter, run_history=task.run_history)


def pack_outcome(outcome: Outcome) -> bytes:
    """The outcome as bytes, its exception with its traceback (tblib). An exception that does not
    survive pickling is replaced by a ``TaskFailedError`` holding its type, message and traceback."""
    error = outcome.error
    if error is None:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        pickling_support.install(error)
        data = cloudpickle.dumps(outcome)
        pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
        return data
    except Exception:
        text = outcome.traceback or f"{type(error).__qualname__}: {error}\n"
        outcome.error = TaskFailedError(
            f"{type(error).__module__}.{type(error).__qualname__}: {error} (the original exception could not be "
            f"sent from the worker process; its traceback:)\n{text}"
        )
        return cloudpickle.dumps(outcome)


def answer_call(store: ResultsStore, payload: bytes) -> Tuple[bool, Any]:
    """Runs a worker's store call on the parent's store: ``(True, pickled result)`` or ``(False, error)``."""
    try:
        method, args, kwargs = pickle.loads(payload)
        if method not in PARENT_STORE_METHODS:
            raise AttributeError(f"store.{method} cannot be called from a worker process.")
        result = getattr(store, method)(*args, **kwargs)
        if isinstance(result, StoreContext) or result is None:
            return True, pickle.dumps(result)
        return True, cloudpickle.dumps(result)
    except Exception as exc:
        try:
            pickle.dumps(exc)
            return False, exc
        except Exception:
            return False, RuntimeError(f"{type(exc).__qualname__}: {exc}")
