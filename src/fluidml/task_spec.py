"""TaskSpec: what the user declares (a task class or function, its config grid, how to expand it),
and the ``requires()`` / ``required_by()`` dependency mix-in shared with expanded Tasks."""

import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

from fluidml.config import expand_config, prepared_config, to_json_config
from fluidml.dependency import DependencyMixin
from fluidml.exception import TaskNameError, TaskSpecError
from fluidml.identity import relevant_config
from fluidml.task import PROTECTED_NAMES, Task
from fluidml.task_requests import Requests

__all__ = ["DependencyMixin", "TaskSpec"]


def _named_parameters(fn: Any, skip_first: bool) -> Dict[str, inspect.Parameter]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}
    if skip_first and params:
        params = params[1:]
    return {
        p.name: p
        for p in params
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def _accepts_any_keyword(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class TaskSpec(DependencyMixin):
    """Specification of a task: what to run, with which config grid, and how to expand it.

    Args:
        task: A ``Task`` subclass or a plain function.
        config: The task's config (JSON values); lists are grids when ``expand`` is set.
        additional_kwargs: Extra arguments passed to the task unchanged; not part of its identity.
        name: The task name (defaults to the class or function name).
        reduce: ``True`` makes this a reduce task: one task that receives ``List[Sweep]`` of all
            upstream expansions. Config keys (``"seed"``, ``["seed", "fold"]``, ``"Task.key"`` or a
            ``("Task", "key")`` tuple) make a group reducer: one reduce task per combination of the
            other varying upstream values, each receiving the sweeps of its group.
        expand: ``"product"``, ``"zip"`` or a registered custom method; ``None`` uses the config as is.
        config_ignore_prefix: Keys with this prefix do not take part in the unique config.
        config_group_prefix: Marks zip groups inside a product grid, e.g. ``[1, 2, "@x"]``.
        requests: What each run of the task needs on a cluster (``Requests`` or a dict of its
            fields, e.g. ``{"gpus": 0.25}``); used by the Ray executor, ignored by the others.
        version: Pins the version of the task's code by hand (a string, e.g. ``"2"``): it replaces
            the code hash of ``flow.run(cache="code")``, counts with either ``cache`` setting, and
            changing it runs the task and its successors again.
    """

    def __init__(
        self,
        task: Any,
        config: Optional[Dict[str, Any]] = None,
        additional_kwargs: Optional[Dict[str, Any]] = None,
        name: Optional[str] = None,
        reduce: Optional[Union[bool, str, Tuple[str, str], Sequence[Any]]] = None,
        expand: Optional[str] = None,
        config_ignore_prefix: Optional[str] = None,
        config_group_prefix: Optional[str] = None,
        requests: Optional[Any] = None,
        version: Optional[str] = None,
    ):
        super().__init__()
        if inspect.isclass(task):
            if not issubclass(task, Task):
                raise TaskSpecError(
                    f"TaskSpec got the class {task.__qualname__}, which does not subclass fluidml.Task. "
                    f"Subclass Task or pass a plain function.",
                    task_name=name or task.__name__,
                    key="task",
                )
            if inspect.isabstract(task):
                raise TaskSpecError(
                    f"The task class {task.__qualname__} does not implement run(); define "
                    f"run(self, <inputs>) in it.",
                    task_name=name or task.__name__,
                    key="run",
                )
        elif not inspect.isfunction(task):
            raise TaskSpecError(
                f"TaskSpec got {task!r} ({type(task).__name__}); a task is a Task subclass or a plain "
                f"function (def or lambda). Wrap other callables in a function.",
                task_name=name,
                key="task",
            )
        self.task = task
        self.name: str = _check_name(name if name is not None else task.__name__)
        self.unique_name: str = self.name
        #: The config keys a group reducer reduces over, as given (None: not a group reducer).
        self.reduce_keys: Optional[Tuple[ReduceKey, ...]] = _reduce_keys(reduce, self.name)
        if reduce and expand:
            raise TaskSpecError(
                f'Task "{self.name}": a reduce task gathers all expansions and cannot expand itself; '
                f"drop expand= or reduce={reduce!r}.",
                task_name=self.name,
                key="expand",
            )
        if additional_kwargs is not None and not isinstance(additional_kwargs, dict):
            raise TaskSpecError(
                f'Task "{self.name}": additional_kwargs must be a dict, got {type(additional_kwargs).__name__}.',
                task_name=self.name,
                key="additional_kwargs",
            )
        self.config: Dict[str, Any] = to_json_config(config, self.name)
        self.additional_kwargs: Dict[str, Any] = dict(additional_kwargs or {})
        # True for every reducer, group or full (else None or False, as given)
        self.reduce: Optional[bool] = True if self.reduce_keys else cast(Optional[bool], reduce)
        self.requests: Optional[Requests] = Requests.of(requests, self.name)
        self.expand_fn = expand
        self.config_ignore_prefix = config_ignore_prefix
        self.config_group_prefix = config_group_prefix
        self.unique_config: Optional[Dict[str, Any]] = None
        self.expects: Dict[str, inspect.Parameter] = self._compute_expects()
        self._pass_task = self.is_function and (
            "task" in _named_parameters(task, skip_first=False) or _accepts_any_keyword(task)
        )
        self._lazy_inputs: Optional[frozenset] = None  # filled by the runner on first use
        self._uc_keys: Optional[Any] = None  # the flow's task name -> unique config keys (see graph.py)
        self.version: Optional[str] = _check_version(version, self.name)
        self._identity_record: Optional[Dict[str, Any]] = None  # what its runs record (identity.py), set per run

    def __repr__(self) -> str:
        return f"TaskSpec({self.name!r})"

    @property
    def is_function(self) -> bool:
        """True if the task is a plain function rather than a Task subclass."""
        return not inspect.isclass(self.task)

    def _config_keys(self) -> List[str]:
        """The keyword names the task receives from its config (ignore prefix stripped)."""
        return list(prepared_config(self.config, self.config_ignore_prefix)) + list(self.additional_kwargs)

    def _compute_expects(self) -> Dict[str, inspect.Parameter]:
        """The predecessor results this task takes, by ``run()`` (or function) parameter name."""
        if not self.is_function:
            return _named_parameters(self.task.run, skip_first=True)
        excluded = set(self._config_keys()) | {"task"}
        return {n: p for n, p in _named_parameters(self.task, skip_first=False).items() if n not in excluded}

    def validate(self) -> None:
        """Checks the config keys against the task's signature; raises ``TaskSpecError`` naming the key."""
        keys = self._config_keys()
        if self.is_function:
            if "task" in keys:
                raise self._error(
                    'the config key "task" is reserved for the Task object that function tasks receive; '
                    "rename the key.",
                    "task",
                )
            target, callee = self.task, f"{self.task.__qualname__}()"
            accepted = _named_parameters(target, skip_first=False)
        else:
            clash = sorted(set(keys) & PROTECTED_NAMES)
            if clash:
                raise self._error(f"config keys {clash} clash with attributes of fluidml.Task; rename them.", clash[0])
            target, callee = self.task.__init__, f"{self.task.__qualname__}.__init__()"
            if target is Task.__init__:
                if keys:
                    raise self._error(
                        f"{self.task.__qualname__} has no __init__ of its own, so it cannot take the config "
                        f"keys {keys}; define __init__(self, {', '.join(keys)}).",
                        keys[0],
                    )
                return
            accepted = _named_parameters(target, skip_first=True)
            missing = [
                n for n, p in accepted.items()
                if p.default is inspect.Parameter.empty and n not in keys
                and p.kind is not inspect.Parameter.POSITIONAL_ONLY
            ]
            if missing:
                raise self._error(
                    f"{callee} needs {missing}, which the config does not give; add them to config or "
                    f"additional_kwargs, or give them defaults.",
                    missing[0],
                )
        if not _accepts_any_keyword(target):
            unknown = [k for k in keys if k not in accepted]
            if unknown:
                raise self._error(
                    f'config key "{unknown[0]}" is not a parameter of {callee} '
                    f"(parameters: {', '.join(accepted) or 'none'}); fix the key or accept **kwargs.",
                    unknown[0],
                )

    def _error(self, message: str, key: str) -> TaskSpecError:
        return TaskSpecError(f'Task "{self.name}": {message}', task_name=self.name, key=key)

    def expand_configs(self) -> List[Dict[str, Any]]:
        """The expanded configs of this spec, in order."""
        return expand_config(self.config, self.expand_fn, self.config_group_prefix, self.name)

    def expand(self) -> List[Any]:
        """Expands the spec into half-initialized Tasks, one per expanded config.

        Each Task's ``unique_config`` holds only its own relevant config; the Flow adds the
        predecessors' configs when it links the expanded graph.
        """
        tasks = []
        for config in self.expand_configs():
            task = Task.from_spec(self, half_initialize=True)
            task._set_configs(config)
            task.unique_config = relevant_config(config, self.config_ignore_prefix)
            tasks.append(task)
        return tasks


#: A group reducer's key: ``"key"`` / ``"Task.key"``, or ``("Task", "key")``.
ReduceKey = Union[str, Tuple[str, str]]


def _is_pair(value: Any) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(part, str) and part for part in value))


