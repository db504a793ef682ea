"""The Ray side of the Ray executor: what one Ray task does to run one fluidml task.

Imported by Ray worker processes, and by ``executors/ray.py`` (Ray is imported inside the
functions, so ``import fluidml`` never imports it). A Ray worker runs many tasks one
after another, so the spec table and a ``process_safe`` store are fetched from the object store
once per worker and kept. A store that stays in the driver (the in-memory store) is replaced by a
``RayRunStore``: the task's writes go back as the Ray task's second return value, and its reads
of upstream runs resolve the object references of the runs that wrote them.
"""

import logging
import os
import pickle
import sys
import traceback
from collections import OrderedDict
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from fluidml.config import config_digest
from fluidml.executors._shipping import load_specs, resolve_specs
from fluidml.executors.parent_store import apply_writes
from fluidml.executors.worker import pack_outcome
from fluidml.runner import Outcome, run_task
from fluidml.storage.base import ResultsStore, StoreContext
from fluidml.storage.memory import InMemoryStore
from fluidml.task import TaskState
from fluidml.task_requests import Allocation

__all__ = ["RayRunStore", "RunNode", "Upstream", "Write", "replay", "run_remote"]

RunKey = Tuple[str, str]  # (task name, unique-config digest)
Write = Tuple[str, Tuple, Dict[str, Any]]  # (method, arguments, keyword arguments), objects as they are


class Upstream(NamedTuple):
    """How a task reaches one upstream run of a store that stays in the driver: the run's key and
    the references to its writes and to its ``RunNode``."""

    key: RunKey
    writes: Any
    node: Any


class RunNode(NamedTuple):
    """A run of a store that stays in the driver, as a small Ray object: its key and how to reach
    its predecessors' runs. With its writes (a separate object) it is a return value of the task's
    Ray task; successors walk these nodes to any ancestor's run and fetch only that run's writes."""

    key: RunKey
    upstream: List[Upstream]


#: What this worker process fetched from the object store: ref id -> value (specs, stores).
_FETCHED: "OrderedDict[str, Any]" = OrderedDict()
_FETCHED_KEEP = 16


def _fetched(ref_holder: Sequence[Any], load: Callable[[bytes], Any] = pickle.loads) -> Any:
    """The object behind a reference to its pickled bytes, fetched and loaded once per worker
    process (refs come wrapped in a list, so that Ray does not fetch them for every task)."""
    if not ref_holder:
        return None
    ref = ref_holder[0]
    key = ref.hex()
    if key not in _FETCHED:
        import ray

        _FETCHED[key] = load(ray.get(ref))
        while len(_FETCHED) > _FETCHED_KEEP:
            _FETCHED.popitem(last=False)
    return _FETCHED[key]


def replay(writes: Sequence[Write]) -> Dict[RunKey, Dict[str, Any]]:
    """The objects a list of writes leaves behind, by run (a deleted object is absent)."""
    store = InMemoryStore()
    apply_writes(store, list(writes), encoded=False)
    return dict(store._runs)


class RayRunStore(ResultsStore):
    """A Ray task's view of a store that stays in the driver.

    Writes are kept, objects as they are (Ray serializes them once, arrays without copying them
    again), and become the Ray task's second return value. Reads look at this task's own writes,
    then at its ancestors' runs, found by walking the run nodes from its predecessors' (nearest
    first). Runs that are not its ancestors are not reachable from the cluster and read as missing.

    Args:
        upstream: How to reach each predecessor's run.
        own: The task's run key -> its objects already in the store (its registry of results).
        writes: The list to record the writes in.
    """

    keeps_objects = True

    def __init__(self, upstream: List[Upstream], own: Dict[RunKey, Dict[str, Any]], writes: List[Write]):
        super().__init__()
        self._found: Dict[RunKey, Upstream] = {}  # the upstream runs seen so far
        self._frontier: List[Upstream] = []  # those whose node is not read yet, nearest first
        self._add(upstream)
        self._views: Dict[RunKey, Dict[str, Any]] = {key: dict(objects) for key, objects in own.items()}
        self.writes = writes

    def _add(self, upstream: List[Upstream]) -> None:
        for run in upstream:
            if run.key not in self._found:
                self._found[run.key] = run
                self._frontier.append(run)

    def _view(self, key: RunKey) -> Dict[str, Any]:
        view = self._views.get(key)
        if view is None:
            import ray

            while key not in self._found and self._frontier:
                node: RunNode = ray.get(self._frontier.pop(0).node)
                self._add(node.upstream)
            run = self._found.get(key)
            view = self._views[key] = replay(ray.get(run.writes)).get(key, {}) if run is not None else {}
        return view

    def save(self, obj: Any, name: str, type_: Optional[str] = None, task_name: str = "",
             task_unique_config: Optional[Dict] = None, **kwargs: Any) -> None:
        config = task_unique_config or {}
        self._view((task_name, config_digest(config)))[name] = obj
        self.writes.append(("save", (obj, name, task_name, config), {"type_": type_, **kwargs}))

    def load(self, name: str, task_name: str, task_unique_config: Dict, **kwargs: Any) -> Optional[Any]:
        return self._view((task_name, config_digest(task_unique_config))).get(name)

    def delete(self, name: str, task_name: str, task_unique_config: Dict) -> None:
        self._view((task_name, config_digest(task_unique_config))).pop(name, None)
        self.writes.append(("delete", (name, task_name, task_unique_config), {}))

    def delete_run(self, task_name: str, task_unique_config: Dict) -> None:
        self._views[(task_name, config_digest(task_unique_config))] = {}
        self.writes.append(("delete_run", (task_name, task_unique_config), {}))

    def get_context(self, task_name: str, task_unique_config: Dict) -> Optional[StoreContext]:
        return None


