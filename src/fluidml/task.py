"""Tasks: the ``Task`` base class users subclass, the wrapper for function tasks, and the small
records that describe a task run (``TaskState``, ``TaskInfo``, ``TaskResults``).

A Task in a Flow is created *half-initialized*: only the bookkeeping of ``Task.__init__`` runs at
graph-build time. The user's ``__init__`` runs just before ``run()``, with the task's config as
keyword arguments; its ``super().__init__()`` call is then a no-op, so the bookkeeping survives.
"""

import datetime
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

from fluidml._metadict import MetaDict
from fluidml.config import copy_json, prepared_config
from fluidml.dependency import DependencyMixin
from fluidml.identity import materialize
from fluidml.object_names import RESERVED_RESULT_NAMES, check_object_name
from fluidml.task_info import TaskState, plain_history

if TYPE_CHECKING:  # task_spec.py imports this module; the pydantic models load on first access
    import inspect

    from fluidml._task_models import TaskInfo, TaskResults
    from fluidml.task_spec import TaskSpec

__all__ = [
    "PROTECTED_NAMES", "RESERVED_RESULT_NAMES", "Task", "TaskInfo", "TaskResults", "TaskState", "plain_history",
    "task_for_spec",
]

_T = TypeVar("_T", bound="Task")

class Task(DependencyMixin, ABC):
    """The base class of class tasks; gives access to the run's bookkeeping and the results store.

    Subclass it, take the config as ``__init__`` parameters and predecessor results as ``run()``
    parameters, and ``self.save()`` what successors need::

        class Train(Task):
            def __init__(self, lr: float):
                super().__init__()
                self.lr = lr

            def run(self, features):
                self.save(fit(features, self.lr), "model")
    """

    def __init__(
        self,
        name: Optional[str] = None,
        unique_name: Optional[str] = None,
        project_name: Optional[str] = None,
        run_name: Optional[str] = None,
        state: Optional[TaskState] = None,
        started: Optional[datetime.datetime] = None,
        ended: Optional[datetime.datetime] = None,
        run_history: Optional[Mapping[str, str]] = None,
        sweep_counter: Optional[str] = None,
        unique_config_hash: Optional[str] = None,
        unique_config: Optional[Dict] = None,
        results_store: Optional[Any] = None,
        resource: Optional[Any] = None,
        force: Optional[bool] = None,
        expects: Optional[Dict[str, "inspect.Parameter"]] = None,
        reduce: Optional[bool] = None,
        config: Optional[Dict[str, Any]] = None,
    ):
        if self.__dict__.get("_is_initialized"):
            return  # the user's super().__init__() inside a Flow: keep the bookkeeping
        DependencyMixin.__init__(self)
        self.name = name if name is not None else type(self).__name__
        self.unique_name = unique_name if unique_name is not None else self.name
        self.project_name = project_name
        self.run_name = run_name
        self.state = state
        self.started = started
        self.ended = ended
        self.run_history = run_history
        self.sweep_counter = sweep_counter
        self.unique_config_hash = unique_config_hash
        self.results_store = results_store
        self.resource = resource
        self.force = force
        self.expects = expects
        self.reduce = reduce
        #: A group reducer's keys, as ("Task", "key") pairs; None for other tasks (set by the Flow).
        self.reduce_keys: Optional[Tuple[Tuple[str, str], ...]] = None
        self._reduce_group: Optional[tuple] = None  # a group reducer's ((task, key), value) it keeps
        self._unique_config: Optional[Dict] = None
        self._uc_own: Optional[Dict] = None  # own entry, when the rest comes from the predecessors
        self._meta_unique_config: Optional[MetaDict] = None
        self._config: Dict[str, Any] = {}
        self._extra_kwargs: Dict[str, Any] = {}
        self._meta_config: Optional[MetaDict] = None
        self._spec: Optional["TaskSpec"] = None
        self._requests: Optional[Any] = None  # what the run asks a cluster for (fluidml.Requests)
        self._attempts: Optional[List[Dict[str, Any]]] = None  # earlier attempts of a task that may retry
        if unique_config is not None:
            self.unique_config = unique_config
        if config is not None:
            self.config = config
        self._is_initialized = True

    def __repr__(self) -> str:
        return f"<Task {self.unique_name!r}>"

    @classmethod
    def _blank(cls: Type[_T]) -> _T:
        """A half-initialized instance, as ``Task.__init__`` would leave it but without configs
        (the caller sets ``_config`` and ``_extra_kwargs``), made in one step."""
        task = cls.__new__(cls)
        task.__dict__.update(_BLANK)
        task._predecessors = []
        task._successors = []
        return task

    @abstractmethod
    def run(self, **results: Any) -> None:
        """Implementation of the task's core logic; predecessor results arrive as keyword arguments."""

    # ----------------------------------------------------------------------------------- configs

    @property
    def config(self) -> MetaDict:
        """The task's own config (ignore prefix stripped, additional kwargs merged in)."""
        if self._meta_config is None:
            self._meta_config = MetaDict({**copy_json(self._config), **self._extra_kwargs})
        return self._meta_config

    @config.setter
    def config(self, config: Optional[Dict[str, Any]]) -> None:
        self._config = dict(config or {})
        self._extra_kwargs = {}
        self._meta_config = None

    def _set_configs(self, expanded: Dict[str, Any], spec: Optional["TaskSpec"] = None) -> None:
        spec = spec if spec is not None else self._spec
        assert spec is not None, "a task made without a spec has no config to expand"
        self._config = prepared_config(expanded, spec.config_ignore_prefix)
        self._extra_kwargs = spec.additional_kwargs
        self._meta_config = None

    def _config_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments for the user's ``__init__`` or function: config values as MetaDicts where
        nested, additional kwargs unchanged."""
        config = self._config
        for value in config.values():
            if isinstance(value, (dict, list)):
                # a copy: the task may change what it gets, the run's identity must not change
                config = MetaDict(copy_json(config))
                break
        return {**config, **self._extra_kwargs}

    @property
    def unique_config(self) -> MetaDict:
        """The config that identifies this run: this task's and all its ancestors' relevant configs."""
        if self._meta_unique_config is None:
            self._meta_unique_config = MetaDict(copy_json(self._uc()))  # a copy: it identifies the run
        return self._meta_unique_config

    @unique_config.setter
    def unique_config(self, unique_config: Optional[Dict]) -> None:
        self._unique_config = None if unique_config is None else dict(unique_config)
        self._uc_own = None
        self._meta_unique_config = None

    def _uc(self) -> Dict[str, Any]:
        """The unique config as a plain dict (built from the predecessors' on first use)."""
        if self._unique_config is None:
            if self._uc_own is None:
                return {}
            materialize(self)
        return self._unique_config  # type: ignore[return-value]  # set by _materialize

    def _detached(self: _T, unique_config: Optional[Dict] = None) -> _T:
        """A copy to send to another process: no graph links, its unique config (``unique_config``
        if given, else built) kept, no store (the receiving side sets its own)."""
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(_predecessors=[], _successors=[], _uc_own=None, _meta_unique_config=None,
                             _unique_config=unique_config if unique_config is not None else self._uc(),
                             results_store=None)
        return copy

    def _release_unique_config(self) -> None:
        """Forgets a unique config that can be rebuilt (keeps deep graphs at O(depth) memory)."""
        if self._uc_own is not None:
            self._unique_config = None
            self._meta_unique_config = None

    # ------------------------------------------------------------------------------ bookkeeping

    @property
    def id(self) -> str:
        """The run name with the sweep counter, or with the unique config hash if there is none."""
        suffix = self.sweep_counter if self.sweep_counter is not None else self.unique_config_hash
        return f"{self.run_name}-{suffix}"

    @property
    def duration(self) -> Optional[datetime.timedelta]:
        """The running time of the task (up to now while it runs)."""
        if self.started is None:
            return None
        if self.ended is not None:
            return self.ended - self.started
        if self.state == TaskState.RUNNING:
            return datetime.datetime.now() - self.started
        return None

    @property
    def info(self) -> "TaskInfo":
        """A ``TaskInfo`` snapshot of the task's bookkeeping (empty names before the first run)."""
        from fluidml._task_models import TaskInfo

        return TaskInfo(
            project_name=self.project_name or "",
            run_name=self.run_name or "",
            state=self.state,
            started=self.started,
            ended=self.ended,
            duration=self.duration,
            run_history=plain_history(self.run_history),
            sweep_counter=self.sweep_counter,
            unique_config_hash=self.unique_config_hash,
            id=self.id,
        )

    # ------------------------------------------------------------------------------ store access

    def _store(self) -> Any:
        if self.results_store is None:
            raise RuntimeError(
                f'Task "{self.unique_name}" has no results store: save/load work while the task runs in a '
                f"Flow, or after setting task.results_store."
            )
        return self.results_store

    def _target(self, task_name: Optional[str], task_unique_config: Optional[Dict]) -> tuple:
        name = task_name if task_name is not None else self.name
        if task_unique_config is None:
            task_unique_config = self._uc()
        return name, task_unique_config

    def save(self, obj: Any, name: str, type_: Optional[str] = None, **kwargs: Any) -> None:
        """Saves an object to the results store under ``name`` for this task run."""
        self._check_object_name(name, type_, kwargs.get("sub_dir"))
        store = self._store()
        uc = self._uc()
        store.save(obj, name, type_=type_, task_name=self.name, task_unique_config=uc, **kwargs)
        store._register_result(name, self.name, uc)

    def _check_object_name(self, name: Any, type_: Optional[str], sub_dir: Optional[str]) -> None:
        check_object_name(self.unique_name, name, type_, sub_dir)

    def load(
        self,
        name: str,
        task_name: Optional[str] = None,
        task_unique_config: Optional[Dict] = None,
        **kwargs: Any,
    ) -> Any:
        """Loads an object; by default this run's own. With ``task_name`` (and a unique config), loads
        another task's object: the run whose config matches exactly, else the run of that task whose
        whole config is contained in the given one, e.g. an upstream task's run found with a
        downstream task's config or a Sweep's config. Returns None if there is no such object."""
        target_name, uc = self._target(task_name, task_unique_config)
        store = self._store()
        obj = store.load(name, target_name, uc, **kwargs)
        if obj is None and target_name != self.name:
            match = self._upstream_config(target_name, uc)
            if match is not None and match != uc:
                obj = store.load(name, target_name, match, **kwargs)
        return obj

    def _upstream_config(self, task_name: str, config: Dict) -> Optional[Dict]:
        """The unique config of the ``task_name`` run that ``config`` contains: its entries for that
        task and its ancestors when the task is in this flow, else the store's best match."""
        keys_of = self._spec._uc_keys if self._spec is not None else None
        keys = keys_of.get(task_name) if keys_of is not None else None
        if keys is not None and keys <= config.keys():
            return {key: value for key, value in config.items() if key in keys}
        return self._store().find_unique_config(task_name, config)

    def delete(self, name: str, task_name: Optional[str] = None, task_unique_config: Optional[Dict] = None) -> None:
        """Deletes an object from the results store (and from that run's list of results)."""
        target_name, uc = self._target(task_name, task_unique_config)
        store = self._store()
        store.delete(name, target_name, uc)
        store._unregister_result(name, target_name, uc)

    def delete_run(self, task_name: Optional[str] = None, task_unique_config: Optional[Dict] = None) -> None:
        """Deletes a whole run (this task's by default) from the results store."""
        self._store().delete_run(*self._target(task_name, task_unique_config))

    def get_store_context(self, task_name: Optional[str] = None, task_unique_config: Optional[Dict] = None) -> Any:
        """The store's context for a run, e.g. the run directory of a file store (None in memory)."""
        return self._store().get_context(*self._target(task_name, task_unique_config))

    def open(
        self,
        name: Optional[str] = None,
        task_name: Optional[str] = None,
        task_unique_config: Optional[Dict] = None,
        mode: Optional[str] = None,
        promise: Optional[Any] = None,
        type_: Optional[str] = None,
        sub_dir: Optional[str] = None,
        **open_kwargs: Any,
    ) -> Any:
        """Opens a file-like object in the results store (file stores only; None otherwise).

        Opening for writing (``"w"``/``"a"``) registers ``name`` as a result of the run.
        """
        store = self._store()
        if promise is not None:
            return store.open(promise=promise, mode=mode)
        if mode is not None and ("w" in mode or "a" in mode) and name is not None:
            self._check_object_name(name, type_, sub_dir)
        target_name, uc = self._target(task_name, task_unique_config)
        if mode is not None and ("w" in mode or "a" in mode):
            store._register_result(name, target_name, uc)
        return store.open(name, target_name, uc, mode, type_=type_, sub_dir=sub_dir, **open_kwargs)

    # ---------------------------------------------------------------------------- construction

    @classmethod
    def from_spec(cls, task_spec: "TaskSpec", half_initialize: bool = False) -> "Task":
        """Creates a Task from a TaskSpec.

        With ``half_initialize=True`` a class task's own ``__init__`` is not called yet (the Flow
        calls it right before ``run()``); function tasks are wrapped either way.
        """
        task = task_for_spec(task_spec)
        task._set_configs(task_spec.config, task_spec)
        if not half_initialize:
            task._init_user_task()
        if task_spec.unique_config is not None:
            task.unique_config = task_spec.unique_config
        task.predecessors = list(task_spec.predecessors)
        task.successors = list(task_spec.successors)
        return task

    def _init_user_task(self) -> None:
        """Runs the user's ``__init__`` with the config (class tasks; function tasks take it in run)."""
        init = type(self).__init__
        if init is not Task.__init__:
            init(self, **self._config_kwargs())


class _FunctionTask(Task):
    """Wraps a plain function: config and predecessor results become its keyword arguments, and a
    ``task`` parameter (if the function has one, or takes ``**kwargs``) receives this object."""

    task: Any  # the function
    _pass_task: bool  # whether it takes a `task` argument

    def run(self, **results: Any) -> Any:
        kwargs = {**results, **self._config_kwargs()}
        if self._pass_task:
            kwargs["task"] = self
        return self.task(**kwargs)

    def _init_user_task(self) -> None:
        return None


def task_for_spec(spec: "TaskSpec") -> Task:
    """A half-initialized task of ``spec`` (the user's ``__init__`` not called yet). The caller sets
    its config; the Flow creates one per expanded task, so this is on the hot path of building."""
    task: Task
    if spec.is_function:
        function_task = _FunctionTask._blank()
        function_task.task = spec.task
        function_task._pass_task = spec._pass_task
        task = function_task
    else:
        task = spec.task._blank()
    task._spec = spec
    task.name = task.unique_name = spec.name
    task.reduce = spec.reduce
    task.expects = spec.expects
    task._extra_kwargs = spec.additional_kwargs
    return task


def _base_attributes() -> Dict[str, Any]:
    probe = _FunctionTask.__new__(_FunctionTask)
    Task.__init__(probe)
    return vars(probe)


_BLANK = {k: v for k, v in _base_attributes().items() if not isinstance(v, (list, dict))}
_BLANK.update(_config=None, _extra_kwargs=None)

#: Names a class task's config keys may not use, as they would shadow Task attributes.
PROTECTED_NAMES = frozenset(
    {n for n in dir(Task) if not n.startswith("__")} | set(_base_attributes()) | {"_pass_task"}
)


_MODELS = frozenset({"TaskInfo", "TaskResults"})


def __getattr__(name: str) -> Any:
    if name in _MODELS:  # pydantic is imported on first access, not by `import fluidml`
        from fluidml import _task_models

        value = getattr(_task_models, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | _MODELS)
