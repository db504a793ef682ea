"""Tasks used by the flow-level tests (module-level, so every executor can import them)."""

from typing import List, Optional

from fluidml import Task
from fluidml.storage import Promise, Sweep


def source(value, task):
    """Saves its config value as "x"."""
    task.save(value, "x")


def double(x, task):
    """Saves 2 * x as "y"."""
    task.save(2 * x, "y")


def add_offset(x, offset, task):
    """Saves x + offset as "y"."""
    task.save(x + offset, "y")


def collect(y: List[Sweep], task):
    """Reduce: saves the list of (value, config) pairs it received."""
    task.save([(s.value, dict(s.config)) for s in y], "collected")


def pick_best(y: List[Sweep], task):
    """Reduce: saves the config of the largest value, and loads "x" of the best run's source."""
    best = max(y, key=lambda s: s.value)
    task.save(best.value, "best_value")
    task.save(task.load("x", task_name="source", task_unique_config=best.config), "best_source_x")


def combine(y, z, task):
    """Saves y + z as "total" (two different inputs from two predecessors)."""
    task.save(y + z, "total")


def fail(task, message="boom"):
    """Always raises ValueError."""
    raise ValueError(message)


def interrupt(task):
    """Behaves like a Ctrl-C inside the task."""
    raise KeyboardInterrupt


def needs_missing(nothere, task):
    """Expects an input nobody saves."""
    task.save(nothere, "never")


def with_default(x, task, nothere=42):
    """Keeps the default of an input nobody saves."""
    task.save((x, nothere), "pair")


def lazy_input(x: Promise, task):
    """Declares a lazy input; in memory it arrives as the value itself."""
    task.save(x, "seen")


def optional_lazy(x: Optional[Promise], task):
    """Declares an Optional[Promise] input."""
    task.save(x, "seen")


def no_task_param(value):
    """A function task that does not want the Task object."""
    return value


def echo_attributes(task, value=0):
    """Saves what the task sees of its own bookkeeping."""
    task.save(
        {
            "name": task.name,
            "unique_name": task.unique_name,
            "run_name": task.run_name,
            "project_name": task.project_name,
            "config": dict(task.config),
            "unique_config": dict(task.unique_config),
            "hash": task.unique_config_hash,
            "id": task.id,
            "resource": task.resource,
            "state": task.state.value,
            "started": task.started is not None,
            "force": task.force,
            "predecessors": [p.unique_name for p in task.predecessors],
            "successors": [s.unique_name for s in task.successors],
            "has_store": task.results_store is not None,
        },
        "attributes",
    )


class Scale(Task):
    """A class task: config through __init__, input through run()."""

    def __init__(self, factor: int, extra=None):
        super().__init__()
        self.factor = factor
        self.extra = extra

    def run(self, x):
        self.save(x * self.factor, "y")
        if self.extra is not None:
            self.save(self.extra, "extra")


class BrokenInit(Task):
    """A class task whose __init__ raises."""

    def __init__(self, value):
        super().__init__()
        raise RuntimeError(f"cannot init with {value}")

    def run(self):
        raise AssertionError("run() must not be reached when __init__ fails")


class Counter(Task):
    """Saves how many times run() was called on this object."""

    def run(self):
        self.calls = getattr(self, "calls", 0) + 1
        self.save(self.calls, "calls")
