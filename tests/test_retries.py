"""Retries on every executor: driven by fluidml's driver, logged, recorded in the stored info, and
each attempt starts in a cleared run."""

import pytest

import longjobs_tasks as lt
from fluidml import Flow, RayExecutor, Requests, TaskSpec
from fluidml.exception import RunConfigError, TaskFailedError, TaskSpecError
from fluidml.storage import LocalFileStore


@pytest.fixture
def executor(executor_kwargs):
    """``executor_kwargs``, with the pool forced: these flows have one task, which num_workers=2
    alone would run in this process."""
    return {**executor_kwargs, "executor": "processes"} if executor_kwargs.get("num_workers") == 2 else executor_kwargs


def flaky_spec(tmp_path, fails, **requests):
    config = {"counter": str(tmp_path / "attempts"), "fails": fails}
    return TaskSpec(task=lt.flaky, config=config, requests=Requests(**requests)), {"flaky": config}


def attempts_made(tmp_path):
    return len(list((tmp_path / "attempts").iterdir()))


def test_a_task_that_fails_twice_finishes_on_its_third_attempt(make_store, executor, tmp_path, caplog):
    """retries=2 with retry_on: two ConnectionErrors, then success; each attempt is logged, the stored
    info lists the three attempts, and nothing the failed attempts saved is left in the run."""
    caplog.set_level("INFO", logger="fluidml")
    store = make_store()
    spec, unique_config = flaky_spec(tmp_path, fails=2, retries=2, retry_on=(ConnectionError,))
    results = Flow([spec]).run(results_store=store, return_results="all", **executor)
    assert results["flaky"][0].results == {"left_by_attempt_3": 3, "succeeded_on": 3}
    assert store.get_results("flaky", unique_config) == {"left_by_attempt_3": 3, "succeeded_on": 3}
    info = store.load("fluidml_info", "flaky", unique_config)
    assert info["state"] == "finished"
    attempts = info["fluidml"]["attempts"]
    assert [(a["attempt"], a["error_type"], a["message"]) for a in attempts] == [
        (1, "ConnectionError", "refused on attempt 1"), (2, "ConnectionError", "refused on attempt 2"), (3, None, None)]
    assert all(a["started"] <= a["ended"] for a in attempts)
    assert "flaky: attempt 2 of 3 after ConnectionError: refused on attempt 1" in caplog.text
    assert "flaky: attempt 3 of 3 after ConnectionError: refused on attempt 2" in caplog.text
    assert attempts_made(tmp_path) == 3


@pytest.mark.parametrize("retry_on", [(ConnectionError,), ()], ids=["other-class", "default-none"])
def test_an_exception_not_in_retry_on_fails_at_once(executor, tmp_path, recorder, retry_on):
    """retries=3: a ValueError (not in retry_on; by default nothing is) fails the task on its first
    attempt, and the run raises it."""
    store = LocalFileStore(str(tmp_path / "store"))
    config = {"counter": str(tmp_path / "attempts"), "fails": 5, "error": "ValueError"}
    spec = TaskSpec(task=lt.flaky, config=config, requests=Requests(retries=3, retry_on=retry_on))
    with pytest.raises(ValueError, match="refused on attempt 1"):
        Flow([spec]).run(results_store=store, observers=[recorder], **executor)
    assert attempts_made(tmp_path) == 1
    assert recorder.state("flaky") == "failed"
    attempts = store.load("fluidml_info", "flaky", {"flaky": config})["fluidml"]["attempts"]
    assert [(a["attempt"], a["error_type"]) for a in attempts] == [(1, "ValueError")]


def test_a_task_out_of_attempts_fails_with_its_last_error(executor, tmp_path, recorder):
    """Three failures with retries=2: FAILED with the third attempt's error, all three recorded."""
    store = LocalFileStore(str(tmp_path / "store"))
    spec, unique_config = flaky_spec(tmp_path, fails=3, retries=2, retry_on=ConnectionError)
    with pytest.raises(ConnectionError, match="refused on attempt 3"):
        Flow([spec]).run(results_store=store, observers=[recorder], **executor)
    info = store.load("fluidml_info", "flaky", unique_config)
    assert info["state"] == "failed" and len(info["fluidml"]["attempts"]) == 3
    assert store.get_results("flaky", unique_config) == {"left_by_attempt_3": 3}
    assert recorder.summary.failures == [("flaky", "ConnectionError: refused on attempt 3")]


