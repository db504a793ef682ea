"""Flow: builds the spec graph and the expanded task graph at construction (every input error is
raised there); ``plan()`` tells what a run would do and why; ``run()`` sets a run up (force, cache,
run name, store, resources) and hands it to the driver with an executor."""

import logging
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Set, Union

from fluidml._run_names import random_run_name
from fluidml.config import copy_json, hashed_config
from fluidml.exception import NoTasksError, RunConfigError, TaskSpecError
from fluidml.graph import (
    build_task_graph, collect_specs, expand_specs, gc_paused, optimal_num_workers
)
from fluidml.identity import Record, identity_records
from fluidml.spec_graph import SpecGraph
from fluidml.task import Task
from fluidml.task_requests import Requests
from fluidml.task_spec import TaskSpec

if TYPE_CHECKING:  # networkx is imported when a graph is built (it is slow to import)
    import networkx as nx

    from fluidml.driver import RunObserver
    from fluidml.executors.base import Executor
    from fluidml.executors.pool import WorkerPool
    from fluidml.planner import PlanEntry
    from fluidml.storage.base import ResultsStore
    from fluidml.task import TaskResults

__all__ = ["Flow"]

logger = logging.getLogger(__name__)

_RUN_NAME = re.compile(r"^[^/\\\x00]+$")
#: The longest file name most file systems allow (bytes), and the longest run name that leaves room
#: for a run directory's "-<NNN>" counter (up to 7 digits).
NAME_MAX = 255
MAX_RUN_NAME_BYTES = NAME_MAX - 8
_CACHE_CHOICES = ("config", "code")


