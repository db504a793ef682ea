"""Everything about running ONE task, in two steps: ``plan_task`` (the driver, before dispatch,
acting on the planner's decision: the run's context and history) and ``run_task`` (wherever the
executor runs it: input gathering, the user's ``__init__`` and ``run()``, the ``TaskInfo``
bookkeeping).
"""

import contextlib
import datetime
import logging
import os
import re
import traceback
import typing
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence

from fluidml import _timeouts
from fluidml._metadict import MetaDict
from fluidml._provenance import run_extras
from fluidml.config import copy_json
from fluidml.exception import (
    StoredResultDamaged, TaskFailedError, TaskResultKeyAlreadyExists, TaskResultObjectMissing, error_text,
)
from fluidml.identity import run_record
from fluidml.planner import Planned
from fluidml.storage.base import TASK_INFO, LazySweep, Promise, ResultsStore, Sweep
from fluidml.task import Task, TaskState, _FunctionTask
from fluidml.task_info import info_fields, plain_history

__all__ = ["Outcome", "PredecessorRef", "RunHistory", "gather_inputs", "info_record", "plan_task", "reset_run",
           "run_task"]

logger = logging.getLogger(__name__)


class PredecessorRef(NamedTuple):
    """What a task needs to know about one predecessor: where its results are."""

    name: str
    unique_name: str
    unique_config: Dict[str, Any]
    run_history: Optional[Mapping[str, str]]


@dataclass
class Outcome:
    """What a task run reports back to the driver (small, picklable)."""

    state: TaskState
    cached: bool = False
    reason: str = ""
    error: Optional[BaseException] = None
    traceback: Optional[str] = None
    run_name: Optional[str] = None
    sweep_counter: Optional[str] = None
    started: Optional[datetime.datetime] = None
    ended: Optional[datetime.datetime] = None
    run_history: Optional[Mapping[str, str]] = None
    #: The store could not record the task's state: the run stops whatever exit_on_error says.
    store_failed: bool = False
    lost: bool = False  # the worker process or node died under it (always worth another attempt)


_LAZY_TEXT = re.compile(r"\b(Promise|FilePromise|LazySweep)\b")


