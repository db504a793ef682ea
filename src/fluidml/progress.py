"""What a person watching a run sees: a live progress display on a terminal, and the closing summary.

``ProgressDisplay`` is a ``RunObserver``: it learns everything from the driver's hooks in the
parent process, so it works the same for every executor. ``Flow.run()`` adds it when stdout is a
terminal, unless ``Flow.run(progress=False)`` or the environment variable ``FLUIDML_PROGRESS=0``
turns it off. When stdout is not a terminal (CI, files) nothing is drawn; the run's log lines
(see ``fluidml.logging``) say the same in plain text.
"""

import logging
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from fluidml.driver import RunObserver, RunSummary
from fluidml.runner import Outcome
from fluidml.task import Task, TaskState

__all__ = ["ProgressDisplay", "format_duration", "progress_observers", "summary_lines", "summary_table"]

ENV_SWITCH = "FLUIDML_PROGRESS"
_OFF = {"0", "false", "no", "off"}


def format_duration(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``4m 05s``, ``2h 03m 07s``."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s"


#: Final states in the order the summary lists them.
_ORDER = [TaskState.FINISHED, TaskState.FAILED, TaskState.KILLED, TaskState.UPSTREAM_FAILED, TaskState.PENDING]
_LABELS = {TaskState.UPSTREAM_FAILED: "upstream failed", TaskState.PENDING: "not run"}


def _state_rows(summary: RunSummary) -> List[tuple]:
    counts = summary.counts()
    rows = []
    for state in _ORDER:
        n = counts.get(state.value, 0)
        if n or state == TaskState.FINISHED:
            note = f"{summary.cached} already executed" if state == TaskState.FINISHED and summary.cached else ""
            rows.append((_LABELS.get(state, state.value), n, note))
    return rows


def summary_lines(summary: RunSummary) -> List[str]:
    """The closing summary as plain lines: counts per state, time, where the results are, failures."""
    parts = []
    for label, n, _ in _state_rows(summary):
        parts.append(f"{n} finished ({summary.cached} already executed)" if label == "finished" else f"{n} {label}")
    lines = [f'Run "{summary.run_name}" ended after {summary.duration:.2f}s: {", ".join(parts)}. '
             f"Results: {summary.store}."]
    lines += [f'  failed: "{name}": {error}' for name, error in summary.failures]
    return lines


def summary_table(summary: RunSummary) -> Any:
    """The closing summary as a rich renderable (one screen: failures beyond 20 are counted)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    states = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2))
    styles = {"finished": "green", "failed": "bold red", "killed": "bold red", "upstream failed": "yellow"}
    for label, n, note in _state_rows(summary):
        states.add_row(Text(label, style=styles.get(label, "")), str(n), Text(note, style="dim"))
    title = Text.assemble(("Run ", "bold"), (summary.run_name, "bold cyan"),
                          f" (project {summary.project_name}): {summary.total} tasks in ",
                          (format_duration(summary.duration), "bold"))
    parts: List[Any] = [title, states]
    if summary.failures:
        failures = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 2))
        failures.add_column("failed task", style="red", no_wrap=True)
        failures.add_column("error", overflow="ellipsis", no_wrap=True)
        for name, error in summary.failures[:20]:
            failures.add_row(name, error)
        parts.append(failures)
        if len(summary.failures) > 20:
            parts.append(Text(f"... and {len(summary.failures) - 20} more failed tasks (see the log)", style="dim"))
    parts.append(Text.assemble("Results: ", (summary.store, "bold"), f" (ran {summary.executor})"
                               if summary.executor else ""))
    return Group(*parts)


class ProgressDisplay(RunObserver):
    """A live view of a run on a terminal: a bar, tasks done / running / queued / failed / cached of
    the total, the running tasks' names (with their job states on a cluster) and the elapsed time; at
    the end, the summary table.

    While it is shown, ``print()`` output and log lines written to ``sys.stdout``/``sys.stderr``
    appear above it (rich redirects both streams for the run's duration and restores them).
    """

    def __init__(self, console: Any = None, max_names: int = 5, refresh_per_second: float = 4.0):
        from rich.console import Console

        self.console = console if console is not None else Console(file=sys.stdout)
        self.max_names = max_names
        self.refresh_per_second = refresh_per_second
        self._lock = threading.Lock()
        self._live: Any = None
        self._borrowed: List[tuple] = []
        self._reset(None)

    def _reset(self, summary: Optional[RunSummary]) -> None:
        self.summary = summary
        self.total = summary.total if summary else 0
        self.done = self.cached = self.failed = self.skipped = 0
        self.running: Dict[str, float] = {}
        self.statuses: Dict[str, str] = {}  # where running tasks stand on a cluster, e.g. "PENDING (Priority)"
        self.started = time.monotonic()

    def run_started(self, summary: RunSummary) -> None:
        from rich.errors import LiveError
        from rich.live import Live

        self._reset(summary)
        live = Live(self, console=self.console, refresh_per_second=self.refresh_per_second, transient=True,
                    redirect_stdout=True, redirect_stderr=True)
        try:
            live.start()
        except LiveError:  # another live display is on screen (a run inside a task): show nothing
            return
        self._live = live
        self._borrowed = _lend_console(self.console)

    def task_submitted(self, task: Task) -> None:
        with self._lock:
            self.running[task.unique_name] = time.monotonic()

    def task_status(self, task: Task, status: str) -> None:
        with self._lock:
            if task.unique_name in self.running:
                self.statuses[task.unique_name] = status

    def task_ended(self, task: Task, outcome: Outcome, finished: int, total: int) -> None:
        with self._lock:
            self.running.pop(task.unique_name, None)
            self.statuses.pop(task.unique_name, None)
            if outcome.state == TaskState.FINISHED:
                self.done += 1
                self.cached += outcome.cached
            else:
                self.failed += 1

    def task_upstream_failed(self, task: Task, failed: Task) -> None:
        with self._lock:
            self.skipped += 1

    def run_ended(self, summary: RunSummary) -> None:
        if self._live is None:
            return
        for handler, console in self._borrowed:
            handler.console = console
        self._borrowed = []
        self._live.stop()
        self._live = None
        self.console.print(summary_table(summary))

    def status_line(self) -> str:
        """The counts as one plain line, e.g. ``7/12 done (2 cached), 2 running, 1 failed, 0:00:04``."""
        with self._lock:
            elapsed = int(time.monotonic() - self.started)
            queued = sum(status.startswith("PENDING") for status in self.statuses.values())
            text = f"{self.done}/{self.total} done ({self.cached} cached), {len(self.running) - queued} running, " \
                   + (f"{queued} queued, " if queued else "") + f"{self.failed} failed"
            if self.skipped:
                text += f", {self.skipped} skipped"
        return f"{text}, {elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"

    def running_line(self) -> str:
        """The running tasks, longest running first (at most ``max_names``, then "+k more"), each with
        where it stands on a cluster if the executor said (e.g. ``train-3 [PENDING (Priority)]``)."""
        with self._lock:
            names = sorted(self.running, key=self.running.__getitem__)
            labels = [f"{name} [{self.statuses[name]}]" if name in self.statuses else name for name in names]
        shown = ", ".join(labels[: self.max_names])
        more = f" +{len(names) - self.max_names} more" if len(names) > self.max_names else ""
        return f"running: {shown}{more}" if names else "running: -"

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        name = self.summary.run_name if self.summary else ""
        line = Table.grid(padding=(0, 1))
        line.add_row(Text(f"fluidml {name}", style="bold cyan"),
                     ProgressBar(total=max(self.total, 1), completed=self.done + self.failed + self.skipped,
                                 width=20),
                     Text(self.status_line()))
        return Group(line, Text("  " + self.running_line(), style="dim", overflow="ellipsis", no_wrap=True))


def _lend_console(console: Any) -> List[tuple]:
    """Points fluidml's rich log handler (see ``configure_logging``) at the display's console while
    the display is on, when both write to a terminal: rich then prints log lines above the display
    instead of through it. Returns (handler, its own console) pairs to restore."""
    from rich.logging import RichHandler

    lent = []
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_fluidml_handler", False) and isinstance(handler, RichHandler) \
                and handler.console.is_terminal:
            lent.append((handler, handler.console))
            handler.console = console
    return lent


def progress_observers(progress: bool) -> List[RunObserver]:
    """The display ``Flow.run(progress=...)`` adds: one ``ProgressDisplay`` when ``progress`` is
    on, ``FLUIDML_PROGRESS`` is not ``0``/``false``/``no``/``off`` and stdout is a terminal."""
    if not progress or os.environ.get(ENV_SWITCH, "").strip().lower() in _OFF:
        return []
    from rich.console import Console

    console = Console(file=sys.stdout)
    if not console.is_terminal or console.is_dumb_terminal:
        return []
    return [ProgressDisplay(console)]
