"""The Ray executor: requests and what tasks are given, results through Ray's object store,
failures, Ctrl-C, log forwarding, and a real two-process cluster (``ray start --head``).

The flow-level tests (test_flow_*.py) also run on Ray: ``executor_kwargs`` has a "ray" param.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ray_tasks as t
from fluidml import Allocation, Flow, RayExecutor, Requests, TaskSpec
from fluidml.exception import RunConfigError, TaskFailedError, TaskSpecError
from fluidml.storage import FsspecStore, LocalFileStore
from ray_cluster import TESTS_DIR, RayHead, driver_environment

DRIVER = str(Path(TESTS_DIR) / "ray_driver.py")


# ------------------------------------------------------------------------- requests (no Ray needed)

def test_requests_map_to_ray_options():
    requests = Requests(cpus=2, gpus=0.25, memory="1.5GB", custom={"a100": 1}, retries=2)
    assert requests.memory == 1_500_000_000
    assert requests.ray_options() == {"num_cpus": 2, "num_gpus": 0.25, "memory": 1_500_000_000,
                                      "resources": {"a100": 1}}
    assert Requests().ray_options() == {}
    assert Requests(memory="512MiB").memory == 512 * 2**20


@pytest.mark.parametrize("bad, key", [
    ({"gpu": 1}, "gpu"), ({"gpus": -1}, "gpus"), ({"gpus": 1.5}, "gpus"), ({"memory": "lots"}, "memory"),
    ({"custom": {"a100": "one"}}, "custom['a100']"), ({"retries": -1}, "retries"), ({"cpus": True}, "cpus"),
])
def test_bad_requests_name_the_task_and_the_key(bad, key):
    with pytest.raises(TaskSpecError) as info:
        TaskSpec(task=t.report, name="train", requests=bad)
    assert 'Task "train"' in str(info.value) and info.value.key == key and info.value.task_name == "train"


def test_run_requests_must_name_tasks_of_the_flow():
    flow = Flow([TaskSpec(task=t.report)])
    with pytest.raises(RunConfigError, match=r"requests names unknown tasks: \['trian'\]"):
        flow.run(executor="ray", requests={"trian": {"gpus": 1}})
    with pytest.raises(RunConfigError, match='Task "report": unknown request'):
        flow.run(executor="ray", requests={"report": {"gpu": 1}})


def test_executor_choices_are_checked():
    flow = Flow([TaskSpec(task=t.report)])
    with pytest.raises(RunConfigError, match='executor=\'cluster\' is not valid; use "local", "processes", "ray"'):
        flow.run(executor="cluster")
    with pytest.raises(RunConfigError, match="resources= hands one value to each worker process"):
        flow.run(executor="ray", resources=["cuda:0"])
    with pytest.raises(RunConfigError, match="max_retries"):
        RayExecutor(max_retries=-1)


def test_importing_fluidml_does_not_import_ray():
    code = "import sys, fluidml; from fluidml import RayExecutor, Requests; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------- on the session's local runtime


@pytest.mark.ray
def test_tasks_get_what_they_request_and_cuda_sees_only_that(ray_runtime, tmp_path):
    """Two tasks asking for half a GPU share it at the same time; a task asking for a whole GPU
    runs alone; CUDA_VISIBLE_DEVICES lists exactly the task's GPUs (none for CPU-only tasks)."""
    halves = TaskSpec(task=t.report, name="half", config={"tag": [1, 2], "hold": 1.5}, expand="product",
                      requests={"gpus": 0.5, "cpus": 0.5})
    cpu_only = TaskSpec(task=t.report, name="cpu", requests=Requests(cpus=1, memory="100MB"))
    licensed = TaskSpec(task=t.report, name="licensed", requests={"cpus": 0, "custom": {"licence": 2}})
    results = Flow([halves, cpu_only, licensed]).run(executor="ray", results_store=LocalFileStore(str(tmp_path)),
                                                     return_results="all")
    seen = {r.task_unique_name: r.results["seen"] for runs in results.values() for r in runs}
    for name in ("half-1", "half-2"):
        assert seen[name]["resource"].gpus == 0.5 and seen[name]["resource"].gpu_ids == ["0"]
        assert seen[name]["resource"].cpus == 0.5
        assert seen[name]["cuda"] == "0"
    first, second = seen["half-1"], seen["half-2"]
    assert first["started"] < second["ended"] and second["started"] < first["ended"], "halves did not overlap"
    resource = seen["cpu"]["resource"]
    assert isinstance(resource, Allocation) and resource.gpu_ids == [] and resource.memory == 100_000_000
    assert seen["cpu"]["cuda"] == ""
    assert seen["licensed"]["resource"].custom == {"licence": 2.0}