def _is_lazy(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return bool(_LAZY_TEXT.search(annotation))
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:  # (list[X] is a type in 3.10)
        return issubclass(annotation, (Promise, LazySweep))
    return any(_is_lazy(arg) for arg in typing.get_args(annotation))


def lazy_inputs(task: Task) -> frozenset:
    """The inputs whose annotation asks for lazy values (``Promise``, ``List[LazySweep]``, also as
    ``list[...]``, ``Optional[...]`` or string annotations). Cached on the task's spec."""
    spec = getattr(task, "_spec", None)
    cached = spec._lazy_inputs if spec is not None else None
    if cached is not None:
        return cached
    fn = task.task if isinstance(task, _FunctionTask) else type(task).run
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable string annotations: read the text instead
        hints = {}
    names = frozenset(
        name for name, param in (task.expects or {}).items() if _is_lazy(hints.get(name, param.annotation))
    )
    if spec is not None:
        spec._lazy_inputs = names
    return names


def gather_inputs(task: Task, predecessors: Sequence[PredecessorRef], store: ResultsStore) -> Dict[str, Any]:
    """Collects the task's ``run()`` arguments from its direct predecessors' results.

    A reduce task gets, for each input, the list of ``Sweep`` (or ``LazySweep``) of every
    predecessor that saved it. Raises ``TaskResultKeyAlreadyExists`` when two predecessors of a
    normal task saved the same input and ``TaskResultObjectMissing`` for a missing input without
    a default.
    """
    expects = task.expects or {}
    if not expects:
        return {}
    lazy = lazy_inputs(task)
    inputs: Dict[str, Any] = {}
    if task.reduce:
        configs: Dict[int, MetaDict] = {}
        for name in expects:
            sweeps = []
            for position, pred in enumerate(predecessors):
                value = _load(store, name, pred, name in lazy, task)
                if value is not None:
                    config = configs.get(position)
                    if config is None:  # a copy: the reducer may change it, the run's identity must not
                        config = configs[position] = MetaDict(copy_json(pred.unique_config))
                    sweeps.append(LazySweep(value, config) if isinstance(value, Promise) else Sweep(value, config))
            if sweeps:
                inputs[name] = sweeps
    else:
        source: Dict[str, str] = {}
        for pred in predecessors:
            for name in expects:
                value = _load(store, name, pred, name in lazy, task)
                if value is None:
                    continue
                if name in inputs:
                    raise TaskResultKeyAlreadyExists(
                        f'Task "{task.unique_name}" gets the input "{name}" from two predecessors, '
                        f'"{source[name]}" and "{pred.unique_name}". Save it under different names, or make '
                        f'"{task.name}" a reduce task to receive every one of them.',
                        task_name=task.unique_name,
                        key=name,
                        config_hash=task.unique_config_hash,
                    )
                inputs[name] = value
                source[name] = pred.unique_name
    missing = [n for n, p in expects.items() if n not in inputs and p.default is p.empty]
    if missing:
        preds = ", ".join(f'"{p.unique_name}"' for p in predecessors) or "none"
        raise TaskResultObjectMissing(
            f'Task "{task.unique_name}" expects the input "{missing[0]}", but none of its predecessors '
            f"({preds}) saved an object of that name. Save it in a predecessor with "
            f'task.save(obj, "{missing[0]}"), or give the parameter a default.',
            task_name=task.unique_name,
            key=missing[0],
            config_hash=task.unique_config_hash,
        )
    return inputs


def _load(store: ResultsStore, name: str, pred: PredecessorRef, lazy: bool, task: Task) -> Any:
    try:
        if lazy:
            return store.load(name, pred.name, pred.unique_config, lazy=True)
        return store.load(name, pred.name, pred.unique_config)
    except StoredResultDamaged as error:  # never a default or a shorter list: the task fails
        if hasattr(error, "add_note"):
            error.add_note(f'fluidml: task "{task.unique_name}" loads it as its input "{name}" from '
                           f'"{pred.unique_name}".')
        raise


class RunHistory(Mapping):
    """Task name -> task id, for a task and all its ancestors.

    It keeps its own entry and refers to its predecessors' histories instead of copying them, so
    a chain of n tasks holds n entries, not n**2 / 2. Reading it flattens it: the task's own entry
    first, then each predecessor's history (the first predecessor wins where two disagree). It
    pickles as a plain dict.
    """

    __slots__ = ("_own", "_parents", "_flat")

    def __init__(self, own: Dict[str, str], parents: Sequence[Mapping]):
        self._own = own
        self._parents = tuple(parents)
        self._flat: Optional[Dict[str, str]] = None  # kept once read through the Mapping interface

    def to_dict(self) -> Dict[str, str]:
        """The flattened history as a plain dict."""
        flat: Dict[str, str] = {}
        seen = set()
        stack: List[Mapping] = [self]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue  # a shared ancestor: everything it holds is already in
            seen.add(id(node))
            if isinstance(node, RunHistory):
                for name, task_id in node._own.items():
                    flat.setdefault(name, task_id)
                stack.extend(reversed(node._parents))
            else:
                for name, task_id in node.items():
                    flat.setdefault(name, task_id)
        return flat

    def _mapping(self) -> Dict[str, str]:
        if self._flat is None:
            self._flat = self.to_dict()
        return self._flat

    def __getitem__(self, name: str) -> str:
        return self._mapping()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return repr(self._mapping())

    def __reduce__(self) -> Any:
        return dict, (self.to_dict(),)


def _merged_history(task: Task, predecessors: Sequence[PredecessorRef]) -> RunHistory:
    return RunHistory({task.name: task.id}, [p.run_history for p in predecessors if p.run_history is not None])


def info_record(task: Task, store: ResultsStore, error: Optional[BaseException] = None,
                trace: Optional[str] = None) -> Dict[str, Any]:
    """The task's ``TaskInfo`` as the dict stores keep (``fluidml_info``), with the run's extra data
    under ``"fluidml"`` (``_provenance.run_extras``: unique name, host, pid, worker, version, error;
    the code versions it ran with; ``"attempts"`` for tasks that may be retried, ``error`` being
    this attempt's).

    Built without pydantic (``task_info.info_fields``: the same JSON as the model's dump).
    ``run_history`` stays shared for stores that keep Python objects as they are
    (``store.keeps_objects``); others get a plain dict.
    """
    info = info_fields(task.project_name or "", task.run_name or "", task.state, task.started, task.ended,
                       task.duration, None, task.sweep_counter, task.unique_config_hash, task.id)
    history = task.run_history
    info["run_history"] = history if store.keeps_objects else plain_history(history)
    info["fluidml"] = run_extras(task, error, trace)
    record = run_record(task)  # the code that made the run (see identity.py)
    if record:
        info["fluidml"].update((key, value) for key, value in record.items() if value)
    if task._attempts is not None:
        this_one = attempt_record(len(task._attempts) + 1, error, task.started, task.ended)
        info["fluidml"]["attempts"] = [*task._attempts, this_one]
    return info


def attempt_record(number: int, error: Optional[BaseException], started: Optional[datetime.datetime],
                   ended: Optional[datetime.datetime]) -> Dict[str, Any]:
    """One entry of ``"fluidml"."attempts"``: its number, its error's type and message (None when
    it finished), its start and end (ISO text)."""
    return {"attempt": number, "error_type": type(error).__name__ if error is not None else None,
            "message": str(error)[:2000] if error is not None else None,
            "started": started.isoformat() if started is not None else None,
            "ended": ended.isoformat() if ended is not None else None}


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_traceback(exc: BaseException) -> str:
    """The traceback text of a task's exception from the first frame outside fluidml (all of it if
    the error arose in fluidml itself, e.g. a missing input)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    if tb is None and exc.__traceback__ is not None:
        tb = exc.__traceback__.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def plan_task(task: Task, predecessors: Sequence[PredecessorRef], store: ResultsStore,
              planned: Planned) -> Optional[Outcome]:
    """Acts on the planner's decision for the task, before dispatch; the driver calls it, so workers
    never race.

    A cached task completes from its stored run: the outcome is returned. A task that runs gets its
    run prepared and ``None`` is returned: a stored run is cleared (``delete_run``; the run keeps its run name and counter, so it is re-made
    in place: every attempt starts clean), and the run gets its store context (run directory, sweep
    counter) and its run history. Errors of the store propagate.
    """
    uc = task._uc()
    stored = planned.stored
    if stored is not None:
        task.run_name = stored.get("run_name") or task.run_name
        task.sweep_counter = stored.get("sweep_counter")
        task.run_history = stored.get("run_history")
    if not planned.runs:
        task.state = TaskState.FINISHED
        return Outcome(TaskState.FINISHED, cached=True, reason=planned.reason, run_name=task.run_name,
                       sweep_counter=task.sweep_counter, run_history=task.run_history)
    if stored is not None:  # (a run of several drivers is claimed by the driver before it gets here)
        store.delete_run(task.name, uc)  # every run starts clean
    _open_run(task, store)
    if task.run_history is None:
        task.run_history = _merged_history(task, predecessors)
    return None


def reset_run(task: Task, store: ResultsStore) -> None:
    """Clears what a failed attempt left in the task's run and opens it again (same directory name
    and counter), so that the next attempt starts clean."""
    store.delete_run(task.name, task._uc())
    _open_run(task, store)


def _open_run(task: Task, store: ResultsStore) -> None:
    """Creates the run in the store (a file store names its directory after the run name)."""
    uc = task._uc()
    if hasattr(store, "run_info"):  # a file store names a new run dir after it (the original's run_info)
        from fluidml.task import TaskInfo

        store.run_info = TaskInfo.model_construct(  # what naming needs, without validating our own values
            project_name=task.project_name or "", run_name=task.run_name or "", sweep_counter=task.sweep_counter)
    context = store.get_context(task.name, uc)
    if context is not None:
        task.sweep_counter = context.sweep_counter


def run_task(task: Task, predecessors: Sequence[PredecessorRef], store: ResultsStore, reason: str = "",
             in_worker: bool = False, grace: Optional[float] = None) -> Outcome:
    """Runs one planned task (see ``plan_task``): gathers its inputs, calls the user's ``__init__``
    and ``run()``, and saves its ``TaskInfo``. Executors call it in the process they own.

    Exceptions of the task become a FAILED outcome (KILLED for ``KeyboardInterrupt``; a
    ``SystemExit`` fails the task as a ``TaskFailedError``). A store that fails to record the run
    fails it too, and the outcome says so (``store_failed``): the run stops. A
    ``Requests(timeout=...)`` is enforced around ``__init__`` and ``run()`` (see ``_timeouts``;
    ``in_worker``: this process may be ended by it; ``grace``: seconds between the interrupt and the
    end, default ``TIMEOUT_GRACE``).
    """
    task.started, task.ended = datetime.datetime.now(), None
    error: Optional[BaseException] = None
    trace: Optional[str] = None
    state = TaskState.FINISHED
    limit = task._requests.timeout if task._requests is not None else None
    grace = _timeouts.TIMEOUT_GRACE if grace is None else grace
    try:
        store.begin_attempt(task.name, task._uc())
        inputs = gather_inputs(task, predecessors, store)
        task.state = TaskState.RUNNING
        logger.info('Started task "%s" (%s; config %s)', task.unique_name, reason, task.unique_config_hash)
        if limit is None:
            task._init_user_task()
            task.run(**inputs)
        else:
            with _deadline(task, limit, grace, in_worker):
                task._init_user_task()
                task.run(**inputs)
    except KeyboardInterrupt as exc:
        state, error, trace = TaskState.KILLED, exc, _user_traceback(exc)
    except _timeouts.Overtime as exc:
        assert limit is not None
        error = _timeouts.overtime_error(task.unique_name, limit, grace, "stopped by a second interrupt")
        state, trace = TaskState.FAILED, _user_traceback(error.with_traceback(exc.__traceback__))
    except SystemExit as exc:  # sys.exit() in a task ends the task, not the run's process
        error = TaskFailedError(f'Task "{task.unique_name}" called sys.exit({exc.code!r}); a task ends by returning '
                                f"or by raising an exception, so it failed.", task_name=task.unique_name)
        error.__cause__ = exc
        state, trace = TaskState.FAILED, _user_traceback(exc) + f"\nTaskFailedError: {error}\n"
    except Exception as exc:
        state, error, trace = TaskState.FAILED, exc, _user_traceback(exc)
    task.ended = datetime.datetime.now()
    task.state = state
    store_failed = False
    try:
        store.save(info_record(task, store, error, trace), TASK_INFO, type_="json", task_name=task.name,
                   task_unique_config=task._uc(), indent=4)
    except Exception as exc:  # the store failed (e.g. a full disk, its server went away): the run is not recorded
        store_failed = True
        if error is None:
            state, error, trace = TaskState.FAILED, exc, _user_traceback(exc)
            task.state = state
        elif hasattr(error, "add_note"):  # (a task that failed already keeps its own error)
            error.add_note(f"fluidml: its state could not be recorded: {type(exc).__name__}: {error_text(exc)}")
    return Outcome(state, reason=reason, error=error, traceback=trace, run_name=task.run_name,
                   sweep_counter=task.sweep_counter, started=task.started, ended=task.ended,
                   run_history=task.run_history, store_failed=store_failed)


def _deadline(task: Task, limit: float, grace: float, in_worker: bool) -> Any:
    """The task's timeout around its code, where this thread can be interrupted (else a warning)."""
    if not _timeouts.can_interrupt_here():
        logger.warning('Task "%s": its timeout cannot be enforced in this thread (no SIGALRM here); it runs '
                       "without one.", task.unique_name)
        return contextlib.nullcontext()
    return _timeouts.deadline(task.unique_name, limit, grace, in_worker)
