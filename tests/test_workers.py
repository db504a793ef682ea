"""The worker pool: worker counts, resources, start methods, stores, shipping tasks, failures of
tasks and of worker processes. (Output, Ctrl-C and tmux: test_worker_processes.py.)"""

import multiprocessing
import os
import signal
import threading
import time
import traceback

import pytest

import pipelines as p
from fluidml import Flow, Task, TaskSpec
from fluidml.exception import TaskFailedError
from fluidml.executors.processes import worker_resources
from fluidml.storage import InMemoryStore, ResultsStore, StoreContext


def report_worker(value, task):
    """Saves which process ran it and the resource it was given."""
    time.sleep(0.05)  # long enough for every worker to get a task
    task.save({"pid": os.getpid(), "resource": task.resource}, "seen")


def wide_flow(n: int, fn=report_worker) -> Flow:
    return Flow([TaskSpec(task=fn, config={"value": list(range(n))}, expand="product")])


def seen_by_task(results, name="report_worker"):
    return [r.results["seen"] for r in results[name]]


def run_wide(n, **kwargs):
    return seen_by_task(wide_flow(n).run(return_results="all", **kwargs))


# ------------------------------------------------------------------------------- worker counts


@pytest.mark.parametrize("requested, expected", [(None, 2), (0, 2), (1, 1), (2, 2), (64, 2)])
def test_worker_count_is_the_requested_one_capped_by_the_graph_and_cpus(requested, expected, monkeypatch):
    """None/0 mean the optimum (widest level, capped by the CPUs); more than the optimum is reduced."""
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 2)
    flow = wide_flow(6)
    assert flow.optimal_num_workers == 2
    assert flow._num_workers(requested) == expected


def test_a_chain_runs_in_this_process_even_if_workers_are_asked_for(recorder):
    """A chain can use one worker only, so it runs in the calling process."""
    a = TaskSpec(task=p.source, config={"value": 1})
    b = TaskSpec(task=p.double)
    b.requires(a)
    Flow([a, b]).run(num_workers=2, observers=[recorder])
    assert recorder.summary.executor == "in this process"


def test_a_deep_chain_beside_a_wide_level_runs_on_the_pool():
    """The spec table of a 1200-deep chain goes to the workers (its specs are pickled without
    their links, which would recurse along the chain)."""
    specs = [TaskSpec(task=p.source, name="t0", config={"value": [1, 2]}, expand="product")]
    for i in range(1, 1200):
        spec = TaskSpec(task=p.double if i == 1 else _pass_y, name=f"t{i}")
        spec.requires(specs[-1])
        specs.append(spec)
    results = Flow(specs).run(num_workers=2)
    assert sorted(r.results["y"] for r in results["t1199"]) == [2, 4]


def _pass_y(y, task):
    task.save(y, "y")


def test_two_workers_share_the_work_in_other_processes(recorder):
    seen = run_wide(6, num_workers=2, observers=[recorder])
    pids = {s["pid"] for s in seen}
    assert os.getpid() not in pids and len(pids) == 2
    assert recorder.summary.executor == "on 2 worker processes (spawn)"


# ----------------------------------------------------------------------------------- resources


@pytest.mark.parametrize("resources, workers, expected", [
    (["a", "b"], 2, ["a", "b"]),
    (["a", "b", "c"], 2, ["a", "b"]),
    (["a"], 3, ["a", "a", "a"]),
    (["a", "b"], 3, ["a", "b", "a"]),
    ([], 2, [None, None]),
])
def test_resources_go_one_per_worker_and_round_robin_otherwise(resources, workers, expected):
    assert worker_resources(resources, workers) == expected


def test_each_worker_hands_its_own_resource_to_its_tasks():
    """Two workers, two GPUs: every task of a worker sees that worker's resource, and both are used."""
    seen = run_wide(8, num_workers=2, resources=["cuda:0", "cuda:1"])
    by_pid = {}
    for s in seen:
        by_pid.setdefault(s["pid"], set()).add(s["resource"])
    assert sorted(r for resources in by_pid.values() for r in resources) == ["cuda:0", "cuda:1"]
    assert all(len(resources) == 1 for resources in by_pid.values())