def test_a_dead_worker_is_always_worth_another_attempt(tmp_path, recorder):
    """A worker process that dies is retried without retry_on; its task then finishes."""
    spec = TaskSpec(task=lt.die_first, config={"counter": str(tmp_path / "attempts")}, requests={"retries": 1})
    results = Flow([spec]).run(executor="processes", observers=[recorder], return_results="all")
    assert results["die_first"][0].results == {"status": "survived"}
    assert recorder.executed == ["die_first"] and attempts_made(tmp_path) == 2


def test_a_dead_worker_without_retries_fails_its_task(tmp_path):
    spec = TaskSpec(task=lt.die_first, config={"counter": str(tmp_path / "attempts")})
    with pytest.raises(TaskFailedError, match="was ended by SIGKILL"):
        Flow([spec]).run(executor="processes")


def test_waits_between_attempts_grow_by_the_backoff(tmp_path, caplog):
    caplog.set_level("WARNING", logger="fluidml")
    spec, _ = flaky_spec(tmp_path, fails=2, retries=2, retry_on=ConnectionError, retry_delay=0.05, retry_backoff=3)
    Flow([spec]).run(num_workers=1)
    assert "flaky: attempt 2 of 3 in 0.05 s after ConnectionError" in caplog.text
    assert "flaky: attempt 3 of 3 in 0.15 s after ConnectionError" in caplog.text


def test_a_task_waiting_for_its_next_attempt_fails_when_the_run_stops(tmp_path, recorder):
    """exit_on_error: another task's failure stops the run while a retry waits (a long delay): the
    waiting task ends FAILED at once with its last error, and its successor does not run."""
    spec, _ = flaky_spec(tmp_path, fails=1, retries=1, retry_on=ConnectionError, retry_delay=600)
    after = TaskSpec(task=lt.quick_pid, name="after")
    after.requires(spec)
    broken = TaskSpec(task=lt.flaky, name="broken", config={"counter": str(tmp_path / "b"), "fails": 1,
                                                             "error": "ValueError"})
    with pytest.raises(ValueError):
        Flow([spec, after, broken]).run(num_workers=1, observers=[recorder])
    assert recorder.state("flaky") == "failed" and recorder.state("broken") == "failed"
    assert recorder.state("after") == "pending"
    assert dict(recorder.summary.failures)["flaky"] == "ConnectionError: refused on attempt 1"


def test_ray_retries_through_fluidml_with_the_executors_default():
    """Ray runs each attempt once (max_retries=0); RayExecutor(max_retries=N) is the default of
    Requests.retries."""
    executor = RayExecutor(max_retries=2)
    task = Flow([TaskSpec(task=lt.quick_pid, requests={"retries": 5})]).task_graph.nodes["quick_pid"]["task"]
    task._requests = Requests(retries=5)
    assert executor.default_retries == 2 and executor._options(task, False)["max_retries"] == 0


@pytest.mark.parametrize("bad, key", [
    ({"retries": -1}, "retries"), ({"retries": 1.5}, "retries"), ({"timeout": 0}, "timeout"),
    ({"timeout": "5 minutes"}, "timeout"), ({"timeout": "-2h"}, "timeout"), ({"retry_on": "ConnectionError"}, "retry_on"),
    ({"retry_on": (ValueError, KeyboardInterrupt)}, "retry_on"), ({"retry_delay": "soon"}, "retry_delay"),
    ({"retry_backoff": 0.5}, "retry_backoff"),
])
def test_bad_retry_and_timeout_requests_name_the_task_and_the_field(bad, key):
    with pytest.raises(TaskSpecError) as info:
        TaskSpec(task=lt.quick_pid, name="train", requests=bad)
    assert info.value.task_name == "train" and info.value.key == key
    assert str(info.value).startswith(f'Task "train": Requests: {key}')
    flow = Flow([TaskSpec(task=lt.quick_pid, name="train")])
    with pytest.raises(RunConfigError) as run_info:
        flow.run(requests={"train": bad})
    assert run_info.value.task_name == "train" and run_info.value.key == key


def test_timeouts_are_seconds_or_text_with_a_unit():
    assert [Requests(timeout=t).timeout for t in (90, 2.5, "90s", "90", "2m", "1.5h", "1d", " 3 s ")] == [
        90.0, 2.5, 90.0, 90.0, 120.0, 5400.0, 86400.0, 3.0]
    assert Requests(retry_delay="2m", retry_backoff=1).retry_wait(4) == 120.0
    assert Requests(retry_delay=1, retry_backoff=2).retry_wait(4) == 4.0
    assert Requests(retry_on=ConnectionError).retry_on == (ConnectionError,)
