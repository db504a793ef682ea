"""The two ends of a worker's pipe, as the worker sees them: the messages, a ``Channel`` that sends
them (from several threads, never cut in half by a signal), and what forwards the worker's log
records and printed output to the parent."""

import io
import itertools
import logging
import pickle
import threading
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

from fluidml.executors import _pickling
from fluidml.executors._signals import interrupts_deferred

__all__ = ["CALL", "Channel", "DONE", "FATAL", "JOB", "LOG", "OUTPUT", "ParentGone", "READY", "REPLY", "RUN", "SPECS",
           "STOP", "ForwardingHandler", "OutputWriter"]

# Messages from a worker to the parent.
DONE, LOG, OUTPUT, CALL, FATAL, READY = "done", "log", "output", "call", "fatal", "ready"
# Messages from the parent to a worker.
#  RUN: a run begins (its store and log settings); SPECS: the run's task specs; JOB: a task to run.
RUN, JOB, SPECS, REPLY, STOP = "run", "job", "specs", "reply", "stop"


class ParentGone(OSError):
    """The pipe to the parent is closed: the parent process ended."""


class Channel:
    """The worker's end of its pipe. Sends from several threads are serialized, and each store call
    is numbered so that a reply left over from an interrupted call is never taken for the next one."""

    def __init__(self, conn: Any, in_task: Callable[[], bool]):
        self.conn = conn
        self.broken = False  # the parent is gone
        self._in_task = in_task  # signals are deferred around messages only while a task runs
        self._send_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._numbers = itertools.count()

    def send(self, message: Tuple) -> None:
        """Sends a message; raises ``ParentGone`` once the parent is gone."""
        if self.broken:
            raise ParentGone("the parent process is gone")
        with self._send_lock, self._deferred():
            try:
                self.conn.send(message)
            except (OSError, EOFError) as error:
                self.broken = True
                raise ParentGone("the parent process is gone") from error

    def send_with_buffers(self, message: Tuple, buffers: List[Any]) -> None:
        """Sends ``message`` followed by raw ``buffers`` (see ``_pickling.send_with_buffers``); raises
        ``ParentGone`` once the parent is gone."""
        if self.broken:
            raise ParentGone("the parent process is gone")
        with self._send_lock, self._deferred():
            try:
                _pickling.send_with_buffers(self.conn, message, buffers)
            except (OSError, EOFError) as error:
                self.broken = True
                raise ParentGone("the parent process is gone") from error

    def call(self, method: str, args: Tuple, kwargs: Dict[str, Any]) -> Any:
        """Calls ``method`` on the parent's store and returns its result (or raises its error)."""
        with self._call_lock:
            number = next(self._numbers)
            try:
                payload = _pickling.dumps((method, args, kwargs))
            except Exception as exc:
                raise TypeError(
                    f"store.{method}(): the arguments cannot be sent to the parent process, which holds the "
                    f"results store ({exc}). Save picklable objects, or use a LocalFileStore."
                ) from exc
            with self._deferred():  # a message cut in half would leave the pipe unreadable
                self.send((CALL, number, payload))
                while True:
                    kind, reply_number, ok, value = self.conn.recv()
                    if kind == REPLY and reply_number == number:
                        break
        if not ok:
            raise value
        return pickle.loads(value)

    def _deferred(self) -> ContextManager[None]:
        """Defers Ctrl-C, SIGTERM and a timeout's alarm while a message is written or read during a
        task (they are delivered right after; outside a task SIGINT is ignored anyway)."""
        return interrupts_deferred(self._in_task())


class ForwardingHandler(logging.Handler):
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
            except ParentGone:
                raise
            except Exception:  # e.g. an unpicklable `extra` value: send the standard fields only
                plain = {k: v for k, v in vars(record).items() if k in _RECORD_FIELDS}
                self.channel.send((LOG, logging.makeLogRecord({**plain, "worker": self.worker})))
        except ParentGone:
            pass  # nobody left to read it
        except Exception:
            self.handleError(record)


_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))


class OutputWriter(io.TextIOBase):
    """Replaces the worker's ``sys.stdout`` / ``sys.stderr``: complete lines go to the parent (and to
    the worker's log file for tmux, if any)."""

    def __init__(self, channel: Channel, stream: str, original: Any, tee: Optional[Any] = None):
        super().__init__()
        self._channel = channel
        self._stream = stream
        self._original = original
        self.tee = tee  # the worker's log file for tmux, or None (set per run)
        self._pending: List[str] = []  # text after the last line break (a list: appending stays O(1))
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The process's real descriptor, for code that needs one (a subprocess's stdout, faulthandler);
        what is written to it directly goes to the console unlabelled."""
        return int(self._original.fileno())

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            head, newline, tail = text.rpartition("\n")  # only the new text is searched: linear in the output
            if newline:
                self._pending.append(head + newline)
                self._send("".join(self._pending))
                self._pending = [tail] if tail else []
            elif text:
                self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                text, self._pending = "".join(self._pending), []
                self._send(text)

    def _send(self, text: str) -> None:
        try:
            self._channel.send((OUTPUT, self._stream, text))
        except ParentGone:
            pass  # nobody left to read it
        if self.tee is not None:
            self.tee.write(text)
            self.tee.flush()