def test_a_single_resource_is_given_to_every_worker():
    seen = run_wide(4, num_workers=2, resources="cuda:0")
    assert {s["resource"] for s in seen} == {"cuda:0"}


# ------------------------------------------------------------------------------- start methods


@pytest.mark.parametrize("start_method", ["spawn", "fork", "forkserver"])
def test_start_methods_are_used_through_a_context_only(start_method):
    before = multiprocessing.get_start_method(allow_none=True)
    seen = run_wide(4, num_workers=2, start_method=start_method)
    assert len(seen) == 4 and os.getpid() not in {s["pid"] for s in seen}
    assert multiprocessing.get_start_method(allow_none=True) == before


# ------------------------------------------------------------------------------------- stores


class DictStore(ResultsStore):
    """A custom store keeping its runs in a plain dict of this process (not process_safe)."""

    def __init__(self):
        super().__init__()
        self.runs = {}

    def _run(self, task_name, config):
        return self.runs.setdefault((task_name, repr(sorted(config.items()))), {})

    def load(self, name, task_name, task_unique_config, **kwargs):
        return self._run(task_name, task_unique_config).get(name)

    def save(self, obj, name, type_, task_name, task_unique_config, **kwargs):
        self._run(task_name, task_unique_config)[name] = obj

    def delete(self, name, task_name, task_unique_config):
        self._run(task_name, task_unique_config).pop(name, None)

    def delete_run(self, task_name, task_unique_config):
        self.runs.pop((task_name, repr(sorted(task_unique_config.items()))), None)

    def get_context(self, task_name, task_unique_config):
        return StoreContext(sweep_counter="007")


@pytest.mark.parametrize("store_class", [InMemoryStore, DictStore])
def test_stores_of_the_parent_process_keep_every_worker_result(store_class, recorder):
    """A user's in-memory store (or any store that is not process_safe) gets every result, and a
    second run finds them all."""
    store = store_class()
    flow = wide_flow(6)
    flow.run(num_workers=2, results_store=store)
    for i in range(6):
        config = {"report_worker": {"value": i}}
        assert store.load("seen", "report_worker", config)["pid"] != os.getpid()
        assert store.is_finished("report_worker", config)
    flow.run(num_workers=2, results_store=store, observers=[recorder])
    assert len(recorder.cached) == 6 and recorder.executed == []


def test_the_store_context_of_the_parent_reaches_the_task():
    def context_of(value, task):
        task.save(task.get_store_context().sweep_counter, "counter")

    results = wide_flow(2, context_of).run(num_workers=2, results_store=DictStore(), return_results="all")
    assert [r.results["counter"] for r in results["context_of"]] == ["007", "007"]


def test_an_unpicklable_result_for_a_parent_store_fails_its_task_clearly():
    def save_generator(value, task):
        task.save((i for i in range(3)), "gen")

    with pytest.raises(TypeError, match="cannot be sent to the parent process"):
        wide_flow(2, save_generator).run(num_workers=2)


# ------------------------------------------------------------------------------ what is shipped


def test_local_functions_lambdas_and_local_classes_run_in_workers():
    offset = 10

    def shifted(value, task):
        task.save(value + offset, "shifted")  # a closure

    squared = TaskSpec(task=lambda shifted, task: task.save(shifted ** 2, "squared"), name="squared")

    class Report(Task):
        def run(self, squared):
            self.save(f"got {squared}", "report")

    first = TaskSpec(task=shifted, config={"value": [1, 2]}, expand="product")
    report = TaskSpec(task=Report)
    squared.requires(first)
    report.requires(squared)
    results = Flow([first, squared, report]).run(num_workers=2)
    assert sorted(r.results["report"] for r in results["Report"]) == ["got 121", "got 144"]


