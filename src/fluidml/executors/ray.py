"""The Ray executor: one Ray task per fluidml task, on a local Ray runtime or a cluster.

Our scheduler still decides what may run (a task is submitted once its predecessors finished);
Ray decides where, by each task's ``Requests``. Completions arrive through the futures of the
tasks' object references, so waiting costs nothing per task in flight.

Results: a ``process_safe`` store (``LocalFileStore`` on a shared path, ``MongoDBStore``) goes to
the cluster and carries the data; Ray then carries only the small outcome. Any other store stays
in the driver: a task's writes come back as a second object (arrays are not copied again), the
driver applies them to its store, and successors read them through that object's reference.

Retries are fluidml's, as on every executor (each Ray task runs once: ``max_retries=0``), so that
every attempt is logged, recorded and starts in a cleared run. A task's timeout is enforced inside
its Ray worker (Ray tells the driver nothing when a queued task starts); a worker that ends after
the grace period is reported as ``TaskTimeoutError``.

Ray is imported when the executor starts, never by ``import fluidml``.
"""

import logging
import os
import pickle
import queue
import sys
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

from fluidml import _timeouts
from fluidml.config import config_digest
from fluidml.exception import RunConfigError, TaskFailedError
from fluidml.executors import _pickling
from fluidml.executors._ray_remote import RunNode, Upstream, Write
from fluidml.executors._shipping import SpecTable, unshippable_kwarg
from fluidml.executors.base import Completion, Executor, Job, RunSettings
from fluidml.executors.parent_store import apply_writes
from fluidml.runner import Outcome
from fluidml.storage.base import SAVED_RESULTS, TASK_INFO, ResultsStore
from fluidml.task import Task, TaskState

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)

#: Attempts to connect through Ray Client (``ray://``) before giving up.
CONNECT_ATTEMPTS = 3
#: Seconds running tasks get to end after Ctrl-C (they see KeyboardInterrupt) before they are killed.
INTERRUPT_GRACE = 10.0



def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RunConfigError('executor="ray" needs Ray: pip install "fluidml[ray]".', key="executor") from None
    if "RAY_DEDUP_LOGS" not in os.environ:
        # Ray folds lines that differ only in numbers ("epoch 3 loss 0.2" of eight tasks) into one;
        # each task's lines matter here, so they are all shown unless the user decided otherwise.
        ray_logging = sys.modules.get("ray._private.ray_logging")
        if ray_logging is not None and hasattr(ray_logging, "RAY_DEDUP_LOGS"):
            setattr(ray_logging, "RAY_DEDUP_LOGS", False)
    return ray


class _InFlight:
    """A submitted task: its job, the references to its outcome (and its writes), when it was sent."""

    __slots__ = ("job", "outcome", "writes", "sent")

    def __init__(self, job: Job, outcome: Any, writes: Any):
        self.job = job
        self.outcome = outcome
        self.writes = writes
        self.sent = time.monotonic()