class Flow:
    """Expands task specs into a task graph and runs it.

    Args:
        tasks: The task specs (their unlisted predecessors are added automatically).
        config_ignore_prefix: Default ignore prefix for specs that set none (e.g. ``"_"``): such
            keys are passed to the task but do not identify its results.
        config_group_prefix: Default group prefix for specs that set none (e.g. ``"@"``): lists that
            end in the same ``"@name"`` marker are zipped inside a product grid.

    Attributes:
        task_spec_graph: ``networkx.DiGraph`` of spec names (node attribute ``task``: the TaskSpec).
        task_graph: ``networkx.DiGraph`` of expanded tasks by unique name (node attribute ``task``).
    """

    def __init__(
        self,
        tasks: Union[Sequence[TaskSpec], TaskSpec],
        config_ignore_prefix: Optional[str] = None,
        config_group_prefix: Optional[str] = None,
    ):
        if isinstance(tasks, TaskSpec):
            tasks = [tasks]
        if not tasks:
            raise NoTasksError("Flow needs at least one TaskSpec; it was given none.")
        specs = collect_specs(list(tasks))
        for spec in specs:
            if spec.config_ignore_prefix is None:
                spec.config_ignore_prefix = config_ignore_prefix
            if spec.config_group_prefix is None:
                spec.config_group_prefix = config_group_prefix
            spec.expects = spec._compute_expects()
            spec._lazy_inputs = None
            spec.validate()
        self._spec_graph = SpecGraph(specs)  # (raises on a cycle)
        with gc_paused():
            self._tasks: List[Task] = expand_specs(self._spec_graph)
        self._task_spec_graph: Optional["nx.DiGraph"] = None
        self._task_graph: Optional["nx.DiGraph"] = None
        self._code_hasher: Optional[Any] = None  # made by the first plan or run with cache="code"

    @property
    def task_spec_graph(self) -> "nx.DiGraph":
        """The spec graph, a ``networkx.DiGraph`` of spec names (built on first access, for views)."""
        if self._task_spec_graph is None:
            self._task_spec_graph = self._spec_graph.to_networkx()
        return self._task_spec_graph

    @property
    def task_graph(self) -> "nx.DiGraph":
        """The expanded task graph (built on first access: it is for introspection and views)."""
        if self._task_graph is None:
            self._task_graph = build_task_graph(self._tasks)
        return self._task_graph

    @property
    def num_tasks(self) -> int:
        """The total number of expanded tasks in the task graph."""
        return len(self._tasks)

    @property
    def optimal_num_workers(self) -> int:
        """The most tasks that can run at once (widest level of the graph), capped by the CPUs."""
        return optimal_num_workers(self._tasks)

    def run(
        self,
        num_workers: Optional[int] = None,
        resources: Optional[Union[Any, List[Any]]] = None,
        start_method: str = "spawn",
        exit_on_error: bool = True,
        log_to_tmux: bool = False,
        max_panes_per_window: int = 4,
        force: Optional[Union[str, List[str]]] = None,
        project_name: str = "uncategorized",
        run_name: Optional[str] = None,
        results_store: Optional["ResultsStore"] = None,
        return_results: Optional[str] = None,
        observers: Sequence["RunObserver"] = (),
        progress: bool = True,
        executor: Optional[Union[str, "Executor", "WorkerPool"]] = None,
        requests: Optional[Dict[str, Any]] = None,
        cache: str = "config",
    ) -> Optional[Dict[str, List["TaskResults"]]]:
        """Runs the expanded task graph and returns its results.

        Tasks whose finished run is already in ``results_store`` are skipped ("already executed").

        Args:
            num_workers: Number of worker processes. ``None`` (or 0) means the useful number for
                the graph (``optimal_num_workers``: its widest level, capped by the CPUs); larger
                values are reduced to it. With 1, tasks run one after another in this process.
            resources: One resource (e.g. a GPU id) or a list of them, one per worker; tasks see
                their worker's as ``task.resource``. Counts that differ from the worker count are
                handed out round robin. Running in this process, every task gets the first one.
            start_method: Multiprocessing start method of the workers (used through a context,
                never set globally).
            exit_on_error: Stop at the first failure and re-raise its error. With ``False``,
                failed tasks' successors are skipped, the rest runs, and nothing is raised.
            log_to_tmux: Show each worker's log in its own pane of a tmux session named
                ``<project_name>--<run_name>``, closed after the run (a warning if tmux is missing).
            max_panes_per_window: tmux panes per window.
            force: ``"all"``, a task name or a list of them; ``"Name+"`` also forces its successors.
            project_name: Recorded in each task's info.
            run_name: Name of this run; a random "adjective-noun" when not given.
            results_store: Where results are stored; a fresh ``InMemoryStore`` when not given.
            return_results: ``"all"`` (every task), ``"latest"`` (tasks without successors) or
                ``None`` (``"latest"`` for in-memory stores, nothing for persistent ones).
            observers: Extra ``RunObserver`` hooks (progress displays, metrics).
            progress: Show a live progress display while stdout is a terminal (never drawn when it
                is not; the environment variable ``FLUIDML_PROGRESS=0`` also turns it off).
            executor: Where tasks run. ``None`` decides by ``num_workers``; ``"local"`` (this
                process), ``"processes"`` (the worker pool), ``"ray"`` (a ``RayExecutor()``: the Ray
                runtime this process is connected to, else ``RAY_ADDRESS``, else a new local one),
                ``"slurm"`` (a ``SlurmExecutor()``: one Slurm job per task), or an executor object
                such as ``RayExecutor(address="ray://head:10001")``. With Ray and Slurm,
                ``num_workers`` (if given) caps the tasks in flight. A ``fluidml.WorkerPool`` runs
                on its warm workers (``num_workers``/``resources``, if given, must match the pool's).
            requests: What tasks need on a cluster, by task name (``Requests`` or a dict such as
                ``{"train": {"gpus": 0.25}}``); replaces the specs' own ``requests`` for this run.
            cache: ``"config"``: a task's stored run is reused when its unique config matches (and
                its pinned ``TaskSpec(version=...)``, if any). ``"code"``: its code must match too
                (the code version of the task and of its ancestors; see ``plan()``), else the run
                is made again in place, with everything downstream of it.

        Returns:
            ``{task_name: [TaskResults, ...]}`` or None.
        """
        _check_choice("return_results", return_results, ("all", "latest", None))
        _check_choice("cache", cache, _CACHE_CHOICES)
        _check_num_workers(num_workers)
        import multiprocessing  # these here, not at `import fluidml`: defining specs needs none of them

        from fluidml.driver import RunSummary, describe_store, drive
        from fluidml.executors import make_executor
        from fluidml.executors.base import RunSettings
        from fluidml.executors.local import LocalExecutor
        from fluidml.logging import LoggingObserver
        from fluidml.progress import progress_observers
        from fluidml.storage.base import ResultsStore
        from fluidml.storage.memory import InMemoryStore

        if start_method not in multiprocessing.get_all_start_methods():
            raise RunConfigError(
                f"start_method={start_method!r} is not available here; use one of "
                f"{multiprocessing.get_all_start_methods()}.",
                key="start_method",
            )
        if not isinstance(max_panes_per_window, int) or max_panes_per_window < 1:
            raise RunConfigError(f"max_panes_per_window must be a positive int, got {max_panes_per_window!r}.",
                                 key="max_panes_per_window")
        if results_store is not None and not isinstance(results_store, ResultsStore):
            raise RunConfigError(
                f"results_store must be a fluidml.storage.ResultsStore, got {type(results_store).__name__}.",
                key="results_store",
            )
        forced = self._forced_specs(force)
        run_name = _check_run_name(run_name if run_name is not None else random_run_name())
        store = results_store if results_store is not None else InMemoryStore()
        if return_results is None and isinstance(store, InMemoryStore):
            return_results = "latest"
        task_requests = self._task_requests(requests)
        settings = RunSettings(run_name=run_name, project_name=project_name, store=store, num_workers=num_workers,
                               pool_size=lambda: self._num_workers(num_workers), resources=resources,
                               start_method=start_method, max_panes_per_window=max_panes_per_window,
                               tmux_session=f"{project_name}--{run_name}" if log_to_tmux else None)
        executor = make_executor(executor, settings)
        # (other executors set task.resource where the task runs)
        resource = settings.resource_list()[0] if isinstance(executor, LocalExecutor) else None
        for name, record in self._identity_records(cache).items():
            self._spec_graph.specs[name]._identity_record = record  # (travels with the spec)

        for task in self._tasks:
            task.run_name = run_name
            task.project_name = project_name
            task.results_store = store
            task.resource = resource
            task.force = task.name in forced
            task._requests = task_requests.get(task.name, task._spec.requests if task._spec else None)
            task.state = task.started = task.ended = None
            task.run_history = task.sweep_counter = task.unique_config_hash = None

        summary = RunSummary(run_name=run_name, project_name=project_name, total=len(self._tasks),
                             store=describe_store(store), executor=executor.description)
        drive(self._tasks, executor, store, summary, exit_on_error=exit_on_error,
              observers=[LoggingObserver(), *progress_observers(progress), *observers], cache=cache)
        if return_results is None:
            return None
        return self._results(store, latest=return_results == "latest")

    def plan(
        self,
        results_store: Optional["ResultsStore"] = None,
        force: Optional[Union[str, List[str]]] = None,
        cache: str = "config",
    ) -> List["PlanEntry"]:
        """What ``run()`` with the same arguments would do, and why; runs nothing, writes nothing.

        Returns one ``PlanEntry(unique_name, task_name, config_hash, runs, reason)`` per expanded
        task, in task order. ``reason`` is one of: ``"cached"``, ``"new config"``, ``"forced"``,
        ``"failed last time"``, ``"killed last time"``, ``"interrupted last time"`` (its run was
        left running by a driver that died), ``"results missing"``, ``"code changed: <qualnames>"``,
        ``"code version not recorded"`` (``cache="code"``, a run stored without one),
        ``"version <old> → <new>"`` (``TaskSpec(version=...)``; ``none`` where not pinned) and
        ``"upstream runs: <task names>"`` (a predecessor runs for a reason other than ``force``).

        With ``cache="code"``, the first call hashes the code of each task class or function (once
        per Flow). Without a ``results_store`` every task is a ``"new config"``.
        """
        _check_choice("cache", cache, _CACHE_CHOICES)
        from fluidml.planner import PlanEntry, plan_tasks
        from fluidml.storage.base import ResultsStore
        from fluidml.storage.memory import InMemoryStore

        if results_store is not None and not isinstance(results_store, ResultsStore):
            raise RunConfigError(
                f"results_store must be a fluidml.storage.ResultsStore, got {type(results_store).__name__}.",
                key="results_store",
            )
        forced = self._forced_specs(force)
        store = results_store if results_store is not None else InMemoryStore()
        planned = plan_tasks(self._tasks, store, cache, forced, self._identity_records(cache), keep_stored=False)
        return [PlanEntry(task.unique_name, task.name, each.hash, each.runs, each.reason)
                for task, each in zip(self._tasks, planned)]

    def _specs(self) -> List[TaskSpec]:
        """The specs in topological order."""
        return [self._spec_graph.specs[name] for name in self._spec_graph.topological_order()]

    def _identity_records(self, cache: str) -> Dict[str, Record]:
        """Each spec's identity record for ``cache`` (code versions are hashed once per Flow)."""
        if cache != "code":
            return identity_records(self._specs(), None)
        if self._code_hasher is None:
            from fluidml.code_version import CodeHasher  # (ast and inspect: only when asked for)

            self._code_hasher = CodeHasher()
        return identity_records(self._specs(), self._code_hasher.version)

    def _num_workers(self, requested: Optional[int]) -> int:
        """The worker count: the requested one, at most the useful number for the graph (the widest
        level, capped by the CPUs); that number when ``None`` or 0."""
        if not requested:
            return self.optimal_num_workers
        return min(requested, self.optimal_num_workers)

    def _task_requests(self, requests: Optional[Dict[str, Any]]) -> Dict[str, Requests]:
        if requests is None:
            return {}
        if not isinstance(requests, dict):
            raise RunConfigError(f'requests must map task names to Requests, e.g. {{"train": {{"gpus": 1}}}}, '
                                 f"got {type(requests).__name__}.", key="requests")
        unknown = [name for name in requests if name not in self._spec_graph]
        if unknown:
            raise RunConfigError(f"requests names unknown tasks: {unknown}. Known tasks: "
                                 f"{sorted(self._spec_graph)}.", task_name=str(unknown[0]), key="requests")
        try:
            parsed = {name: Requests.of(value, name) for name, value in requests.items()}
            return {name: value for name, value in parsed.items() if value is not None}
        except TaskSpecError as exc:
            raise RunConfigError(str(exc), task_name=exc.task_name, key=exc.key or "requests") from None

    def _forced_specs(self, force: Optional[Union[str, List[str]]]) -> Set[str]:
        if force is None:
            return set()
        if isinstance(force, str):
            items = [force]
        elif isinstance(force, (list, tuple)) and all(isinstance(item, str) for item in force):
            items = list(force)
        else:
            raise RunConfigError(f'force takes "all", a task name or a list of task names, got {force!r}.',
                                 key="force")
        if "all" in items:
            if len(items) > 1:
                raise RunConfigError('force="all" cannot be combined with task names.', key="force")
            return set(self._spec_graph)
        forced: Set[str] = set()
        unknown = []
        for item in items:
            name = item[:-1] if item.endswith("+") else item
            if name not in self._spec_graph:
                unknown.append(item)
                continue
            forced.add(name)
            if item.endswith("+"):
                forced |= self._descendants(name)
        if unknown:
            raise RunConfigError(
                f"force names unknown tasks: {unknown}. Known tasks: {sorted(self._spec_graph)}.",
                task_name=unknown[0],
                key="force",
            )
        return forced

    def _descendants(self, name: str) -> Set[str]:
        return self._spec_graph.descendants(name)

    def _results(self, store: "ResultsStore", latest: bool) -> Dict[str, List["TaskResults"]]:
        from fluidml._task_models import task_results  # (pydantic: imported when results are returned)

        results: Dict[str, List[TaskResults]] = defaultdict(list)
        for task in self._tasks:
            if latest and task.successors:
                continue
            unique_config = hashed_config(task._uc())  # hashed once for all its loads
            results[task.name].append(  # our own values: no validation pass over the configs
                task_results(task.name, task.unique_name, copy_json(unique_config),
                             store.get_results(task.name, unique_config)))
        return results


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise RunConfigError(f"{name}={value!r} is not valid; use one of {list(choices)}.", key=name)


def _check_num_workers(num_workers: Optional[int]) -> None:
    valid = isinstance(num_workers, int) and not isinstance(num_workers, bool) and num_workers >= 0
    if num_workers is not None and not valid:
        raise RunConfigError(f"num_workers must be None or a non-negative int, got {num_workers!r}.",
                             key="num_workers")


def _check_run_name(run_name: Any) -> str:
    if not isinstance(run_name, str) or not _RUN_NAME.match(run_name) or run_name.startswith("."):
        raise RunConfigError(
            f"run_name must be a non-empty string without path separators, got {run_name!r}.", key="run_name"
        )
    if len(run_name.encode("utf-8", "surrogatepass")) > MAX_RUN_NAME_BYTES:
        raise RunConfigError(
            f"run_name is {len(run_name.encode('utf-8', 'surrogatepass'))} bytes long ({run_name[:20]!r}...); file "
            f"stores name run directories <run_name>-<NNN>, and file systems allow {NAME_MAX} bytes per name. Use a "
            f"run name of at most {MAX_RUN_NAME_BYTES} bytes.", key="run_name"
        )
    return run_name
