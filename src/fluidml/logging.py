"""Logging: ``configure_logging()`` for applications, and the observer that writes a run's log lines.

The library itself only creates ``logging.getLogger(__name__)`` loggers; it adds no handler and
changes no level unless the application calls ``configure_logging()``.
"""

import logging
import sys
from typing import Any, Union

from fluidml.driver import RunObserver, RunSummary
from fluidml.planner import plan_lines
from fluidml.progress import summary_lines
from fluidml.runner import Outcome
from fluidml.task import Task, TaskState

__all__ = ["LoggingObserver", "configure_logging"]

logger = logging.getLogger("fluidml.flow")

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "FATAL": 50, "CRITICAL": 50}
_MARK = "_fluidml_handler"


def _level_number(level: Union[str, int]) -> int:
    if isinstance(level, bool) or not isinstance(level, (str, int)):
        raise ValueError(f"configure_logging(level=...) takes a level name or number, got {level!r}.")
    if isinstance(level, int):
        return level
    number = _LEVELS.get(level.strip().upper())
    if number is None:
        raise ValueError(
            f"Unknown logging level {level!r}; use one of {', '.join(sorted(set(_LEVELS)))} (any case) or a number."
        )
    return number


class _WorkerFormatter(logging.Formatter):
    """Adds ``%(worker_name)s``: the record's ``worker`` (set on records that a worker process
    forwarded to the parent, e.g. ``"worker-1"``), or ``"main"`` for records made here."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        values = dict(record.__dict__, worker_name=getattr(record, "worker", None) or "main")
        return self._style._fmt % values  # our own %-style format


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at the time (so that a live
    progress display, or pytest's capture, can take the lines)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # logging sets it in __init__; the property decides
        pass


def configure_logging(level: Union[str, int] = "INFO", rich_logging: bool = True, rich_traceback: bool = True) -> None:
    """Sets up console logging for an application: one handler on the root logger, at ``level``.

    Calling it again replaces the handler it installed (lines are never doubled). The root logger's
    level is set to ``level`` because that is what the call asks for; nothing else in fluidml
    touches it. Each line shows the time, the level, the worker that logged it (``main`` for the
    calling process, ``worker-N`` for worker processes) and the message.

    Args:
        level: A level name in any case (``"info"``, ``"DEBUG"``) or number.
        rich_logging: Use rich's handler (colours, time column, worker column). Either way,
            log lines go to stderr.
        rich_traceback: Show uncaught exceptions with rich's traceback printer.
    """
    number = _level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    if rich_logging:
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=Console(stderr=True), rich_tracebacks=True, tracebacks_extra_lines=2, show_path=False,
            show_time=True, log_time_format="[%X]",
        )
        handler.setFormatter(_WorkerFormatter("%(worker_name)-9s %(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(
            _WorkerFormatter("%(asctime)s %(levelname)-8s %(worker_name)-9s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
        )
    setattr(handler, _MARK, True)
    handler.setLevel(number)
    root.addHandler(handler)
    root.setLevel(number)
    if rich_traceback:
        from rich.traceback import install

        install(extra_lines=2)


def _first_line(error: Any) -> str:
    """``ConnectionError: refused`` (the first line of its message), or "" without an error."""
    if error is None:
        return ""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _progress(finished: int, total: int) -> str:
    return f"[{finished}/{total} - {round(100 * finished / total)}%]"


class LoggingObserver(RunObserver):
    """Writes the run's log lines (the ``fluidml.flow`` logger): start, per-task results, summary."""

    def run_started(self, summary: RunSummary) -> None:
        logger.info('Run "%s" (project "%s"): %d tasks, run %s, results in %s.',
                    summary.run_name, summary.project_name, summary.total, summary.executor, summary.store)
        if logger.isEnabledFor(logging.INFO):
            for line in plan_lines(summary.plan):  # one per task name: what runs, and why
                logger.info("%s", line)

    def task_ended(self, task: Task, outcome: Outcome, finished: int, total: int) -> None:
        if not logger.isEnabledFor(logging.INFO if outcome.state == TaskState.FINISHED else logging.ERROR):
            return
        if outcome.cached:
            logger.info('Task "%s" already executed (config %s) %s',
                        task.unique_name, task.unique_config_hash, _progress(finished, total))
        elif outcome.state == TaskState.FINISHED:
            logger.info('Finished task "%s" %s', task.unique_name, _progress(finished, total))
        elif outcome.state == TaskState.KILLED:  # where it was interrupted is noise: it was asked to stop
            logger.error('Task "%s" was killed (%s).', task.unique_name, _first_line(outcome.error) or "interrupted")
        else:
            text = (outcome.traceback or str(outcome.error)).rstrip()
            logger.error('Task "%s" failed:\n%s', task.unique_name, text)

    def task_retried(self, task: Task, outcome: Outcome, attempt: int, attempts: int, wait: float) -> None:
        after = f" in {wait:g} s" if wait else ""
        logger.warning("%s: attempt %d of %d%s after %s", task.unique_name, attempt, attempts, after,
                       _first_line(outcome.error) or outcome.state.value)

    def task_upstream_failed(self, task: Task, failed: Task) -> None:
        logger.warning('Task "%s" will not run: its upstream task "%s" failed.', task.unique_name, failed.unique_name)

    def run_ended(self, summary: RunSummary) -> None:
        """Logs the closing summary: counts per state, time and results location (INFO; a line per
        failed task with the first line of its error)."""
        first, *failures = summary_lines(summary)
        logger.info("%s", first)
        for line in failures:
            logger.info("%s", line)
