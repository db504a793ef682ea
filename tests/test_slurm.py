"""The Slurm executor against a real single-node cluster (slurm_cluster.py): requests as sbatch
options (checked with ``scontrol show job``), job arrays and logs, failures with Slurm's state and
the log's tail, retries, a job cancelled from outside, Ctrl-C, and a driver stopped and started
again. The flow-level tests (test_flow_*.py) also run on Slurm: ``executor_kwargs`` has a "slurm" param.
"""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import slurm_tasks as t
from conftest import Recorder
from fluidml import Allocation, Flow, Requests, SlurmExecutor, TaskSpec
from fluidml.exception import RunConfigError, TaskFailedError
from fluidml.executors import EXECUTORS, RunSettings, make_executor
from fluidml.executors import _slurm_cli as cli
from fluidml.progress import ProgressDisplay
from fluidml.storage import InMemoryStore, LocalFileStore
from ray_cluster import TESTS_DIR

DRIVER = str(Path(TESTS_DIR) / "slurm_driver.py")


def _settings(store, **kwargs):
    return RunSettings(run_name="r", project_name="p", store=store, num_workers=None, pool_size=lambda: 1, **kwargs)


# ----------------------------------------------------------------------- without a cluster


def test_requests_map_to_sbatch_options():
    requests = Requests(cpus=1.5, gpus=2, memory="100MB", custom={"licence": 2}, retries=1)
    assert cli.request_options("train", requests, "30") == [
        "--time=30", "--cpus-per-task=2", "--gpus=2", "--mem=96M", "--gres=licence:2"]
    assert cli.request_options("train", None, None) == []
    with_timeout = SimpleNamespace(cpus=None, gpus=0, memory=None, custom={}, timeout=125)  # Requests(timeout=) of #11
    assert cli.request_options("train", with_timeout, "30") == ["--time=4"]  # 125 s + 70 s margin, whole minutes


@pytest.mark.parametrize("requests, key", [(Requests(gpus=0.5), "gpus"), (Requests(custom={"licence": 0.5}),
                                                                          "custom['licence']")])
def test_fractions_slurm_cannot_give_are_clear_errors(requests, key):
    with pytest.raises(RunConfigError) as info:
        cli.request_options("train-2", requests, None)
    assert str(info.value).startswith('Task "train-2" requests') and "whole" in str(info.value)
    assert info.value.task_name == "train-2" and info.value.key == key


def test_executor_arguments_are_checked():
    assert SlurmExecutor(time=90).time == "90" and SlurmExecutor(time="1-12:00:00").time == "1-12:00:00"
    with pytest.raises(RunConfigError, match="'soon' is not a Slurm time limit"):
        SlurmExecutor(time="soon")
    with pytest.raises(RunConfigError, match="'output' cannot be set there"):
        SlurmExecutor(sbatch={"output": "x.log"})
    with pytest.raises(RunConfigError, match="list of shell lines"):
        SlurmExecutor(setup="module load cuda")
    with pytest.raises(RunConfigError, match="max_in_flight"):
        SlurmExecutor(max_in_flight=0)
    executor = SlurmExecutor(partition="gpu", account="lab", sbatch={"constraint": "a100", "exclusive": True,
                                                                     "mail_type": None})
    assert executor._options == ["--partition=gpu", "--account=lab", "--constraint=a100", "--exclusive"]


def test_the_in_memory_store_is_a_clear_error():
    with pytest.raises(RunConfigError, match="needs a results store that the cluster's nodes reach") as info:
        Flow([TaskSpec(task=t.report)]).run(executor="slurm")
    assert "InMemoryStore keeps results inside this process only" in str(info.value)
    assert info.value.key == "results_store"


def test_work_dir_defaults_to_the_file_store_and_is_required_otherwise(tmp_path):
    executor = make_executor("slurm", _settings(LocalFileStore(str(tmp_path))))
    assert executor._work_dir == tmp_path / ".fluidml" / "slurm" / "r"
    assert executor._records.directory == tmp_path / ".fluidml" / "slurm" / ".jobs"

    class SharedStore(InMemoryStore):  # stands for a store the nodes reach that has no directory (MongoDB)
        process_safe = True

    with pytest.raises(RunConfigError, match=r"SlurmExecutor\(work_dir=...\) is needed with SharedStore"):
        make_executor("slurm", _settings(SharedStore()))
    executor = make_executor(SlurmExecutor(work_dir=tmp_path / "work"), _settings(SharedStore()))
    assert executor._work_dir == tmp_path / "work" and executor._records.directory == tmp_path / "work" / ".jobs"
    with pytest.raises(RunConfigError, match="resources= hands one value to each worker process"):
        make_executor("slurm", _settings(LocalFileStore(str(tmp_path)), resources=["cuda:0"]))


