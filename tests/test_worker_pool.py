"""fluidml.WorkerPool: worker processes kept warm between runs, replaced when a task kills one, gone
after close() and when the calling process ends; new task code runs on the next run."""

import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

import fluidml
from fluidml import Flow, TaskSpec
from fluidml.exception import RunConfigError, TaskFailedError


def record_worker(i, task):
    task.save({"pid": os.getpid(), "resource": task.resource}, "seen")


def die_on_two(i, task):
    if i == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    task.save({"pid": os.getpid(), "resource": task.resource}, "seen")


def seen(results, name="record_worker"):
    """(pid, resource) of each task of ``name``, sorted."""
    return sorted((r.results["seen"]["pid"], r.results["seen"]["resource"]) for r in results[name])


def wide(task, n=6):
    return Flow([TaskSpec(task=task, config={"i": list(range(n))}, expand="product")])


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its parent to reap it counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until_gone(pids, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if not gone(pid)]


def test_the_same_workers_serve_the_second_run(make_store):
    with fluidml.WorkerPool(2) as pool:
        first = seen(wide(record_worker).run(executor=pool, results_store=make_store(), return_results="all",
                                             progress=False))
        second = seen(wide(record_worker).run(executor=pool, results_store=make_store(), return_results="all",
                                              progress=False, force="all"))
        assert {pid for pid, _ in first} <= set(pool.pids)
        assert {pid for pid, _ in second} <= set(pool.pids)
        assert len(pool.pids) == 2 and os.getpid() not in pool.pids


def test_each_worker_keeps_its_resource_across_runs(make_store):
    with fluidml.WorkerPool(2, resources=["gpu-a", "gpu-b"]) as pool:
        expected = dict(zip(pool.pids, ["gpu-a", "gpu-b"]))
        for _ in range(2):
            pairs = seen(wide(record_worker).run(executor=pool, results_store=make_store(), return_results="all",
                                                 progress=False, force="all"))
            assert len(pairs) == 6 and all(expected[pid] == resource for pid, resource in pairs)
        assert dict(zip(pool.pids, ["gpu-a", "gpu-b"])) == expected


def test_a_worker_killed_by_a_task_is_replaced(make_store):
    with fluidml.WorkerPool(2, resources=["r1", "r2"]) as pool:
        before = pool.pids
        recorder_results = wide(die_on_two).run(executor=pool, results_store=make_store(), return_results="all",
                                                exit_on_error=False, progress=False)
        after = pool.pids
        assert len(after) == 2 and len(set(after) - set(before)) == 1  # one new worker, same count
        assert all(not gone(pid) for pid in after)
        finished = [r for r in recorder_results["die_on_two"] if (r.results or {}).get("seen")]
        assert len(finished) == 5  # every other task ran; the killed one failed (as on any pool)
        # the replacement keeps its slot's resource and serves the next run
        pairs = seen(wide(record_worker).run(executor=pool, results_store=make_store(), return_results="all",
                                             progress=False, force="all"))
        assert {pid for pid, _ in pairs} <= set(after)
        assert all(dict(zip(after, ["r1", "r2"]))[pid] == resource for pid, resource in pairs)


def test_the_killed_task_fails_with_the_lost_worker_message():
    with fluidml.WorkerPool(2) as pool:
        with pytest.raises(TaskFailedError, match="was ended by SIGKILL"):
            wide(die_on_two).run(executor=pool, progress=False)
        assert len(pool.pids) == 2
        assert len(seen(wide(record_worker).run(executor=pool, return_results="all", progress=False))) == 6


def test_no_worker_is_left_after_close():
    pool = fluidml.WorkerPool(3)
    wide(record_worker).run(executor=pool, progress=False)
    pids = pool.pids
    assert len(pids) == 3
    pool.close()
    assert [pid for pid in pids if not gone(pid)] == []  # close() waits for them
    pool.close()  # again: nothing happens
    assert pool.closed and pool.pids == []
    with pytest.raises(RunConfigError, match="This WorkerPool is closed; make a new fluidml.WorkerPool"):
        wide(record_worker).run(executor=pool, progress=False)