def _reduce_keys(reduce: Any, name: str) -> Optional[Tuple[ReduceKey, ...]]:
    """The keys of a group reducer (``reduce="seed"``, ``["seed", "fold"]``, ``("Task", "key")``),
    checked for their form; None for ``reduce=True``/``False``/``None``. Which upstream key each one
    names is resolved by the Flow (graph.py)."""
    if reduce is None or isinstance(reduce, bool):
        return None
    items = [reduce] if isinstance(reduce, (str, tuple)) else reduce  # (a tuple is one ("Task", "key") pair)
    keys: List[ReduceKey] = []
    if isinstance(items, list):
        for item in items:
            if isinstance(item, str) and item.strip():
                keys.append(item)
            elif _is_pair(item):
                keys.append((item[0], item[1]))
            else:
                keys = []
                break
    if not keys:
        raise TaskSpecError(
            f'Task "{name}": reduce takes True, a config key ("seed" or "Task.seed"), a ("Task", "key") tuple, '
            f'or a list of them (reduce=["seed", "fold"]); got {reduce!r}.',
            task_name=name,
            key="reduce",
        )
    return tuple(dict.fromkeys(keys))
def _check_version(version: Any, name: str) -> Optional[str]:
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, (str, int)) or not str(version).strip():
        raise TaskSpecError(
            f'Task "{name}": version must be a non-empty string such as "2", got {version!r}.',
            task_name=name,
            key="version",
        )
    return str(version)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TaskNameError(f"A task name must be a non-empty string, got {name!r}.", task_name=str(name))
    if "/" in name or "\\" in name or name.startswith("."):
        raise TaskNameError(
            f'Task name "{name}" cannot contain path separators or start with "."; results are stored '
            f"under the task name. Pass name= to TaskSpec.",
            task_name=name,
        )
    return name