def test_executors_are_chosen_in_one_registry(tmp_path):
    assert sorted(EXECUTORS) == ["local", "processes", "ray", "slurm"]
    assert type(make_executor("slurm", _settings(LocalFileStore(str(tmp_path))))) is SlurmExecutor
    with pytest.raises(RunConfigError, match='use "local", "processes", "ray", "slurm" or an Executor object'):
        make_executor("cluster", _settings(InMemoryStore()))


def test_importing_fluidml_does_not_import_the_slurm_executor():
    code = "import sys, fluidml; print('fluidml.executors.slurm' in sys.modules); print(fluidml.SlurmExecutor.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "SlurmExecutor"]


def test_a_job_slurm_ended_fails_with_its_state_reason_hint_and_log_tail(tmp_path, monkeypatch):
    from fluidml.executors._slurm_files import JobRecord
    from fluidml.executors._slurm_outcomes import failure

    record = JobRecord("4711_2", str(tmp_path), "train-3", "train-3")
    lines = [f"epoch {i}" for i in range(30)] + ["slurmstepd: *** JOB 4711 ... DUE TO TIME LIMIT ***"]
    record.log_path.write_text("\n".join(lines) + "\n")
    outcome = failure(record, cli.JobState("TIMEOUT", "TimeLimit"), "new config")
    assert outcome.state.value == "failed" and outcome.reason == "new config"
    message = str(outcome.error)
    assert message.startswith('Task "train-3": Slurm job 4711_2 ended TIMEOUT (reason: TimeLimit) before the task '
                              "reported back: it ran past its time limit; raise Requests(timeout=...)")
    assert f"Its log, {record.log_path}, ends with:" in message and "    epoch 29" in message
    assert "epoch 10\n" not in message and "DUE TO TIME LIMIT" in message  # the last 20 lines
    monkeypatch.setattr(cli, "accounting_state", lambda job_id: cli.JobState("CANCELLED by 1000"))
    assert "ended CANCELLED by 1000 before" in str(failure(record, cli.JobState("CANCELLED"), "").error)
    record.log_path.unlink()
    assert f"Its log {record.log_path} is missing." in str(failure(record, None, "").error)


def test_the_progress_display_shows_job_states():
    task = Flow([TaskSpec(task=t.report, config={"tag": [1, 2]}, expand="product")])._tasks
    display = ProgressDisplay()
    display._reset(SimpleNamespace(total=2, run_name="r"))
    for each in task:
        display.task_submitted(each)
    display.task_status(task[0], "PENDING (Priority)")
    display.task_status(task[1], "RUNNING on node3")
    assert display.running_line() == "running: report-1 [PENDING (Priority)], report-2 [RUNNING on node3]"
    assert "0/2 done (0 cached), 1 running, 1 queued, 0 failed" in display.status_line()


# --------------------------------------------------------------------------------- on the cluster


def _store(tmp_path):
    return LocalFileStore(str(tmp_path / "store"))


@pytest.mark.slurm
def test_requests_become_the_jobs_resources(slurm_cluster, tmp_path):
    """cpus, gpus, memory, custom and the time limit reach the job (scontrol show job) and the task
    (task.resource); a task that asked for no GPU sees none."""
    gpu = TaskSpec(task=t.report, name="gpu", requests=Requests(cpus=2, gpus=1, memory="200MB",
                                                                custom={"licence": 2}))
    cpu = TaskSpec(task=t.report, name="cpu")
    results = Flow([gpu, cpu]).run(executor=SlurmExecutor(time=5), results_store=_store(tmp_path),
                                   return_results="all")
    seen = {name: runs[0].results["seen"] for name, runs in results.items()}
    job = slurm_cluster.show_job(seen["gpu"]["job"])
    assert job["NumCPUs"] == "2" and job["MinMemoryNode"] == "191M"  # 200 MB = 190.7 MiB, rounded up
    assert job["TresPerJob"] == "gres:gpu:1" and job["TresPerNode"] == "gres:licence:2"
    assert job["TimeLimit"] == "00:05:00" and job["JobName"] == "gpu" and job["Requeue"] == "0"
    assert seen["gpu"]["resource"] == Allocation(cpus=2, gpus=1, memory=191 * 2**20, custom={"licence": 2.0},
                                                 node_id="fmlnode")
    assert seen["cpu"]["resource"].gpus == 0 and seen["cpu"]["cuda"] == ""
    assert slurm_cluster.show_job(seen["cpu"]["job"])["TimeLimit"] == "00:05:00"