CALLER = textwrap.dedent("""
    import os, signal, sys
    import fluidml
    from fluidml import Flow, TaskSpec

    def work(i, task):
        task.save(os.getpid(), "pid")

    if __name__ == "__main__":
        pool = fluidml.WorkerPool(2, start_method=sys.argv[2])
        Flow([TaskSpec(task=work, config={"i": [1, 2, 3]}, expand="product")]).run(executor=pool, progress=False)
        print(" ".join(str(pid) for pid in pool.pids), flush=True)
        if sys.argv[1] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        # "exit": the interpreter ends with the pool still open
""")


@pytest.mark.parametrize("ending", ["exit", "kill"])
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_no_worker_is_left_after_the_calling_process_ends(tmp_path, ending, start_method):
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), ending, start_method], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == (-signal.SIGKILL if ending == "kill" else 0), done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2
    assert wait_until_gone(pids) == []


def make_versioned_task(version):
    def versioned(i, task):
        task.save(version, "version")

    return versioned


def test_a_redefined_function_runs_its_new_code():
    """Functions that travel by value (defined in __main__, a notebook, or locally) are shipped with each run."""
    with fluidml.WorkerPool(2) as pool:
        for version in ["v1", "v2"]:
            results = wide(make_versioned_task(version), 2).run(executor=pool, return_results="all", progress=False)
            assert {r.results["version"] for r in results["versioned"]} == {version}