@pytest.mark.ray
def test_run_requests_replace_the_specs_and_whole_gpus_do_not_overlap(ray_runtime):
    spec = TaskSpec(task=t.report, config={"tag": [1, 2], "hold": 0.5}, expand="product", requests={"gpus": 0.5})
    results = Flow([spec]).run(executor="ray", requests={"report": Requests(gpus=1, cpus=0.5)})
    first, second = sorted((r.results["seen"] for r in results["report"]), key=lambda seen: seen["started"])
    assert first["resource"].gpus == second["resource"].gpus == 1.0
    assert second["started"] >= first["ended"] - 0.05


@pytest.mark.ray
def test_in_memory_results_travel_as_object_references(ray_runtime):
    """A large array goes from one Ray task to the next and into run()'s results without being
    copied out of Ray's object store (so it arrives read-only, as Ray hands out arrays)."""
    import numpy as np

    size = 4_000_000  # 32 MB
    make = TaskSpec(task=t.make_array, config={"size": size})
    total = TaskSpec(task=t.array_sum)
    total.requires(make)
    results = Flow([make, total]).run(executor="ray", return_results="all")
    assert results["array_sum"][0].results["summary"] == {"sum": float(size * (size - 1) / 2), "writeable": False}
    array = results["make_array"][0].results["array"]
    assert isinstance(array, np.ndarray) and array.shape == (size,) and array[-1] == size - 1
    assert not array.flags.owndata and not array.flags.writeable  # a view of Ray's shared memory


@pytest.mark.ray
def test_a_task_exception_comes_back_with_its_traceback(ray_runtime):
    with pytest.raises(ValueError, match="exploded on the cluster") as info:
        Flow([TaskSpec(task=t.explode)]).run(executor="ray")
    frames = [(frame.filename, frame.name) for frame in __import__("traceback").extract_tb(info.value.__traceback__)]
    assert (t.__file__, "explode") in frames


@pytest.mark.ray
def test_a_dead_worker_fails_its_task_unless_retries_were_asked_for(ray_runtime, tmp_path):
    spec = TaskSpec(task=t.die_once, config={"marker": str(tmp_path / "first")})
    with pytest.raises(TaskFailedError, match='Task "die_once": its Ray worker process died while running it'):
        Flow([spec]).run(executor="ray")
    retried = TaskSpec(task=t.die_once, config={"marker": str(tmp_path / "second")}, requests={"retries": 1})
    assert Flow([retried]).run(executor="ray")["die_once"][0].results == {"status": "survived"}
    again = TaskSpec(task=t.die_once, config={"marker": str(tmp_path / "third")})
    assert Flow([again]).run(executor=RayExecutor(max_retries=1))["die_once"][0].results == {"status": "survived"}


@pytest.mark.ray
def test_a_request_no_node_can_meet_fails_at_once_instead_of_waiting_forever(ray_runtime, recorder):
    fits = TaskSpec(task=t.report, name="fits", requests={"gpus": 1})
    too_big = TaskSpec(task=t.report, name="too_big", requests={"gpus": 2, "custom": {"tpu": 1}})
    Flow([fits, too_big]).run(executor="ray", exit_on_error=False, observers=[recorder])
    assert recorder.state("fits") == "finished" and recorder.state("too_big") == "failed"
    error = dict(recorder.summary.failures)["too_big"]
    assert "requests {'CPU': 1, 'GPU': 2, 'tpu': 1}, more than any node of the Ray cluster has" in error


@pytest.mark.ray
def test_ray_errors_say_what_happened_to_the_task(ray_runtime):
    """How each way Ray can lose a task is reported (a dead node cannot be staged on one machine
    here, so its error is mapped directly)."""
    from ray import exceptions as rex

    from fluidml.executors.ray import _ray_failure

    task = Flow([TaskSpec(task=t.report, name="train")]).task_graph.nodes["train"]["task"]
    cases = [(rex.NodeDiedError("node 1a2b died"), "the node it ran on left the cluster"),
             (rex.WorkerCrashedError(), "its Ray worker process died while running it"),
             (rex.OutOfMemoryError("memory monitor"), "Ray's memory monitor killed its worker")]
    for error, text in cases:
        state, reported = _ray_failure(task, error)
        assert state.value == "failed" and isinstance(reported, TaskFailedError)
        assert str(reported).startswith(f'Task "train": {text}') and "retries" in str(reported)
        assert reported.task_name == "train"
    state, reported = _ray_failure(task, rex.TaskCancelledError())
    assert state.value == "killed" and isinstance(reported, KeyboardInterrupt)


@pytest.mark.ray
def test_max_in_flight_caps_the_tasks_submitted_at_once(ray_runtime):
    spec = TaskSpec(task=t.report, config={"tag": [1, 2, 3], "hold": 0.3}, expand="product", requests={"cpus": 0})
    results = Flow([spec]).run(executor=RayExecutor(max_in_flight=1))
    spans = sorted((r.results["seen"]["started"], r.results["seen"]["ended"]) for r in results["report"])
    assert all(later[0] >= earlier[1] - 0.05 for earlier, later in zip(spans, spans[1:]))