@pytest.mark.slurm
@pytest.mark.mongo
def test_results_travel_through_mongodb_with_a_shared_work_dir(slurm_cluster, mongo_server, tmp_path):
    """With a store that has no directory (MongoDB), the jobs' files go to work_dir; a grid and its
    reduce task run, and the next run finds every result in the database."""
    import pipelines as p
    from fluidml.storage import MongoDBStore
    from mongo_server import mongo_db_name

    def flow():
        source = TaskSpec(task=p.source, config={"value": [1, 2]}, expand="product")
        double = TaskSpec(task=p.double)
        collect = TaskSpec(task=p.collect, reduce=True)
        double.requires(source)
        collect.requires(double)
        return Flow([source, double, collect])

    def store():
        return MongoDBStore(mongo_db_name(tmp_path), host=mongo_server.uri)

    executor = SlurmExecutor(work_dir=tmp_path / "work")
    with store() as first:
        results = flow().run(executor=executor, results_store=first, return_results="latest")
    assert sorted(value for value, _ in results["collect"][0].results["collected"]) == [2, 4]
    logs = {path.name.rsplit("-", 1)[0] for path in (tmp_path / "work").glob("*.out")}
    assert logs == {"source-1", "source-2", "double-1", "double-2", "collect"}
    again = Recorder()
    with store() as second:
        flow().run(executor=executor, results_store=second, observers=[again])
    assert again.executed == [] and len(again.cached) == 5


@pytest.mark.slurm
def test_a_fraction_of_a_gpu_fails_the_task_clearly(slurm_cluster, tmp_path):
    with pytest.raises(RunConfigError, match=r'Task "report" requests gpus=0.5, but Slurm gives whole GPUs only'):
        Flow([TaskSpec(task=t.report)]).run(executor="slurm", results_store=_store(tmp_path),
                                            requests={"report": {"gpus": 0.5}})


@pytest.mark.slurm
def test_a_job_slurm_refuses_fails_its_task_with_slurms_message(slurm_cluster, tmp_path, recorder):
    fits = TaskSpec(task=t.report, name="fits")
    too_big = TaskSpec(task=t.report, name="too_big", requests={"gpus": 5})
    Flow([fits, too_big]).run(executor="slurm", results_store=_store(tmp_path), exit_on_error=False,
                              observers=[recorder])
    assert recorder.state("fits") == "finished" and recorder.state("too_big") == "failed"
    error = dict(recorder.summary.failures)["too_big"]
    assert 'Task "too_big": Slurm did not accept its job: sbatch: error: Batch job submission failed: Requested ' \
           "node configuration is not available" in error


@pytest.mark.slurm
def test_a_task_whose_module_the_nodes_cannot_import_says_so(slurm_cluster, tmp_path, monkeypatch):
    (tmp_path / "private_tasks.py").write_text("def private(task):\n    task.save(1, 'one')\n")
    # importable here, not in the jobs' environment (sys.path[0], the script's directory, goes to the jobs)
    monkeypatch.setattr(sys, "path", [sys.path[0], str(tmp_path), *sys.path[1:]])
    monkeypatch.delitem(sys.modules, "private_tasks", raising=False)
    import private_tasks

    with pytest.raises(ModuleNotFoundError, match="No module named 'private_tasks' in Slurm job .*: the task's code "
                                                  "must be importable on the cluster's nodes"):
        Flow([TaskSpec(task=private_tasks.private)]).run(executor="slurm", results_store=_store(tmp_path))