def test_resources_that_cannot_be_pickled_give_a_clear_error():
    with pytest.raises(TypeError, match="resource of worker 1 cannot be sent to a worker process"):
        run_wide(2, num_workers=2, resources=[(i for i in range(2)), "b"])


# ---------------------------------------------------------------------------------- failures


def raise_here(value, task):
    raise ValueError(f"bad value {value}")


class Unpicklable(Exception):
    def __init__(self, message, handle):
        super().__init__(message)
        self.handle = handle


def raise_unpicklable(value, task):
    raise Unpicklable("cannot travel", handle=threading.Lock())


def _refuse():
    raise RuntimeError("this exception refuses to be rebuilt")


class Unbuildable(Exception):
    def __reduce__(self):
        return _refuse, ()


def raise_unbuildable(value, task):
    raise Unbuildable("rebuild me")


def test_a_task_error_reaches_run_with_its_traceback():
    with pytest.raises(ValueError, match="bad value") as info:
        wide_flow(2, raise_here).run(num_workers=2)
    text = "".join(traceback.format_exception(info.type, info.value, info.tb))
    assert "in raise_here" in text and 'raise ValueError(f"bad value {value}")' in text


@pytest.mark.parametrize("fn, message", [(raise_unpicklable, "cannot travel"), (raise_unbuildable, "rebuild me")])
def test_an_exception_that_cannot_travel_arrives_as_task_failed_error_with_its_traceback(fn, message):
    with pytest.raises(TaskFailedError, match=message) as info:
        wide_flow(2, fn).run(num_workers=2)
    assert f"in {fn.__name__}" in str(info.value)  # the original traceback text


def die_with(value, task):
    if value == 0:
        os.kill(os.getpid(), signal.SIGKILL if task.resource == "kill" else signal.SIGSEGV)
    time.sleep(0.2)
    task.save(value, "survivor")


@pytest.mark.parametrize("how, signal_name", [("kill", "SIGKILL"), ("segv", "SIGSEGV")])
def test_a_worker_that_dies_fails_its_task_and_the_run_goes_on(how, signal_name, recorder):
    """SIGKILL or a segfault in a task: the task is FAILED with an error naming the signal, the other
    tasks finish on a fresh worker, and nothing hangs."""
    results = wide_flow(4, die_with).run(num_workers=2, resources=how, exit_on_error=False,
                                         observers=[recorder], return_results="all")
    assert recorder.state("die_with-1") == "failed"
    assert [recorder.state(f"die_with-{i}") for i in (2, 3, 4)] == ["finished"] * 3
    name, error = recorder.summary.failures[0]
    assert name == "die_with-1" and signal_name in error and "Worker process worker-" in error
    assert sorted(r.results["survivor"] for r in results["die_with"] if r.results) == [1, 2, 3]


def test_a_dead_worker_stops_the_run_with_exit_on_error():
    with pytest.raises(TaskFailedError, match="SIGKILL") as info:
        wide_flow(2, die_with).run(num_workers=2, resources="kill")
    assert info.value.task_name == "die_with-1"


def test_the_parent_waits_without_spinning():
    """While a task sleeps, the parent uses almost no CPU (it blocks on the workers' pipes)."""
    def sleeper(value, task):
        time.sleep(1.5)

    flow = wide_flow(2, sleeper)
    cpu_before = time.process_time()
    flow.run(num_workers=2)
    assert time.process_time() - cpu_before < 0.5


class BrokenInWorkers(DictStore):
    """A process_safe store that cannot be rebuilt in a worker process."""

    process_safe = True

    def __setstate__(self, state):
        raise RuntimeError("this store cannot be opened here")


def test_a_worker_that_cannot_start_gives_a_clear_error():
    with pytest.raises(RuntimeError, match="(?s)could not start.*this store cannot be opened here"):
        run_wide(2, num_workers=2, results_store=BrokenInWorkers())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_processes_are_gone_soon_after_the_run():
    """run() returns without waiting for the workers to wind down; they are reaped moments later."""
    pids = {s["pid"] for s in run_wide(4, num_workers=2)}
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)
    assert multiprocessing.active_children() == []
