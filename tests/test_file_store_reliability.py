"""LocalFileStore under crashes and concurrent writers, with real subprocesses: a run killed with SIGKILL
between writing an object and writing its info resumes correctly, and processes sharing one base_dir
lose and mix up nothing."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fluidml.storage import LocalFileStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL)")

CRASHING_FLOW = textwrap.dedent('''
    import json, os, signal, sys
    from fluidml import Flow, RunObserver, TaskSpec
    from fluidml.storage import LocalFileStore, TypeInfo

    def save_then_die(obj, file):
        file.write(obj[: len(obj) // 2])
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of writing the object

    def load_text(file):
        return file.read()

    class Store(LocalFileStore):
        def __init__(self, base_dir):
            super().__init__(base_dir)
            self.type_registry["dying"] = TypeInfo(save_then_die, load_text, "txt")

    def produce(task, mode):
        task.save(list(range(1000)), "numbers")
        if mode == "kill-after-save":
            os.kill(os.getpid(), signal.SIGKILL)  # after the object, before fluidml_info
        if mode == "kill-while-saving":
            task.save("x" * 100000, "text", type_="dying")
        task.save("x" * 100000, "text", type_="text")

    def consume(numbers, text, task):
        task.save([len(numbers), len(text)], "sizes", type_="json")

    class Executed(RunObserver):
        names = []
        def task_ended(self, task, outcome, finished, total):
            if not outcome.cached:
                self.names.append(task.unique_name)

    produce_spec = TaskSpec(task=produce, config={"_mode": sys.argv[2]}, config_ignore_prefix="_")
    consume_spec = TaskSpec(task=consume)
    consume_spec.requires(produce_spec)
    Flow([produce_spec, consume_spec]).run(num_workers=1, run_name="crash", results_store=Store(sys.argv[1]),
                                           observers=[Executed()])
    print(json.dumps(Executed.names))
''')


def run_script(tmp_path: Path, source: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("mode", ["kill-after-save", "kill-while-saving"])
def test_a_run_killed_before_its_info_is_run_again(tmp_path, mode):
    """SIGKILL after saving an object (or while saving one) leaves an unfinished run: nothing of it
    loads as finished or half-written, and the next run executes the task again and completes."""
    base = tmp_path / "store"
    killed = run_script(tmp_path, CRASHING_FLOW, str(base), mode)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = LocalFileStore(str(base))
    config = {"produce": {}}
    run_dir = base / "produce" / "crash-000"
    assert (run_dir / "numbers.p").exists() and not (run_dir / "fluidml_info.json").exists()
    assert not store.is_finished("produce", config)
    assert not (run_dir / "text.txt").exists()  # a torn write is never under the object's name
    if mode == "kill-while-saving":
        [torn] = [name for name in os.listdir(run_dir) if name.endswith("text.txt")]
        assert torn.startswith(".~")
    assert not (base / "consume").exists()

    done = run_script(tmp_path, CRASHING_FLOW, str(base), "normal")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["produce", "consume"]
    assert store.is_finished("produce", config)
    assert store.load("sizes", "consume", {"produce": {}, "consume": {}}) == [1000, 100000]
    assert store.load("text", "produce", config) == "x" * 100000
    assert os.listdir(base / "produce") == ["crash-000"]  # the killed run's directory was reused
    assert [name for name in os.listdir(run_dir) if name.startswith(".~")] == []  # the torn write is gone

    again = run_script(tmp_path, CRASHING_FLOW, str(base), "normal")
    assert json.loads(again.stdout.splitlines()[-1]) == []


CONCURRENT_FLOW = textwrap.dedent('''
    import json, sys, time
    from typing import List
    from fluidml import Flow, RunObserver, TaskSpec
    from fluidml.storage import LocalFileStore, Sweep

    def source(x, task):
        time.sleep(0.002)
        task.save(x, "value")

    def combine(value, y, task):
        task.save(value * 100 + y, "value")

    def total(value: List[Sweep], task):
        task.save(sorted(s.value for s in value), "all", type_="json")

    class Count(RunObserver):
        executed = 0
        def task_ended(self, task, outcome, finished, total):
            Count.executed += not outcome.cached

    xs = json.loads(sys.argv[2])
    a = TaskSpec(task=source, config={"x": xs}, expand="product")
    b = TaskSpec(task=combine, config={"y": [1, 2]}, expand="product")
    c = TaskSpec(task=total, reduce=True)
    b.requires(a)
    c.requires(b)
    Flow([a, b, c]).run(num_workers=1, run_name=sys.argv[3], results_store=LocalFileStore(sys.argv[1]),
                        observers=[Count()])
    print(Count.executed)
''')


def test_two_processes_running_flows_on_one_store(tmp_path):
    """Two flows with overlapping grids run at once on one base_dir: every config has exactly one run
    directory, every object sits in the run of its config, and every run is finished."""
    base = tmp_path / "store"
    script = tmp_path / "flow.py"
    script.write_text(CONCURRENT_FLOW)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(base), json.dumps(xs), name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for xs, name in ((list(range(0, 30)), "one"), (list(range(15, 45)), "two"))
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err

    store = LocalFileStore(str(base))
    for task_name, expected in (("source", 45), ("combine", 90), ("total", 2)):
        configs = []
        for run in sorted((base / task_name).iterdir()):
            config = json.loads((run / "config.json").read_text())
            configs.append(json.dumps(config, sort_keys=True))
            assert json.loads((run / "fluidml_info.json").read_text())["state"] == "finished", run
            if task_name == "source":
                assert store.load("value", "source", config) == config["source"]["x"]
            elif task_name == "combine":
                assert store.load("value", "combine", config) == config["source"]["x"] * 100 + config["combine"]["y"]
        assert len(configs) == expected and len(set(configs)) == expected, task_name

    third = subprocess.run([sys.executable, str(script), str(base), json.dumps(list(range(45))), "three"],
                           capture_output=True, text=True, timeout=180)
    assert third.returncode == 0, third.stderr
    assert third.stdout.strip() == "1"  # only the reducer over all 45 values is new


ALLOCATOR = textwrap.dedent('''
    import sys
    from fluidml.storage import LocalFileStore
    store = LocalFileStore(sys.argv[1])
    store.run_info = {"run_name": "shared"}
    for i in range(int(sys.argv[3])):
        store.get_context("T", {"T": {"who": sys.argv[2], "i": i}})
''')


def test_concurrent_allocations_never_share_a_directory(tmp_path):
    """Three processes creating runs of one task under one run name get distinct counters."""
    base = tmp_path / "store"
    script = tmp_path / "alloc.py"
    script.write_text(ALLOCATOR)
    procs = [subprocess.Popen([sys.executable, str(script), str(base), who, "100"], stderr=subprocess.PIPE, text=True)
             for who in ("p", "q", "r")]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    runs = sorted(os.listdir(base / "T"))
    assert runs == [f"shared-{i:03d}" for i in range(300)]
    configs = {json.dumps(json.loads((base / "T" / run / "config.json").read_text()), sort_keys=True) for run in runs}
    assert len(configs) == 300
    store = LocalFileStore(str(base))
    assert store.get_context("T", {"T": {"who": "q", "i": 99}}).sweep_counter in {r[-3:] for r in runs}
    assert sorted(os.listdir(base / "T")) == runs