@pytest.mark.slurm
def test_tasks_of_one_spec_are_one_job_array_with_a_log_per_task(slurm_cluster, tmp_path, recorder):
    spec = TaskSpec(task=t.report, config={"tag": [1, 2, 3], "hold": 2.5}, expand="product")  # (seen running)
    statuses = []

    class Statuses(Recorder):
        def task_status(self, task, status):
            statuses.append((task.unique_name, status))

    results = Flow([spec]).run(executor="slurm", results_store=_store(tmp_path), run_name="arr",
                               return_results="all", observers=[Statuses()])
    jobs = {r.task_unique_name: r.results["seen"]["job"] for r in results["report"]}
    array_ids = {job.split("_")[0] for job in jobs.values()}
    assert len(array_ids) == 1 and sorted(job.split("_")[1] for job in jobs.values()) == ["0", "1", "2"]
    work_dir = tmp_path / "store" / ".fluidml" / "slurm" / "arr"
    for name, job in jobs.items():
        log = (work_dir / f"{name}-{job}.out").read_text()
        assert f'fluidml: job {job} runs task "{name}"' in log and "fluidml: task finished" in log
    assert not list((tmp_path / "store" / ".fluidml" / "slurm" / ".jobs").rglob("*.json"))  # records removed
    assert {name for name, _ in statuses} <= set(jobs) and any("RUNNING on fmlnode" in s for _, s in statuses)


@pytest.mark.slurm
def test_num_workers_caps_the_jobs_in_flight(slurm_cluster, tmp_path):
    spec = TaskSpec(task=t.report, config={"tag": [1, 2], "hold": 0.5}, expand="product")
    results = Flow([spec]).run(executor="slurm", num_workers=1, results_store=_store(tmp_path), return_results="all")
    first, second = sorted((r.results["seen"] for r in results["report"]), key=lambda seen: seen["started"])
    assert "_" not in first["job"] and "_" not in second["job"] and first["job"] != second["job"]  # one at a time
    assert second["started"] >= first["ended"]


@pytest.mark.slurm
def test_squeue_is_asked_once_per_poll_for_all_jobs(slurm_cluster, tmp_path, monkeypatch):
    calls = []
    real = cli.job_states

    def counted(ids):
        ids = list(ids)
        calls.append((time.monotonic(), ids))
        return real(ids)

    monkeypatch.setattr(cli, "job_states", counted)
    a = TaskSpec(task=t.report, name="a", config={"tag": [1, 2], "hold": 1.0}, expand="product")
    b = TaskSpec(task=t.report, name="b", requests={"cpus": 2}, config={"hold": 1.0})
    Flow([a, b]).run(executor="slurm", results_store=_store(tmp_path))
    assert calls and all(len(set(ids)) <= 2 for _, ids in calls)  # the array's id and b's job id
    assert max(len(set(ids)) for _, ids in calls) == 2  # both jobs in one call
    assert all(later[0] - earlier[0] >= 0.99 for earlier, later in zip(calls, calls[1:]))


@pytest.mark.slurm
def test_a_job_that_dies_fails_with_slurms_state_and_its_log_unless_retries_were_asked_for(slurm_cluster, tmp_path):
    spec = TaskSpec(task=t.die_once, config={"marker": str(tmp_path / "first")})
    with pytest.raises(TaskFailedError) as info:
        Flow([spec]).run(executor="slurm", results_store=_store(tmp_path))
    message = str(info.value)
    job = (tmp_path / "first").read_text()
    assert message.startswith(f'Task "die_once": Slurm job {job} ended FAILED (reason: JobLaunchFailure) before '
                              f"the task reported back: its process ended without reporting"), message
    assert "ends with:" in message and "about to die" in message
    retried = TaskSpec(task=t.die_once, config={"marker": str(tmp_path / "second")}, requests={"retries": 1})
    results = Flow([retried]).run(executor="slurm", results_store=_store(tmp_path), return_results="all")
    assert results["die_once"][0].results == {"status": "survived"}


@pytest.mark.slurm
def test_a_failing_setup_line_fails_the_task_with_its_output(slurm_cluster, tmp_path):
    executor = SlurmExecutor(setup=["echo loading the cuda module", "exit 3"])
    with pytest.raises(TaskFailedError, match=r"ended FAILED \(reason: NonZeroExitCode\)") as info:
        Flow([TaskSpec(task=t.report)]).run(executor=executor, results_store=_store(tmp_path))
    assert "loading the cuda module" in str(info.value)