class RayExecutor(Executor):
    """Runs each task as a Ray task, on the Ray runtime this process is connected to.

    Args:
        address: The cluster to connect to when Ray is not initialized yet: ``"auto"`` (a cluster
            started on this machine with ``ray start``), ``"host:6379"`` (the head's GCS), or
            ``"ray://host:10001"`` (Ray Client). ``None``: ``RAY_ADDRESS`` if set, else a new
            local runtime. When Ray is already initialized, that connection is used as it is.
        max_retries: How often a task runs again after a failed attempt when its requests do not
            say (``Requests(retries=...)``): after its worker process or node died, or, with
            ``Requests(retry_on=...)``, after those exceptions. fluidml retries, not Ray.
        max_in_flight: The most tasks submitted to Ray at once (None: every task that is ready;
            Ray queues them until their resources are free).
        **init_kwargs: Passed to ``ray.init()`` when this executor starts Ray, e.g. ``num_cpus=8``.

    Ray stays initialized after the run (later runs reuse it); ``ray.shutdown()`` ends it.
    """

    def __init__(self, address: Optional[str] = None, max_retries: int = 0, max_in_flight: Optional[int] = None,
                 **init_kwargs: Any):
        if not isinstance(max_retries, int) or max_retries < 0:
            raise RunConfigError(f"RayExecutor: max_retries must be a non-negative int, got {max_retries!r}.",
                                 key="max_retries")
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise RunConfigError(f"RayExecutor: max_in_flight must be a positive int, got {max_in_flight!r}.",
                                 key="max_in_flight")
        self.address = address
        self.max_retries = self.default_retries = max_retries
        self.capacity = max_in_flight or sys.maxsize
        self.init_kwargs = init_kwargs
        self.description = f"on Ray ({address or os.environ.get('RAY_ADDRESS') or 'local'})"
        self._ray: Any = None

    # ------------------------------------------------------------------------------ life cycle

    def bind(self, settings: RunSettings) -> None:
        if settings.resources is not None:
            raise RunConfigError(
                "resources= hands one value to each worker process; Ray tasks get what they request instead: "
                'declare requests= on the TaskSpec or in run(requests={"task": {"gpus": 1}}), and read '
                "task.resource inside the task.", key="resources")

    def start(self) -> None:
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            self._connect(ray)
        from fluidml.executors._ray_remote import run_remote

        logger.info("Ray: %s.", _describe_cluster(ray))
        self._remote = ray.remote(run_remote)
        self._done: "queue.Queue[int]" = queue.Queue()
        self._in_flight: Dict[int, _InFlight] = {}
        self._failed: Dict[int, Completion] = {}  # tasks that could not be submitted
        self._specs = SpecTable()
        self._specs_ref: List[Any] = []
        self._specs_count = 0
        self._store_refs: Dict[int, List[Any]] = {}  # id(store) -> [its reference], for process_safe stores
        self._nodes: Dict[int, Upstream] = {}  # id(task) -> how successors reach its run
        self._log_level = logging.getLogger().getEffectiveLevel()
        self._capacities = _node_capacities(ray)

    def _connect(self, ray: Any) -> None:
        """``ray.init()``; a Ray Client connection is tried up to ``CONNECT_ATTEMPTS`` times, as the
        server side of a new client connection sometimes fails to start."""
        where = self.address or os.environ.get("RAY_ADDRESS") or "a new local runtime"
        attempts = CONNECT_ATTEMPTS if where.startswith("ray://") else 1
        for attempt in range(1, attempts + 1):
            try:
                ray.init(address=self.address, **{"include_dashboard": False, **self.init_kwargs})
                return
            except (ConnectionError, RuntimeError, ValueError) as exc:
                if attempt == attempts:
                    raise RunConfigError(f"Could not start or reach Ray at {where}: {exc}", key="executor") from exc
                logger.warning("Connecting to Ray at %s failed (attempt %d of %d), trying again: %s", where, attempt,
                               attempts, str(exc).strip().splitlines()[-1])
                ray.shutdown()
                time.sleep(1.0)

    def shutdown(self) -> None:
        """Forgets the run's object references (Ray frees their objects); Ray itself stays up."""
        self._in_flight = {}
        self._failed = {}
        self._nodes = {}
        self._store_refs = {}
        self._specs_ref = []

    # ------------------------------------------------------------------------------------ jobs

    def submit(self, job: Job) -> None:
        ray, task = self._ray, job.task
        try:
            if task._spec is not None:
                self._specs.add(task._spec)
            if len(self._specs.specs) != self._specs_count:
                self._specs_ref = [ray.put(self._specs.payload)]
                self._specs_count = len(self._specs.specs)
            store_ref = self._store_ref(job.store)
            run: Optional[Tuple] = None
            if not store_ref:  # the store stays here: the task gets its run's objects and its upstream runs
                uc = task._uc()
                registry = job.store.load(SAVED_RESULTS, task.name, uc)
                run = ((task.name, config_digest(uc)), {} if registry is None else {SAVED_RESULTS: registry},
                       [self._node(pred, job.store) for pred in task.predecessors])
            payload = _pickling.dumps((self._specs.shippable(job), job.predecessors, job.reason))
        except Exception as exc:
            self._fail_now(job, TypeError(unshippable_kwarg(task, "Ray") or (
                f'Task "{task.unique_name}" cannot be sent to Ray: {exc}. Its class or function and config must '
                f"be picklable (cloudpickle); run it without executor=\"ray\" otherwise.")))
            return
        options = self._options(task, run is not None)
        unmet = self._unmet(options)
        if unmet:
            self._fail_now(job, RunConfigError(
                f'Task "{task.unique_name}" requests {unmet}, more than any node of the Ray cluster has '
                f"({_describe_cluster(ray)}); Ray would wait for such a node forever. Lower the task's requests or "
                f"add a node that has them (ray start --num-gpus/--resources).", task_name=task.unique_name,
                key="requests"))
            return
        try:
            refs = self._remote.options(**options).remote(payload, self._specs_ref, store_ref, run, self._log_level,
                                                          _timeouts.TIMEOUT_GRACE)
        except Exception as exc:  # e.g. Ray rejects an option
            self._fail_now(job, exc)
            return
        if run is None:
            self._in_flight[job.task_id] = _InFlight(job, refs, None)
        else:
            outcome_ref, writes_ref, node_ref = refs
            self._in_flight[job.task_id] = _InFlight(job, outcome_ref, writes_ref)
            self._nodes[id(task)] = Upstream(run[0], writes_ref, node_ref)
        task_id = job.task_id
        self._in_flight[task_id].outcome.future().add_done_callback(lambda _: self._done.put(task_id))

    def next_completed(self, timeout: Optional[float] = None) -> Optional[Completion]:
        try:
            return self._next(self._done.get(timeout=timeout))
        except queue.Empty:
            return None

    def cancel(self) -> List[Completion]:
        """Ctrl-C: cancels every task in flight (running ones see ``KeyboardInterrupt``), waits a
        little for their reports, then force-kills the rest. Returns every outstanding completion."""
        ray = self._ray
        for flight in self._in_flight.values():
            ray.cancel(flight.outcome)
        completions = []
        deadline = time.monotonic() + INTERRUPT_GRACE
        try:
            while (self._in_flight or self._failed) and time.monotonic() < deadline:
                try:
                    task_id = self._done.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                completions.append(self._next(task_id))
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting
        for task_id, flight in list(self._in_flight.items()):
            ray.cancel(flight.outcome, force=True)
            del self._in_flight[task_id]
            completions.append(self._completion(flight.job, TaskState.KILLED, KeyboardInterrupt()))
        return completions

    # ----------------------------------------------------------------------------------- helpers

    def _options(self, task: Task, with_writes: bool) -> Dict[str, Any]:
        """The Ray options of the task's Ray task: its requests, returns and name (no retries by Ray)."""
        requests = getattr(task, "_requests", None)
        options: Dict[str, Any] = requests.ray_options() if requests is not None else {}
        options.update(max_retries=0, retry_exceptions=False, num_returns=3 if with_writes else 1,
                       name=task.unique_name)  # the name labels the task's printed lines on the driver
        return options

    def _unmet(self, options: Dict[str, Any]) -> Dict[str, float]:
        """What the options ask for that no alive node of the cluster has in all (empty: fine). The
        nodes are read again before deciding, as nodes may have joined."""
        needed = {"CPU": options.get("num_cpus", 1), "GPU": options.get("num_gpus", 0),
                  "memory": options.get("memory", 0), **options.get("resources", {})}
        needed = {name: amount for name, amount in needed.items() if amount}

        def fits(capacities: Optional[List[Dict[str, float]]]) -> bool:
            return capacities is None or any(
                all(node.get(name, 0) >= amount for name, amount in needed.items()) for node in capacities)

        if not needed or fits(self._capacities):
            return {}
        self._capacities = _node_capacities(self._ray)
        return {} if fits(self._capacities) else needed

    def _store_ref(self, store: ResultsStore) -> List[Any]:
        """``[reference]`` to the pickled store when it goes to the cluster, else ``[]``."""
        if not getattr(store, "process_safe", False):
            return []
        ref = self._store_refs.get(id(store))
        if ref is None:
            ref = self._store_refs[id(store)] = [self._ray.put(_pickling.dumps(store))]
        return ref

    def _node(self, task: Task, store: ResultsStore) -> Upstream:
        """How successors reach ``task``'s run. A run this executor did not run (found in the store)
        is put into the object store from the store, with its ancestors', once."""
        stack = [task]
        while stack:
            current = stack[-1]
            missing = [p for p in current.predecessors if id(p) not in self._nodes]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            if id(current) not in self._nodes:
                key, writes = _stored_run(current, store)
                node = RunNode(key, [self._nodes[id(p)] for p in current.predecessors])
                self._nodes[id(current)] = Upstream(key, self._ray.put(writes), self._ray.put(node))
        return self._nodes[id(task)]

    def _collect(self, task_id: int) -> Completion:
        """The completion of a task whose outcome is ready: its outcome, and its writes applied to
        the driver's store."""
        flight = self._in_flight.pop(task_id)
        job = flight.job
        ray = self._ray
        try:
            if flight.writes is None:
                outcome: Outcome = pickle.loads(ray.get(flight.outcome))
            else:
                packed, writes = ray.get([flight.outcome, flight.writes])
                outcome = pickle.loads(packed)
                apply_writes(job.store, writes, encoded=False)
        except Exception as exc:
            state, error = _ray_failure(job.task, exc)
            completion = self._completion(job, state, error)
            if isinstance(error, TaskFailedError):
                limit = job.task._requests.timeout if job.task._requests is not None else None
                if limit is not None and time.monotonic() - flight.sent >= limit + _timeouts.TIMEOUT_GRACE:
                    # its worker ended itself when the task outlived its timeout's grace period
                    timeout = _timeouts.overtime_error(job.task.unique_name, limit, _timeouts.TIMEOUT_GRACE)
                    return self._completion(job, TaskState.FAILED, timeout)
                completion.outcome.lost = True
            return completion
        return Completion(task_id, outcome)

    def _fail_now(self, job: Job, error: BaseException) -> None:
        """Reports a task that could not be submitted, through the same queue as the others."""
        self._failed[job.task_id] = self._completion(job, TaskState.FAILED, error)
        self._done.put(job.task_id)

    def _next(self, task_id: int) -> Completion:
        failed = self._failed.pop(task_id, None)
        return failed if failed is not None else self._collect(task_id)

    def _completion(self, job: Job, state: TaskState, error: BaseException) -> Completion:
        text = "".join(traceback.format_exception_only(type(error), error))
        return Completion(job.task_id, Outcome(state, reason=job.reason, error=error, traceback=text))


