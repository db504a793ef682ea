"""Failures in a run: exit_on_error, missing and ambiguous inputs, kills, and what is stored."""

import sys

import pytest

import pipelines as p
from fluidml import Flow, TaskSpec
from fluidml.exception import TaskResultKeyAlreadyExists, TaskResultObjectMissing


def failing_branch_flow():
    """src -> fail -> dbl (a dependent of the failing task), and an independent ok -> dbl2."""
    src = TaskSpec(task=p.source, config={"value": 1})
    bad = TaskSpec(task=p.fail, config={"message": "exploded"})
    after = TaskSpec(task=p.double, name="after")
    ok = TaskSpec(task=p.source, name="ok", config={"value": 2})
    ok_after = TaskSpec(task=p.double, name="ok_after")
    bad.requires(src)
    after.requires(bad)
    ok_after.requires(ok)
    return Flow([src, bad, after, ok, ok_after])


def stored_info(store, name, unique_config):
    return store.load("fluidml_info", name, unique_config)


def test_exit_on_error_reraises_the_task_error_and_stops(make_store, executor_kwargs, recorder):
    """With exit_on_error, run() raises the task's own exception; no task starts after the failure
    (in a pool, tasks already running finish)."""
    store = make_store()
    with pytest.raises(ValueError, match="exploded"):
        failing_branch_flow().run(results_store=store, observers=[recorder], **executor_kwargs)
    assert recorder.state("fail") == "failed"
    assert recorder.state("after") == "upstream_failed"
    assert recorder.submitted_after("fail") == []
    if executor_kwargs.get("num_workers") == 1:
        assert "ok_after" not in recorder.executed
    info = stored_info(store, "fail", {"source": {"value": 1}, "fail": {"message": "exploded"}})
    assert info["state"] == "failed"


def test_the_reraised_error_says_which_task_failed(make_store, executor_kwargs):
    """The exception run() re-raises carries a note naming the failed task and the run."""
    with pytest.raises(ValueError) as error:
        failing_branch_flow().run(results_store=make_store(), run_name="r1", **executor_kwargs)
    if sys.version_info >= (3, 11):  # exception notes exist from Python 3.11 on
        assert error.value.__notes__ == ['fluidml: task "fail" failed; run "r1" stopped.']
    else:
        assert not hasattr(error.value, "__notes__")


def test_without_exit_on_error_independent_branches_finish(make_store, executor_kwargs, recorder):
    """With exit_on_error=False nothing is raised, the failed task's successors are skipped and
    everything else finishes."""
    store = make_store()
    failing_branch_flow().run(results_store=store, exit_on_error=False, observers=[recorder],
                              return_results="all", **executor_kwargs)
    assert recorder.state("fail") == "failed"
    assert recorder.upstream_failed == ["after"]
    assert recorder.state("ok_after") == "finished"
    assert recorder.summary.failures == [("fail", "ValueError: exploded")]
    assert stored_info(store, "after", {"source": {"value": 1}, "fail": {"message": "exploded"}, "after": {}}) is None


def test_a_failed_task_runs_again_next_time(make_store, executor_kwargs, recorder):
    """A stored failed run is not a cache hit: the next run executes the task again."""
    store = make_store()
    failing_branch_flow().run(results_store=store, exit_on_error=False, **executor_kwargs)
    failing_branch_flow().run(results_store=store, exit_on_error=False, observers=[recorder], **executor_kwargs)
    assert recorder.executed == ["fail"]
    assert sorted(recorder.cached) == ["ok", "ok_after", "source"]


def test_missing_input_fails_the_task_with_a_clear_error(make_store, executor_kwargs, recorder):
    """An expected input that no predecessor saved makes the task FAILED, naming the parameter."""
    src = TaskSpec(task=p.source, config={"value": 1})
    needs = TaskSpec(task=p.needs_missing)
    needs.requires(src)
    with pytest.raises(TaskResultObjectMissing, match='expects the input "nothere".*"source"') as error:
        Flow([src, needs]).run(results_store=make_store(), observers=[recorder], **executor_kwargs)
    assert error.value.key == "nothere" and error.value.task_name == "needs_missing"
    assert recorder.state("needs_missing") == "failed"


def test_missing_input_with_exit_on_error_false_does_not_raise(make_store, executor_kwargs, recorder):
    """Input errors are failures like any other: exit_on_error=False lets the run go on."""
    needs = TaskSpec(task=p.needs_missing)
    other = TaskSpec(task=p.source, config={"value": 1})
    Flow([needs, other]).run(results_store=make_store(), exit_on_error=False, observers=[recorder],
                             **executor_kwargs)
    assert recorder.state("needs_missing") == "failed"
    assert recorder.state("source") == "finished"


def test_an_input_from_two_predecessors_is_ambiguous(make_store, executor_kwargs):
    """Two predecessors saving the expected name fail the task, naming both of them."""
    a = TaskSpec(task=p.source, name="a", config={"value": 1})
    b = TaskSpec(task=p.source, name="b", config={"value": 2})
    dbl = TaskSpec(task=p.double)
    dbl.requires(a, b)
    with pytest.raises(TaskResultKeyAlreadyExists, match='input "x" from two predecessors, "a" and "b"'):
        Flow([a, b, dbl]).run(results_store=make_store(), **executor_kwargs)


def test_input_with_a_default_keeps_it(make_store, executor_kwargs):
    """A run() parameter with a default that nobody provides keeps its default."""
    src = TaskSpec(task=p.source, config={"value": 1})
    dflt = TaskSpec(task=p.with_default)
    dflt.requires(src)
    results = Flow([src, dflt]).run(results_store=make_store(), return_results="latest", **executor_kwargs)
    assert results["with_default"][0].results == {"pair": (1, 42)}


def test_an_exception_in_init_fails_the_task(make_store, executor_kwargs, recorder):
    """A class task whose __init__ raises is a FAILED task, not a Flow construction error."""
    flow = Flow([TaskSpec(task=p.BrokenInit, config={"value": 3})])
    with pytest.raises(RuntimeError, match="cannot init with 3"):
        flow.run(results_store=make_store(), observers=[recorder], **executor_kwargs)
    assert recorder.state("BrokenInit") == "failed"


def test_keyboard_interrupt_kills_the_task_and_stops_the_run(make_store, executor_kwargs, recorder):
    """Ctrl-C inside a task marks it KILLED (stored), stops the run and re-raises KeyboardInterrupt,
    whatever exit_on_error says; the next run executes the task again."""
    store = make_store()
    flow = Flow([TaskSpec(task=p.interrupt), TaskSpec(task=p.source, config={"value": 1})])
    with pytest.raises(KeyboardInterrupt):
        flow.run(results_store=store, exit_on_error=False, observers=[recorder], **executor_kwargs)
    assert recorder.state("interrupt") == "killed"
    assert stored_info(store, "interrupt", {"interrupt": {}})["state"] == "killed"
    again = type(recorder)()
    with pytest.raises(KeyboardInterrupt):
        flow.run(results_store=store, exit_on_error=False, observers=[again], **executor_kwargs)
    assert "interrupt" in again.executed


def test_failure_log_has_the_traceback(make_store, executor_kwargs, caplog):
    """The error log of a failed task names it and carries the task's traceback."""
    caplog.set_level("INFO", logger="fluidml")
    failing_branch_flow().run(results_store=make_store(), exit_on_error=False, **executor_kwargs)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert 'Task "fail" failed' in text and "Traceback" in text and "ValueError: exploded" in text
    assert 'in fail\n    raise ValueError(message)' in text