@pytest.mark.slurm
def test_a_job_cancelled_from_outside_fails_with_the_reason_and_runs_again(slurm_cluster, tmp_path, recorder):
    folder = tmp_path / "task"
    folder.mkdir()
    spec = TaskSpec(task=t.wait_for_release, config={"folder": str(folder)})
    store = _store(tmp_path)

    def cancel_when_started():
        deadline = time.monotonic() + 60
        while not (folder / "runs").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        slurm_cluster.run("scancel", (folder / "runs").read_text().split()[0])

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    Flow([spec]).run(executor="slurm", results_store=store, exit_on_error=False, observers=[recorder])
    canceller.join()
    assert recorder.state("wait_for_release") == "failed"
    error = dict(recorder.summary.failures)["wait_for_release"]
    assert "ended CANCELLED before the task reported back: someone cancelled it" in error
    assert (folder / "interrupted").exists()  # the task saw the SIGTERM as KeyboardInterrupt
    (folder / "release").write_text("go")
    again = Recorder()
    Flow([spec]).run(executor="slurm", results_store=store, observers=[again])
    assert again.executed == ["wait_for_release"] and again.state("wait_for_release") == "finished"
    assert len((folder / "runs").read_text().split()) == 2


def _driver(args, cluster, **popen):
    env = {**cluster.env, "COLUMNS": "250", "PYTHONPATH": __import__("os").environ["PYTHONPATH"]}
    return subprocess.Popen([sys.executable, DRIVER, *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **popen)


def _wait_for(condition, driver, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or driver.poll() is not None:
            driver.kill()
            raise AssertionError(f"{what} did not happen:\n{driver.communicate()[0]}")
        time.sleep(0.1)


@pytest.mark.slurm
def test_ctrl_c_cancels_the_runs_jobs(slurm_cluster, tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    driver = _driver(["wait", str(tmp_path / "store"), str(folder)], slurm_cluster)
    _wait_for(lambda: (folder / "runs").exists(), driver, "the job's start")
    job = (folder / "runs").read_text().split()[0]
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=60)
    assert driver.returncode != 0 and "KeyboardInterrupt" in out and f"Slurm: cancelled 1 job(s): {job}" in out
    assert slurm_cluster.job_states()[job] == "CANCELLED"
    assert (folder / "interrupted").read_text() == job  # the task saw KeyboardInterrupt, its finally ran
    info = json.loads(next((tmp_path / "store" / "wait_for_release").glob("*/fluidml_info.json")).read_text())
    assert info["state"] == "killed"
    assert not list((tmp_path / "store" / ".fluidml" / "slurm" / ".jobs").rglob("*.json"))


@pytest.mark.slurm
@pytest.mark.parametrize("signum, queued", [(signal.SIGHUP, True), (signal.SIGKILL, False)],
                         ids=["SIGHUP-queued", "SIGKILL-running"])
def test_a_driver_started_again_waits_for_the_jobs_of_the_stopped_one(slurm_cluster, tmp_path, signum, queued):
    """A driver that loses its session (SIGHUP) or is killed leaves its jobs queued or running; the
    next driver finds them and waits for them instead of submitting them again."""
    folder = tmp_path / "task"
    folder.mkdir()
    store = str(tmp_path / "store")
    first = _driver(["wait", store, str(folder), "hold" if queued else ""], slurm_cluster)
    records = tmp_path / "store" / ".fluidml" / "slurm" / ".jobs"
    _wait_for(lambda: list(records.rglob("*.json")), first, "the job's record")
    job = json.loads(next(records.rglob("*.json")).read_text())["job_id"]
    if not queued:
        _wait_for(lambda: (folder / "runs").exists(), first, "the job's start")
    first.send_signal(signum)
    try:
        first.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        first.kill()
        raise AssertionError(f"the driver did not end on {signum.name}:\n{first.communicate()[0]}") from None
    assert slurm_cluster.job_states()[job] == ("PENDING" if queued else "RUNNING")
    submitted = [job_id for job_id, name, _ in slurm_cluster.jobs() if name == "wait_for_release"]
    second = _driver(["wait", store, str(folder)], slurm_cluster)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(second.stdout))
    reader.start()
    _wait_for(lambda: any("of an earlier driver" in line for line in lines), second, "the re-attachment")
    if queued:
        slurm_cluster.run("scontrol", "release", job)
    (folder / "release").write_text("go")
    second.wait(timeout=120)
    reader.join()
    second.stdout.close()
    out = "".join(lines)
    assert second.returncode == 0, out
    assert f'task "wait_for_release" is job {job} of an earlier driver' in out
    results = json.loads(next(line for line in lines if line.startswith("RESULTS "))[8:])
    assert results["wait_for_release"] == [{"job": job}] and results["after"][0]["after"]["after"] == job
    assert (folder / "runs").read_text().split() == [job]  # it ran once
    assert sorted(job_id for job_id, name, _ in slurm_cluster.jobs() if name == "wait_for_release") == sorted(submitted)
