"""What travels with a job to another process: the task without its graph, its spec by number.

A task spec holds the whole grid of its configs, so the specs go to each process once (as a table)
and a job's task refers to its spec by its number in that table (``SpecRef``).
"""

import copy as _copy
import pickle
from typing import Dict, List, Optional, Sequence

from fluidml.executors import _pickling
from fluidml.executors.base import Job
from fluidml.task import Task
from fluidml.task_spec import TaskSpec

__all__ = ["SpecTable", "load_specs", "resolve_specs", "unshippable_kwarg"]


class SpecTable:
    """The task specs of the jobs, sent to each worker once: a spec holds the whole grid of its
    configs, so jobs refer to specs by number instead of carrying them."""

    def __init__(self) -> None:
        self.specs: List[TaskSpec] = []
        self.numbers: Dict[int, int] = {}  # id(spec) -> its number
        self.payload = b""

    def add(self, spec: TaskSpec) -> None:
        """Adds ``spec`` and every spec linked to it (a change re-sends the table)."""
        if id(spec) in self.numbers:
            return
        stack = [spec]
        while stack:
            current = stack.pop()
            if id(current) not in self.numbers:
                self.numbers[id(current)] = len(self.specs)
                self.specs.append(current)
                stack.extend(current.predecessors + current.successors)
        self.payload = _pickling.dumps([self._unlinked(each) for each in self.specs])

    def _unlinked(self, spec: TaskSpec) -> TaskSpec:
        """A shallow copy whose links are numbers (pickling linked specs would recurse along the
        graph, too deep for long chains); ``load_specs`` links them again."""
        copy = _copy.copy(spec)
        copy._predecessors = [_pickling.SpecRef(self.numbers[id(p)]) for p in spec.predecessors]
        copy._successors = [_pickling.SpecRef(self.numbers[id(s)]) for s in spec.successors]
        return copy

    def shippable(self, job: Job) -> Task:
        """The job's task for a worker: without its graph, with copies of its direct neighbours
        (so that ``task.predecessors`` / ``successors`` still tell who they are), and its spec (with
        the neighbours') as a reference into the table."""
        task = self._slim(job.task)
        task._predecessors = [self._slim(p, ref.unique_config) for p, ref in zip(job.task.predecessors,
                                                                                  job.predecessors)]
        task._successors = [self._slim(s) for s in job.task.successors]
        return task

    def _slim(self, task: Task, unique_config: Optional[Dict] = None) -> Task:
        copy = task._detached(unique_config)
        if copy._spec is not None:
            copy._spec = _pickling.SpecRef(self.numbers[id(copy._spec)])  # type: ignore[assignment]
            copy.expects = None  # the spec's, restored by the worker
        return copy


def load_specs(payload: bytes) -> List[TaskSpec]:
    """The spec table sent by ``SpecTable``, linked again."""
    specs: List[TaskSpec] = pickle.loads(payload)
    for spec in specs:
        spec._predecessors = [specs[ref.number] for ref in spec._predecessors]
        spec._successors = [specs[ref.number] for ref in spec._successors]
    return specs


def resolve_specs(task: Task, specs: Sequence[TaskSpec]) -> None:
    """Gives a received task (and its neighbour copies) their specs back from the process's table."""
    for each in (task, *task._predecessors, *task._successors):
        if isinstance(each._spec, _pickling.SpecRef):
            each._spec = specs[each._spec.number]
            each.expects = each._spec.expects


def unshippable_kwarg(task: Task, where: str) -> Optional[str]:
    """If one of the task's ``additional_kwargs`` values cannot be pickled (cloudpickle), an error
    message that names it; else None."""
    for key, value in (task._extra_kwargs or {}).items():
        try:
            _pickling.dumps(value)
        except Exception as exc:
            return (f'Task "{task.unique_name}": its additional_kwargs value "{key}" ({type(value).__name__}) cannot '
                    f"be sent to {where}: {exc}. additional_kwargs travel with each task: pass something picklable, "
                    f"make the object inside the task, or run the flow in this process (num_workers=1).")
    return None