def test_an_edited_module_runs_its_new_code(tmp_path, make_store, monkeypatch):
    """A task defined in a module travels by reference: a worker imports the module afresh when its
    file (or one of the user's modules it imports) changed since the last run."""
    name = f"pool_edited_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**6}"
    (tmp_path / f"{name}_helper.py").write_text("LABEL = 'first'\n")
    module_file = tmp_path / f"{name}.py"
    module_file.write_text(f"from {name}_helper import LABEL\n\ndef edited(i, task):\n    task.save(LABEL, 'label')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    store = make_store()
    try:
        with fluidml.WorkerPool(2) as pool:
            def labels():
                results = wide(sys.modules[name].edited, 4).run(executor=pool, results_store=store,
                                                               return_results="all", progress=False, force="all")
                return {r.results["label"] for r in results["edited"]}

            assert labels() == {"first"}
            (tmp_path / f"{name}_helper.py").write_text("LABEL = 'the second one'\n")  # only the helper changes
            importlib.reload(sys.modules[f"{name}_helper"])
            importlib.reload(module)
            assert labels() == {"the second one"}
    finally:
        sys.modules.pop(name, None)
        sys.modules.pop(f"{name}_helper", None)


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
def test_forkserver_workers_come_from_fluidmls_own_preloaded_server():
    from multiprocessing import forkserver

    from fluidml.executors import _contexts

    default_preload = list(forkserver._forkserver._preload_modules)
    with fluidml.WorkerPool(2, start_method="forkserver") as pool:
        first = seen(wide(record_worker).run(executor=pool, return_results="all", progress=False))
        second = seen(wide(record_worker).run(executor=pool, return_results="all", progress=False))
        assert {pid for pid, _ in first} | {pid for pid, _ in second} <= set(pool.pids)
        server_pid = _contexts._server._forkserver_pid
        assert {psutil.Process(pid).ppid() for pid in pool.pids} == {server_pid}
        assert "fluidml.executors.worker" in _contexts._server._preload_modules
    assert forkserver._forkserver._preload_modules == default_preload  # the default server is untouched


def test_run_arguments_must_agree_with_the_pool():
    with fluidml.WorkerPool(2, resources=["a", "b"]) as pool:
        flow = wide(record_worker, 2)
        with pytest.raises(RunConfigError, match=r"run\(num_workers=3\) differs from the pool's "
                                                 r"WorkerPool\(num_workers=2\)"):
            flow.run(executor=pool, num_workers=3, progress=False)
        with pytest.raises(RunConfigError, match=r"run\(resources=\['c'\]\) differs from the pool's "
                                                 r"WorkerPool\(resources=\['a', 'b'\]\)"):
            flow.run(executor=pool, resources=["c"], progress=False)
        results = flow.run(executor=pool, num_workers=2, resources=["a", "b"], return_results="all", progress=False)
        assert len(seen(results)) == 2


def wait_for_file(i, task):
    while not os.path.exists(task.resource):  # (the file's path is the worker's resource)
        time.sleep(0.02)
    task.save(i, "done")


def test_a_second_flow_on_a_busy_pool_gets_a_clear_error(tmp_path):
    release = str(tmp_path / "release")
    with fluidml.WorkerPool(1, resources=release) as pool:
        errors = []
        first = threading.Thread(target=lambda: wide(wait_for_file, 1).run(executor=pool, progress=False))
        first.start()
        deadline = time.monotonic() + 60
        while "running a flow" not in repr(pool) and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            wide(record_worker, 1).run(executor=pool, progress=False)
        except RunConfigError as exc:
            errors.append(str(exc))
        with pytest.raises(RuntimeError, match="running a flow; close it after"):
            pool.close()
        open(release, "w").close()
        first.join(60)
        assert errors and "already running a flow (one run at a time)" in errors[0]
        assert len(seen(wide(record_worker, 2).run(executor=pool, return_results="all", progress=False))) == 2


INTERRUPTED = textwrap.dedent("""
    import os, signal, sys, threading, time
    import fluidml
    from fluidml import Flow, TaskSpec

    def slow(i, task):
        if i == 0:
            open(sys.argv[1], "w").close()
            time.sleep(600)
        task.save(os.getpid(), "pid")

    def interrupt_when_started():
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    if __name__ == "__main__":
        flow = Flow([TaskSpec(task=slow, config={"i": [0]}, expand="product")])
        with fluidml.WorkerPool(2) as pool:
            before = pool.pids
            threading.Thread(target=interrupt_when_started, daemon=True).start()
            try:
                flow.run(executor=pool, progress=False)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            os.remove(sys.argv[1])
            results = Flow([TaskSpec(task=slow, config={"i": [1, 2]}, expand="product")]).run(
                executor=pool, progress=False, return_results="all")
            print(" ".join(map(str, before)), "|", " ".join(map(str, pool.pids)), "|",
                  " ".join(str(r.results["pid"]) for r in results["slow"]), flush=True)
""")


def test_after_ctrl_c_the_interrupted_worker_is_replaced_and_the_pool_serves_on(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "started")], capture_output=True, text=True,
                          env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "interrupted"
    before, after, used = ([int(pid) for pid in part.split()] for part in lines[-1].split("|"))
    assert len(after) == 2 and len(set(before) & set(after)) == 1  # the interrupted one was replaced
    assert set(used) <= set(after)
    assert wait_until_gone(set(before) - set(after)) == []


REDEFINED = textwrap.dedent("""
    import fluidml
    from fluidml import Flow, TaskSpec

    def work(i, task):
        task.save("first", "version")

    def versions(pool):
        results = Flow([TaskSpec(task=work, config={"i": [1, 2, 3]}, expand="product")]).run(
            executor=pool, progress=False, return_results="all")
        return sorted({r.results["version"] for r in results["work"]})

    if __name__ == "__main__":
        with fluidml.WorkerPool(2) as pool:
            print(versions(pool), flush=True)

            def work(i, task):  # redefined, as a notebook cell run again would
                task.save("second", "version")

            print(versions(pool), flush=True)
""")


def test_a_function_redefined_in_main_runs_its_new_code(tmp_path):
    script = tmp_path / "redefined.py"
    script.write_text(REDEFINED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["['first']", "['second']"]


def test_a_forgotten_pool_stops_its_workers_when_collected():
    import gc

    pool = fluidml.WorkerPool(2)
    wide(record_worker, 2).run(executor=pool, progress=False)
    pids = pool.pids
    del pool
    gc.collect()
    assert wait_until_gone(pids) == []