def _stored_run(task: Task, store: ResultsStore) -> Tuple[Tuple[str, str], List[Write]]:
    """The key and the objects (and bookkeeping) of a run found in the store, as writes."""
    uc = task._uc()
    objects = store.get_results(task.name, uc) or {}
    for name in (SAVED_RESULTS, TASK_INFO):
        value = store.load(name, task.name, uc)
        if value is not None:
            objects[name] = value
    return (task.name, config_digest(uc)), [("save", (obj, name, task.name, uc), {}) for name, obj in objects.items()]


def _ray_failure(task: Task, exc: BaseException) -> Tuple[TaskState, BaseException]:
    """What a Ray error means for the task: (state, the error to report)."""
    from ray import exceptions as rex

    name = task.unique_name
    if isinstance(exc, rex.TaskCancelledError):
        return TaskState.KILLED, KeyboardInterrupt()
    if isinstance(exc, rex.OutOfMemoryError):
        what = "Ray's memory monitor killed its worker because the node ran out of memory"
    elif isinstance(exc, rex.NodeDiedError):
        what = "the node it ran on left the cluster"
    elif isinstance(exc, rex.WorkerCrashedError):
        what = ("its Ray worker process died while running it (killed, out of memory, or a crash in native "
                "code)")
    else:
        what = f"Ray reported {type(exc).__name__}"
    hint = " Ask for retries with RayExecutor(max_retries=N) or Requests(retries=N)."
    error = TaskFailedError(f'Task "{name}": {what}.{hint}\n{exc}', task_name=name)
    return TaskState.FAILED, error


def _node_capacities(ray: Any) -> Optional[List[Dict[str, float]]]:
    """The total resources of each alive node; None if the nodes cannot be listed (nothing is then
    refused up front)."""
    try:
        return [dict(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")]
    except Exception:
        return None


def _describe_cluster(ray: Any) -> str:
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for key in resources if key.startswith("node:") and key != "node:__internal_head__")
        parts = [f"{nodes} node{'s' if nodes != 1 else ''}", f"{resources.get('CPU', 0):g} CPUs"]
        if resources.get("GPU"):
            parts.append(f"{resources['GPU']:g} GPUs")
        return ", ".join(parts)
    except Exception:
        return "connected"
