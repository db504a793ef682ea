"""Timeouts on every executor: the task is interrupted at its deadline with TaskTimeoutError (its
`finally` blocks run), and one that does not stop within the grace period is ended."""

import os
import signal
import threading
from pathlib import Path

import pytest

import longjobs_tasks as lt
from fluidml import Flow, Requests, TaskSpec, _timeouts
from fluidml.exception import TaskTimeoutError
from fluidml.storage import LocalFileStore

GRACE = 1.5


@pytest.fixture
def executor(executor_kwargs, monkeypatch):
    """``executor_kwargs`` (the pool forced: these flows have one task), with a short grace period."""
    monkeypatch.setattr(_timeouts, "TIMEOUT_GRACE", GRACE)
    return {**executor_kwargs, "executor": "processes"} if executor_kwargs.get("num_workers") == 2 else executor_kwargs


def test_a_task_past_its_timeout_is_interrupted_and_fails(executor, tmp_path, recorder):
    """timeout=1 on a task that sleeps 120 s: TaskTimeoutError (naming the task and the limit)
    reaches run(), raised inside the task at the deadline (its except/finally ran), FAILED in
    the store."""
    store = LocalFileStore(str(tmp_path / "store"))
    marker = tmp_path / "marker"
    spec = TaskSpec(task=lt.sleeper, config={"marker": str(marker)}, requests={"timeout": 1})
    with pytest.raises(TaskTimeoutError, match=r'Task "sleeper" exceeded its timeout of 1 s') as info:
        Flow([spec]).run(results_store=store, observers=[recorder], **executor)
    assert info.value.task_name == "sleeper" and info.value.limit == 1.0 and info.value.key == "timeout"
    how, _, seconds = marker.read_text().rpartition(" ")
    assert how == "interrupted after" and 0.9 <= float(seconds) < 1 + GRACE
    assert recorder.state("sleeper") == "failed"
    assert store.load("fluidml_info", "sleeper", {"sleeper": {"marker": str(marker)}})["state"] == "failed"


def test_a_task_that_ignores_the_interrupt_is_ended_after_the_grace_period(executor, tmp_path, recorder):
    """A task that catches TaskTimeoutError and sleeps on is ended GRACE s later: its worker is
    killed (in this process, where nothing can be killed, a second interrupt that `except
    Exception` does not catch stops it)."""
    marker = tmp_path / "marker"
    spec = TaskSpec(task=lt.stubborn, config={"marker": str(marker)}, requests={"timeout": 1})
    how = "stopped by a second interrupt" if executor.get("num_workers") == 1 else "killed"
    with pytest.raises(TaskTimeoutError, match=f"did not stop within {GRACE:g} s of the interrupt; it was {how}"):
        Flow([spec]).run(observers=[recorder], **executor)
    assert marker.read_text() == "ignored the interrupt"
    assert recorder.state("stubborn") == "failed"


def test_a_timeout_is_retried_when_retry_on_names_it(executor, tmp_path):
    spec = TaskSpec(task=lt.timed_flaky, config={"counter": str(tmp_path / "n")},
                    requests=Requests(timeout=1, retries=1, retry_on=TaskTimeoutError))
    store = LocalFileStore(str(tmp_path / "store"))
    Flow([spec]).run(results_store=store, **executor)
    info = store.load("fluidml_info", "timed_flaky", {"timed_flaky": {"counter": str(tmp_path / "n")}})
    assert [a["error_type"] for a in info["fluidml"]["attempts"]] == ["TaskTimeoutError", None]


def test_a_timed_task_runs_here_and_the_alarm_handler_is_restored(tmp_path):
    """From the main thread, the local executor runs a timed task in this process (SIGALRM), and
    puts back the SIGALRM handler it found."""
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        results = Flow([TaskSpec(task=lt.quick_pid, requests={"timeout": 30})]).run(num_workers=1)
        assert results["quick_pid"][0].results["pid"] == os.getpid()
        assert signal.getsignal(signal.SIGALRM) is mine and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_off_the_main_thread_a_timed_task_runs_in_a_worker_process(monkeypatch, tmp_path):
    """No signal can interrupt another thread: there the local executor runs a timed task in a
    worker process, which enforces the timeout (untimed tasks still run in this process)."""
    monkeypatch.setattr(_timeouts, "TIMEOUT_GRACE", GRACE)
    timed = TaskSpec(task=lt.quick_pid, name="timed", requests={"timeout": 30})
    untimed = TaskSpec(task=lt.quick_pid, name="untimed")
    sleeping = TaskSpec(task=lt.sleeper, config={"marker": str(tmp_path / "m")}, requests={"timeout": 1})
    outcome = {}

    def drive():
        outcome["results"] = Flow([timed, untimed]).run(num_workers=1, return_results="all")
        try:
            Flow([sleeping]).run(num_workers=1)
        except TaskTimeoutError as error:
            outcome["error"] = error

    thread = threading.Thread(target=drive)
    thread.start()
    thread.join(120)
    pids = {name: runs[0].results["pid"] for name, runs in outcome["results"].items()}
    assert pids["untimed"] == os.getpid() and pids["timed"] != os.getpid()
    assert "exceeded its timeout of 1 s" in str(outcome["error"])
    assert Path(tmp_path / "m").read_text().startswith("interrupted after")
