"""Shared fixtures: every flow-level test runs against every store and every executor."""

import logging
import os
import shutil
from typing import Any, Callable, Dict, List

import pytest

from fluidml.driver import RunObserver
from fluidml.storage import FsspecStore, InMemoryStore, LocalFileStore, MongoDBStore
from mongo_server import MongoTestServer, mongo_db_name
from ray_cluster import LOCAL_RESOURCES, TESTS_DIR, ray_environment, ray_runtime_env, short_temp_dir
from s3_server import S3TestServer
from slurm_cluster import SlurmCluster, missing_programs

#: The session's MongoDB test server (started by the mongo_server fixture when a test needs it).
MONGO: Dict[str, MongoTestServer] = {}
#: The session's S3 test server (started by the s3_server fixture when a test needs it) and its bucket.
S3: Dict[str, S3TestServer] = {}
S3_BUCKET = "fluidml-tests"


#: Store factories by name; each takes pytest's tmp_path.
STORES: Dict[str, Callable[[Any], Any]] = {
    "memory": lambda tmp_path: InMemoryStore(),
    "file": lambda tmp_path: LocalFileStore(str(tmp_path / "store")),
    "mongo": lambda tmp_path: MongoDBStore(mongo_db_name(tmp_path), host=MONGO["server"].uri),
    "fsspec-memory": lambda tmp_path: FsspecStore(f"memory://fluidml-tests/{mongo_db_name(tmp_path)}"),
    "s3": lambda tmp_path: FsspecStore(f"s3://{S3_BUCKET}/{mongo_db_name(tmp_path)}", **S3["server"].options()),
}
#: Marks of the stores' test params: "mongo" tests need the nx-27017 server (-m "not mongo" skips them),
#: "s3" tests the moto S3 server (-m "not s3").
STORE_MARKS: Dict[str, List[Any]] = {"mongo": [pytest.mark.mongo], "s3": [pytest.mark.s3]}


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory):
    """An nx-27017 MongoDB server on a free 127.0.0.1 port for the whole session, stopped by its PID."""
    with MongoTestServer(tmp_path_factory.mktemp("mongo-server")) as server:
        MONGO["server"] = server
        yield server
        MONGO.clear()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A moto S3 server on a free 127.0.0.1 port for the whole session, with one bucket; stopped by its PID."""
    with S3TestServer(tmp_path_factory.mktemp("s3-server") / "requests.log") as server:
        server.make_bucket(S3_BUCKET)
        S3["server"] = server
        yield server
        S3.clear()


#: Flow.run() keyword arguments that select each executor.
EXECUTORS: Dict[str, Dict[str, Any]] = {
    "local": {"num_workers": 1},
    "pool": {"num_workers": 2},
    "ray": {"executor": "ray"},
    "slurm": {"executor": "slurm"},
}
#: Marks of the executors' test params: "ray" tests need Ray, "slurm" ones a Slurm cluster (-m "not ray" skips them).
EXECUTOR_MARKS: Dict[str, List[Any]] = {"ray": [pytest.mark.ray], "slurm": [pytest.mark.slurm]}
#: The only store the Slurm executor runs the flow-level tests with (its jobs need a shared store;
#: the file store is the one a cluster's shared file system gives).
SLURM_STORE = "file"
#: The flow-level tests that also run on Slurm: caching, force, reduce and failures. Each level of
#: a graph costs a Slurm job's start-up (seconds), so not the whole suite; the others are deselected.
SLURM_FLOW_TESTS = {
    "test_results_flow_to_successors", "test_second_run_is_served_from_the_store",
    "test_a_grown_grid_runs_only_what_is_new", "test_force_reruns_the_named_tasks[file-slurm-add_offset+-expected2]",
    "test_force_applies_to_one_run_only", "test_reduce_receives_every_sweep_with_its_config",
    "test_reduce_over_two_specs_gets_each_sweep_once", "test_a_task_sees_its_own_bookkeeping",
    "test_lambdas_and_local_functions_are_tasks", "test_exit_on_error_reraises_the_task_error_and_stops",
    "test_without_exit_on_error_independent_branches_finish", "test_a_failed_task_runs_again_next_time",
    "test_missing_input_fails_the_task_with_a_clear_error", "test_an_exception_in_init_fails_the_task",
    "test_keyboard_interrupt_kills_the_task_and_stops_the_run",
}


def pytest_collection_modifyitems(config, items):
    """Flow-level tests run on Slurm with the file store only (SLURM_STORE), and only those of
    SLURM_FLOW_TESTS."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        on_slurm = params.get("executor_kwargs") == "slurm"
        chosen = SLURM_STORE == params.get("make_store") and (
            item.name in SLURM_FLOW_TESTS or getattr(item, "originalname", "") in SLURM_FLOW_TESTS)
        (dropped if on_slurm and not chosen else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def slurm_cluster():
    """A single-node Slurm cluster (munged, slurmctld, slurmd as root on 127.0.0.1) for the whole
    session, stopped by PID at the end. Jobs find it through SLURM_CONF, and the tests' task modules
    and this checkout's fluidml through PYTHONPATH (sbatch passes the environment on)."""
    missing = missing_programs()
    if missing:
        pytest.skip(f"a Slurm cluster needs {', '.join(missing)}, missing on this machine")
    src = os.path.join(os.path.dirname(TESTS_DIR), "src")
    python_path = os.pathsep.join([src, TESTS_DIR, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    saved = {key: os.environ.get(key) for key in ("SLURM_CONF", "PYTHONPATH")}
    with SlurmCluster() as cluster:
        os.environ.update(SLURM_CONF=str(cluster.conf), PYTHONPATH=python_path)
        try:
            yield cluster
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="session")
def ray_runtime():
    """A local Ray runtime for the whole session (``LOCAL_RESOURCES``), its files in a temporary
    directory; ``ray.shutdown()`` at the end."""
    ray = pytest.importorskip("ray", reason="Ray is not installed here (pip install 'fluidml[ray]')")
    home = short_temp_dir("fml-ray-")
    saved = {key: os.environ.get(key) for key in ray_environment(home)}
    os.environ.update(ray_environment(home))
    ray.init(include_dashboard=False, _temp_dir=str(home / "tmp"), runtime_env=ray_runtime_env(), **LOCAL_RESOURCES)
    yield ray
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(home, ignore_errors=True)


#: The session fixture of the server each store kind needs.
STORE_SERVERS: Dict[str, str] = {"mongo": "mongo_server", "s3": "s3_server"}


def start_store_server(request, store_kind: str) -> None:
    """Starts (once per session) the test server a store of this kind needs, if any."""
    if store_kind in STORE_SERVERS:
        request.getfixturevalue(STORE_SERVERS[store_kind])


@pytest.fixture(params=[pytest.param(name, marks=STORE_MARKS.get(name, [])) for name in sorted(STORES)])
def make_store(request, tmp_path) -> Callable[[], Any]:
    """A factory of fresh stores of one kind (several calls share the same directory, if any)."""
    start_store_server(request, request.param)
    if request.param == "fsspec-memory":  # memory:// is one dict per process: empty this test's part after it
        request.addfinalizer(lambda: _forget_memory(f"/fluidml-tests/{mongo_db_name(tmp_path)}"))
    return lambda: STORES[request.param](tmp_path)


def _forget_memory(path: str) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    if memory.exists(path):
        memory.rm(path, recursive=True)


@pytest.fixture
def ray_home():
    """A short-pathed temporary directory for a Ray process a test starts (its HOME and files)."""
    home = short_temp_dir("fml-ray-")
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(params=[pytest.param(name, marks=EXECUTOR_MARKS.get(name, [])) for name in sorted(EXECUTORS)])
def executor_kwargs(request) -> Dict[str, Any]:
    """Flow.run() arguments that select one executor."""
    if request.param == "ray":
        request.getfixturevalue("ray_runtime")
    if request.param == "slurm":
        request.getfixturevalue("slurm_cluster")
    return dict(EXECUTORS[request.param])


class Recorder(RunObserver):
    """Records what the driver reported, by unique task name."""

    def __init__(self) -> None:
        self.ended: List[tuple] = []
        self.events: List[tuple] = []  # ("submitted" | "ended", unique name), in order
        self.upstream_failed: List[str] = []
        self.summary = None

    def task_submitted(self, task):
        self.events.append(("submitted", task.unique_name))

    def task_ended(self, task, outcome, finished, total):
        self.ended.append((task.unique_name, outcome.state.value, outcome.cached))
        self.events.append(("ended", task.unique_name))

    def submitted_after(self, name: str) -> List[str]:
        """Tasks handed to the executor after ``name`` ended."""
        position = self.events.index(("ended", name))
        return [n for kind, n in self.events[position:] if kind == "submitted"]

    def task_upstream_failed(self, task, failed):
        self.upstream_failed.append(task.unique_name)

    def run_ended(self, summary):
        self.summary = summary

    @property
    def executed(self) -> List[str]:
        """Tasks that really ran (not found in the store), in completion order."""
        return [name for name, state, cached in self.ended if not cached]

    @property
    def cached(self) -> List[str]:
        """Tasks skipped because the store held a finished run."""
        return [name for name, state, cached in self.ended if cached]

    def state(self, name: str) -> str:
        return self.summary.states[name].value


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """Tests that call configure_logging() must not leak handlers into other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