@pytest.mark.ray
def test_ray_stays_initialized_for_the_next_run(ray_runtime):
    Flow([TaskSpec(task=t.report)]).run(executor="ray")
    assert ray_runtime.is_initialized()


# --------------------------------------------------------------------- drivers in their own process

def _driver(args, home, **popen):
    env = {**driver_environment(home), "COLUMNS": "250"}  # log lines unwrapped
    return subprocess.Popen([sys.executable, DRIVER, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


@pytest.mark.ray
def test_prints_and_logs_of_remote_tasks_reach_the_driver_labelled(ray_home):
    out, _ = _driver(["talk"], ray_home).communicate(timeout=180)
    for word in ("alpha", "beta"):
        label = f"(talk-{1 if word == 'alpha' else 2} pid="
        assert any(label in line and f"printed {word}" in line for line in out.splitlines()), out
        assert any(label in line and f"WARNING ray_tasks: logged {word}" in line for line in out.splitlines()), out


@pytest.mark.ray
def test_ctrl_c_cancels_the_ray_tasks(tmp_path, ray_home):
    marker = tmp_path / "marker"
    driver = _driver(["interrupt", str(marker)], ray_home)
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text() == "started"):
        assert time.monotonic() < deadline and driver.poll() is None, driver.stdout.read()
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=60)
    assert marker.read_text() == "interrupted"
    assert driver.returncode != 0 and "KeyboardInterrupt" in out
    assert 'Task "wait_for_interrupt" was killed' in out or "killed" in out.lower()


@pytest.fixture(scope="module")
def ray_head():
    pytest.importorskip("ray", reason="Ray is not installed here (pip install 'fluidml[ray]')")
    head = RayHead(num_cpus=2)
    try:
        head.wait_ready()
        yield head
    finally:
        head.stop()


@pytest.mark.ray
@pytest.mark.parametrize("client", [False, True], ids=["gcs-address", "ray-client"])
def test_a_grid_search_runs_on_a_separate_cluster(ray_head, tmp_path, ray_home, client):
    """A driver process connects to a head started with `ray start --head` and runs a grid search
    whose results land in a LocalFileStore; a second run finds them all."""
    address = ray_head.client_address if client else ray_head.address
    store = tmp_path / "store"
    for attempt in ("first", "second"):
        out, _ = _driver(["grid", address, str(store)], ray_home).communicate(timeout=240)
        line = next((line for line in out.splitlines() if line.startswith("RESULTS ")), None)
        assert line is not None, out + ray_head.client_server_logs()
        results = json.loads(line[8:])
        assert results["best_score"] == [{"best": {"score": 0.6, "config": {
            "train": {"lr": 0.3, "epochs": 2}}}}], out
        assert sorted(r["metrics"]["score"] for r in results["train"]) == [0.1, 0.2, 0.2, 0.3, 0.4, 0.6]
        assert f"on Ray ({address})" in out and "Ray: 1 node, 2 CPUs." in out, out
        if attempt == "second":
            assert "7 already executed" in out or "(7 already executed)" in out, out
    assert len(list(store.glob("train/grid-*/metrics.*"))) == 6


@pytest.mark.ray
@pytest.mark.s3
def test_a_grid_search_on_a_cluster_keeps_its_results_in_object_storage(ray_head, s3_server, tmp_path, ray_home):
    """The same grid search on the separate cluster, with an FsspecStore on the local S3 server as
    its only shared data plane: the Ray tasks write to the bucket, a second run finds everything."""
    url = f"s3://fluidml-tests/ray-{tmp_path.name}"
    spec = json.dumps({"url": url, "options": s3_server.options()})
    for attempt in ("first", "second"):
        out, _ = _driver(["grid", ray_head.address, spec], ray_home).communicate(timeout=240)
        line = next((line for line in out.splitlines() if line.startswith("RESULTS ")), None)
        assert line is not None, out
        results = json.loads(line[8:])
        assert results["best_score"] == [{"best": {"score": 0.6, "config": {"train": {"lr": 0.3, "epochs": 2}}}}]
        assert sorted(r["metrics"]["score"] for r in results["train"]) == [0.1, 0.2, 0.2, 0.3, 0.4, 0.6]
        if attempt == "second":
            assert "7 already executed" in out or "(7 already executed)" in out, out
    store = FsspecStore(url, **s3_server.options())
    assert sorted(store.task_names()) == ["best_score", "train"]
    runs = list(store.runs("train"))
    assert [run.run_id for run in runs] == [f"grid-{i:03d}" for i in range(6)]
    assert all(run.info["state"] == "finished" and set(run.objects) == {"metrics"} for run in runs)
    assert s3_server.options()["secret"] not in out