def _allocation() -> Allocation:
    import ray

    context = ray.get_runtime_context()
    assigned = dict(context.get_assigned_resources())
    gpu_ids = [str(i) for i in context.get_accelerator_ids().get("GPU", [])]
    memory = assigned.pop("memory", None)
    cpus, gpus = assigned.pop("CPU", 0.0), assigned.pop("GPU", 0.0)
    return Allocation(cpus=cpus, gpus=gpus, gpu_ids=gpu_ids, memory=int(memory) if memory else None,
                      custom=assigned, node_id=context.get_node_id())


class _TaskLogHandler(logging.StreamHandler):
    """Writes the task's log records to the worker's stderr, which Ray forwards to the driver with
    the task's name in front of each line."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def run_remote(payload: bytes, specs_ref: List[Any], store_ref: List[Any], run: Optional[Tuple], log_level: int,
               grace: Optional[float] = None) -> Any:
    """Runs one task in a Ray worker and returns its packed ``Outcome``. For a store that stays in
    the driver, ``run`` is (the task's run key, its objects already stored, its ``Upstream`` runs),
    and the task's writes and ``RunNode`` are returned too. ``grace``: the timeout's grace period
    (after it, a task that ignored its timeout ends this worker process)."""
    allocation = _allocation()
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(allocation.gpu_ids)  # CUDA sees only the task's GPUs
    root = logging.getLogger()
    handler, level = _TaskLogHandler(), root.level
    root.addHandler(handler)
    root.setLevel(log_level)
    writes: List[Write] = []
    try:
        store = _fetched(store_ref) if run is None else RayRunStore(run[2], {run[0]: run[1]}, writes)
        outcome = _run(payload, _fetched(specs_ref, load_specs), store, allocation, grace)
    except BaseException as exc:  # e.g. the task's module is missing here: the task fails, Ray's worker lives on
        state = TaskState.KILLED if isinstance(exc, KeyboardInterrupt) else TaskState.FAILED
        text = traceback.format_exc()
        if isinstance(exc, ModuleNotFoundError):
            exc = ModuleNotFoundError(
                f"{exc} on a Ray worker: the task's code must be importable on every node. Install it there, or "
                f'ship it with ray.init(runtime_env={{"working_dir": "."}}) or RayExecutor(runtime_env=...).',
                name=exc.name)
        outcome = Outcome(state, error=exc, traceback=text)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        root.removeHandler(handler)
        root.setLevel(level)
    packed = pack_outcome(outcome)
    return packed if run is None else (packed, writes, RunNode(run[0], run[2]))


def _run(payload: bytes, specs: Sequence[Any], store: ResultsStore, allocation: Allocation,
         grace: Optional[float]) -> Outcome:
    task, predecessors, reason = pickle.loads(payload)
    resolve_specs(task, specs)
    task.results_store = store
    task.resource = allocation
    try:
        return run_task(task, predecessors, store, reason, in_worker=True, grace=grace)
    except Exception as exc:  # the store failed (e.g. its server went away)
        return Outcome(TaskState.FAILED, reason=reason, error=exc, traceback=traceback.format_exc(),
                       run_name=task.run_name, sweep_counter=task.sweep_counter, run_history=task.run_history)
