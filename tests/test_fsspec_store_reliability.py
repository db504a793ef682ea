"""FsspecStore under crashes and concurrent writers, with real subprocesses, on the local S3 server and on
a local path: a run killed with SIGKILL at any point resumes correctly, processes sharing one store lose
and mix up nothing, and two processes making the run of one config at once end with one run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fluidml.storage import FsspecStore
from fsspec_kinds import Raw, store_url

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL)")

#: Kinds other processes reach (memory:// lives in one process).
SHARED = [pytest.param("s3", marks=pytest.mark.s3), "file"]


@pytest.fixture(params=SHARED)
def shared(request, tmp_path):
    """(URL, options as JSON) of a store that subprocesses reach."""
    if request.param == "s3":
        request.getfixturevalue("s3_server")
    url, options = store_url(request.param, tmp_path)
    return url, json.dumps(options)


PREAMBLE = textwrap.dedent('''
    import json, os, signal, sys
    from fluidml import Flow, RunObserver, TaskSpec
    from fluidml.storage import FsspecStore, TypeInfo

    def open_store(cls=FsspecStore):
        return cls(sys.argv[1], **json.loads(sys.argv[2]))

    class Executed(RunObserver):
        names = []
        def task_ended(self, task, outcome, finished, total):
            if not outcome.cached:
                Executed.names.append(task.unique_name)
''')

CRASHING_FLOW = PREAMBLE + textwrap.dedent('''
    def save_then_die(obj, file):
        file.write(obj[: len(obj) // 2])  # several parts of a multipart upload on S3
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of writing the object

    class Store(FsspecStore):
        def __init__(self, url, **options):
            super().__init__(url, **options)
            self.type_registry["dying"] = TypeInfo(save_then_die, lambda file: file.read(), "bin", is_binary=True)

    def produce(task, mode):
        task.save(list(range(1000)), "numbers")
        if mode == "kill-after-save":
            os.kill(os.getpid(), signal.SIGKILL)  # after the object, before fluidml_info
        if mode == "kill-while-saving":
            task.save(b"x" * (40 << 20), "big", type_="dying")
        task.save(b"x" * (20 << 20), "big", type_="pickle")

    def consume(numbers, big, task):
        task.save([len(numbers), len(big)], "sizes", type_="json")

    produce_spec = TaskSpec(task=produce, config={"_mode": sys.argv[3]}, config_ignore_prefix="_")
    consume_spec = TaskSpec(task=consume)
    consume_spec.requires(produce_spec)
    Flow([produce_spec, consume_spec]).run(num_workers=1, run_name="crash", results_store=open_store(Store),
                                           observers=[Executed()])
    print(json.dumps(Executed.names))
''')


def run_script(tmp_path: Path, source: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("mode", ["kill-after-save", "kill-while-saving"])
def test_a_run_killed_before_its_info_is_run_again(tmp_path, shared, mode):
    """SIGKILL after saving an object, or in the middle of a large (multipart) one, leaves a run that is
    not finished and no partial object under any name; the next run executes the task again in the same
    run directory and completes; a third executes nothing."""
    url, options = shared
    killed = run_script(tmp_path, CRASHING_FLOW, url, options, mode)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    raw = Raw(url, json.loads(options))
    store = FsspecStore(url, **json.loads(options))
    assert [k for k in raw.keys("produce") if not k.split("/")[-1].startswith(".~")] == [
        "produce/crash-000/config.json", "produce/crash-000/numbers.p"]
    assert not store.is_finished("produce", {"produce": {}}) and store.load("numbers", "produce", {"produce": {}}) is None
    assert raw.keys("consume") == []
    uploads = _uploads(raw, url)
    if mode == "kill-while-saving" and url.startswith("s3://"):  # its parts are stored, but no object shows
        assert [upload["Key"].rsplit("/", 1)[1] for upload in uploads] == ["big.bin"]

    done = run_script(tmp_path, CRASHING_FLOW, url, options, "normal")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["produce", "consume"]
    assert store.load("sizes", "consume", {"produce": {}, "consume": {}}) == [1000, 20 << 20]
    assert sorted({k.split("/")[1] for k in raw.keys("produce")}) == ["crash-000"]
    again = run_script(tmp_path, CRASHING_FLOW, url, options, "normal")
    assert json.loads(again.stdout.splitlines()[-1]) == []
    store.delete_run("produce", {"produce": {}})  # also drops the parts of uploads a killed process left
    assert raw.keys("produce") == [] and _uploads(raw, url) == []


def _uploads(raw: Raw, url: str) -> list:
    if not url.startswith("s3://"):
        return []
    bucket, key = url[5:].split("/", 1)
    return raw.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key + "/").get("Uploads", [])


CONCURRENT_FLOW = PREAMBLE + textwrap.dedent('''
    from typing import List
    from fluidml.storage import Sweep

    def source(x, task):
        task.save(x, "value")

    def combine(value, y, task):
        task.save(value * 100 + y, "value")

    def total(value: List[Sweep], task):
        task.save(sorted(s.value for s in value), "all", type_="json")

    xs = json.loads(sys.argv[3])
    a = TaskSpec(task=source, config={"x": xs}, expand="product")
    b = TaskSpec(task=combine, config={"y": [1, 2]}, expand="product")
    c = TaskSpec(task=total, reduce=True)
    b.requires(a)
    c.requires(b)
    Flow([a, b, c]).run(num_workers=1, run_name=sys.argv[4], results_store=open_store(), observers=[Executed()])
    print(len(Executed.names))
''')


def test_two_processes_running_flows_on_one_store(tmp_path, shared):
    """Two flows with overlapping grids run at once on one store: every config has exactly one run,
    every object sits in the run of its config, every run is finished; a third run adds only the reducer."""
    url, options = shared
    script = tmp_path / "flow.py"
    script.write_text(CONCURRENT_FLOW)
    procs = [subprocess.Popen([sys.executable, str(script), url, options, json.dumps(xs), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for xs, name in ((list(range(0, 12)), "one"), (list(range(6, 18)), "two"))]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    store = FsspecStore(url, **json.loads(options))
    for task_name, expected in (("source", 18), ("combine", 36), ("total", 2)):
        runs = list(store.runs(task_name))
        configs = {json.dumps(run.unique_config, sort_keys=True) for run in runs}
        assert len(runs) == expected and len(configs) == expected, task_name
        assert all(run.info["state"] == "finished" for run in runs)
        for run in runs:
            config = run.unique_config
            if task_name == "source":
                assert store.load("value", "source", config) == config["source"]["x"]
            elif task_name == "combine":
                assert store.load("value", "combine", config) == config["source"]["x"] * 100 + config["combine"]["y"]
    third = subprocess.run([sys.executable, str(script), url, options, json.dumps(list(range(18))), "three"],
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert third.stdout.strip() == "1"


ALLOCATOR = textwrap.dedent('''
    import json, sys
    from fluidml.storage import FsspecStore
    store = FsspecStore(sys.argv[1], **json.loads(sys.argv[2]))
    store.run_info = {"run_name": "shared"}
    who, count = sys.argv[3], int(sys.argv[4])
    found = {}
    for i in range(count):
        config = {"T": {"i": i}} if who.startswith("same") else {"T": {"who": who, "i": i}}
        found[i] = store.get_context("T", config).sweep_counter
    print(json.dumps(found))
''')


def allocate(tmp_path, url, options, whos, count):
    script = tmp_path / "alloc.py"
    script.write_text(ALLOCATOR)
    procs = [subprocess.Popen([sys.executable, str(script), url, options, who, str(count)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for who in whos]
    try:
        done = [proc.communicate(timeout=300) + (proc.returncode,) for proc in procs]
    finally:
        for proc in procs:  # one that failed or timed out leaves no process behind
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for out, err, returncode in done:
        assert returncode == 0, err
    return [json.loads(out.splitlines()[-1]) for out, _, _ in done]


def test_concurrent_allocations_never_share_a_run(tmp_path, shared):
    """Three processes making runs of one task under one run name get distinct counters (conditional
    creates of config.json)."""
    url, options = shared
    allocate(tmp_path, url, options, ["p", "q", "r"], 30)
    raw = Raw(url, json.loads(options))
    runs = sorted({key.split("/")[1] for key in raw.keys("T")})
    assert runs == [f"shared-{i:03d}" for i in range(90)]
    configs = {json.dumps(json.loads(raw.read(f"T/{run}/config.json")), sort_keys=True) for run in runs}
    assert len(configs) == 90


def test_two_processes_making_the_same_runs_agree_on_one_run_each(tmp_path, shared):
    """Two processes making runs for the same 30 configs at once end with 30 runs: for each config
    both use the run that claimed it first, and the loser's config.json is removed."""
    url, options = shared
    first, second = allocate(tmp_path, url, options, ["same-1", "same-2"], 30)
    assert first == second
    raw = Raw(url, json.loads(options))
    runs = sorted({key.split("/")[1] for key in raw.keys("T")})
    assert runs == sorted(f"shared-{counter}" for counter in first.values()) and len(runs) == 30
    assert len(raw.keys(".fluidml/claims/T")) == 30 and len(raw.keys(".fluidml/index/T")) == 30
