"""Errors on the way to the store, and how a run ends: a full disk, a file name too long, an info
that cannot be written, a run removed under a writer, sys.exit() and an exception whose __str__
raises inside tasks, values that cannot travel to a worker, and input the stores could not keep
apart. Each is named (task, object, file) and every task ends the run in a final state."""

import errno
import os
import threading

import pytest

import integrity_tasks as t
from fluidml import Flow, TaskSpec
from fluidml.exception import ResultsStoreError, RunConfigError, TaskFailedError, TaskSpecError
from fluidml.storage import LocalFileStore

POOL_OR_LOCAL = [pytest.param({"num_workers": 1}, id="local"), pytest.param({"num_workers": 2}, id="pool")]
FINAL = {"finished", "failed", "killed", "upstream_failed", "pending"}


def assert_every_task_final(recorder, flow):
    """Every task of the flow is in the closing summary, in a final state."""
    states = {name: state.value for name, state in recorder.summary.states.items()}
    assert sorted(states) == sorted(task.unique_name for task in flow._tasks)
    assert set(states.values()) <= FINAL, states


def with_others(spec, *values):
    """The spec beside independent tasks that save their value."""
    return Flow([spec, TaskSpec(task=t.produce, config={"value": list(values)}, expand="product")])


# ----------------------------------------------------------------------------------- inside tasks


def test_sys_exit_in_a_task_fails_only_that_task(make_store, executor_kwargs, recorder):
    """sys.exit() inside a task fails that task (a TaskFailedError saying so), on every executor;
    with exit_on_error=False the other tasks finish; with it, run() raises the TaskFailedError."""
    store = make_store()
    flow = with_others(TaskSpec(task=t.exits), 1, 2)
    flow.run(results_store=store, exit_on_error=False, observers=[recorder], **executor_kwargs)
    assert recorder.state("exits") == "failed"
    assert recorder.state("produce-1") == recorder.state("produce-2") == "finished"
    assert recorder.summary.failures == [("exits", 'TaskFailedError: Task "exits" called sys.exit(3); a task ends '
                                                   "by returning or by raising an exception, so it failed.")]
    assert store.load("fluidml_info", "exits", {"exits": {}})["state"] == "failed"
    assert_every_task_final(recorder, flow)
    with pytest.raises(TaskFailedError, match=r"sys.exit\(3\)"):
        Flow([TaskSpec(task=t.exits)]).run(results_store=make_store(), **executor_kwargs)


def test_an_exception_whose_str_raises_reaches_the_user(make_store, executor_kwargs, recorder):
    """An exception whose __str__ raises fails its task, keeps its type (run() re-raises it), and
    does not stop tasks running beside it."""
    flow = Flow([TaskSpec(task=t.unprintable), TaskSpec(task=t.SlowTask, config={"value": 7})])
    flow.run(results_store=make_store(), exit_on_error=False, observers=[recorder], **executor_kwargs)
    assert recorder.state("unprintable") == "failed" and recorder.state("SlowTask") == "finished"
    assert recorder.summary.failures == [
        ("unprintable", "UnprintableError: <str() of the UnprintableError failed: RuntimeError>")]
    with pytest.raises(t.UnprintableError):
        Flow([TaskSpec(task=t.unprintable)]).run(results_store=make_store(), **executor_kwargs)


def test_an_additional_kwarg_that_cannot_travel_is_named():
    """A value in additional_kwargs that cannot be pickled for a worker fails the task with an error
    naming the key and what to do."""
    spec = TaskSpec(task=t.takes_kwarg, additional_kwargs={"lock": threading.Lock()})
    with pytest.raises(TypeError, match=r'Task "takes_kwarg": its additional_kwargs value "lock" \(lock\) cannot be '
                                        r"sent to a worker process: .*num_workers=1"):
        Flow([spec]).run(executor="processes", num_workers=1)
    assert Flow([spec]).run(num_workers=1)["takes_kwarg"][0].results == {"had_lock": True}


def test_reserved_object_names_are_refused_on_every_store(make_store, executor_kwargs, recorder):
    """An object named "config" of type json would replace the run's config.json: it is refused,
    on every store, naming the object and the file; "config" of another type is allowed."""
    store = make_store()
    flow = Flow([TaskSpec(task=t.saves_config)])
    with pytest.raises(ValueError, match='the object "config" of type \'json\' would be saved as config.json and '
                                         "replace the run's own config.json"):
        flow.run(results_store=store, observers=[recorder], **executor_kwargs)
    assert recorder.state("saves_config") == "failed"
    results = Flow([TaskSpec(task=t.saves_config, config={"type_": "pickle"})]).run(
        results_store=store, return_results="all", **executor_kwargs)
    assert results["saves_config"][0].results == {"config": {"mine": True}}


def test_the_file_store_refuses_to_overwrite_its_own_files(tmp_path):
    """Saved or opened directly, an object may not take the place of config.json or fluidml_info.json
    (in a sub_dir it may)."""
    store = LocalFileStore(str(tmp_path / "s"))
    config = {"A": {}}
    for name, type_ in (("config", "json"), ("config.json", "event"), ("fluidml_info.json", "event")):
        with pytest.raises(ValueError, match="replace the run's own"):
            store.save({}, name, type_, "A", config)
    with pytest.raises(ValueError, match=r"would be written to .*config.json and replace the run's own config.json"):
        store.open("config", "A", config, mode="w", type_="json")
    store.save({"in": "sub"}, "config", "json", "A", config, sub_dir="sub")
    assert store.load("config", "A", config) == {"in": "sub"}


# ----------------------------------------------------------------------------------- store errors


@pytest.mark.parametrize("options", POOL_OR_LOCAL)
def test_a_full_disk_while_planning_fails_that_task_only(tmp_path, monkeypatch, recorder, options):
    """ENOSPC while the store creates a task's run directory fails that task with an error naming it
    and the path; with exit_on_error=False the run goes on; with it, run() raises that error."""
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if os.sep + "exits" + os.sep in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    base = tmp_path / "store"
    flow = with_others(TaskSpec(task=t.exits), 1, 2)
    flow.run(results_store=LocalFileStore(str(base)), exit_on_error=False, observers=[recorder], **options)
    assert recorder.state("exits") == "failed"
    assert recorder.state("produce-1") == recorder.state("produce-2") == "finished"
    [(name, text)] = recorder.summary.failures
    assert (name, text) == ("exits", f'ResultsStoreError: Task "exits": its run directory cannot be created in '
                                     f"{base / 'exits'}: No space left on device (errno 28).")
    assert_every_task_final(recorder, flow)
    with pytest.raises(ResultsStoreError, match="No space left on device"):
        flow.run(results_store=LocalFileStore(str(base)), **options)


@pytest.mark.parametrize("options", POOL_OR_LOCAL)
def test_a_full_disk_while_saving_fails_the_task_naming_object_and_file(tmp_path, recorder, options):
    """A save that hits a full disk (writes to /dev/full) fails the task with an error naming the
    task, the object and the file; the run goes on with exit_on_error=False."""
    base = tmp_path / "store"
    flow = with_others(TaskSpec(task=t.saves_to_full_disk), 1)
    flow.run(results_store=t.FullDiskStore(str(base)), exit_on_error=False, observers=[recorder], **options)
    assert recorder.state("saves_to_full_disk") == "failed" and recorder.state("produce") == "finished"
    path = base / "saves_to_full_disk" / os.listdir(base / "saves_to_full_disk")[0] / "big.txt"
    assert recorder.summary.failures == [
        ("saves_to_full_disk", f'ResultsStoreError: Task "saves_to_full_disk": "big" cannot be written to {path}: '
                               f"No space left on device (errno 28).")]


def test_a_file_name_too_long_fails_the_task_naming_it(tmp_path, recorder):
    """An object name longer than the file system allows fails its task, naming the path."""
    flow = with_others(TaskSpec(task=t.saves_long_name), 1)
    flow.run(results_store=LocalFileStore(str(tmp_path / "s")), exit_on_error=False, observers=[recorder],
             num_workers=1)
    [(name, text)] = recorder.summary.failures
    assert name == "saves_long_name" and "File name too long (errno 36)" in text and "n" * 300 + ".p" in text
    assert recorder.state("produce") == "finished"


def test_an_info_that_cannot_be_written_stops_the_run(tmp_path, recorder):
    """When the store cannot record a task's state, the run stops whatever exit_on_error says; the
    tasks that did not start are listed as not run."""
    flow = with_others(TaskSpec(task=t.blocks_its_info), 1, 2)
    with pytest.raises(ResultsStoreError, match=r'"fluidml_info" cannot be written to .*fluidml_info.json'):
        flow.run(results_store=LocalFileStore(str(tmp_path / "s")), exit_on_error=False, observers=[recorder],
                 num_workers=1)
    assert recorder.state("blocks_its_info") == "failed"
    assert recorder.state("produce-1") == recorder.state("produce-2") == "pending"
    assert_every_task_final(recorder, flow)


@pytest.mark.parametrize("options", POOL_OR_LOCAL)
def test_a_run_removed_while_it_is_written_says_so(tmp_path, recorder, options):
    """Another process's force (delete_run) removes the run a task is writing: the error says so,
    instead of naming a hidden temporary file."""
    base = tmp_path / "store"
    with pytest.raises(ResultsStoreError) as error:
        Flow([TaskSpec(task=t.removes_its_run)]).run(results_store=LocalFileStore(str(base)), run_name="r",
                                                     observers=[recorder], **options)
    run_dir = base / "removes_its_run" / "r-000"
    assert not run_dir.exists()
    assert str(error.value).startswith(f'Task "removes_its_run": its run directory {run_dir} was removed while "x" '
                                       f"was written to it (by another process: a flow.run with force, or delete_run).")
    assert ".~" not in str(error.value)


# ----------------------------------------------------------------------------------- input refused up front


def test_a_run_name_longer_than_a_file_name_is_refused():
    """A run name whose run directories could not be created is refused before anything runs."""
    flow = Flow([TaskSpec(task=t.produce, config={"value": 1})])
    with pytest.raises(RunConfigError, match="run_name is 300 bytes long.*at most 247 bytes"):
        flow.run(run_name="r" * 300)
    assert flow.run(run_name="r" * 247)["produce"][0].results == {"x": 1}


def test_config_keys_that_collide_in_json_are_refused():
    """Keys that become the same JSON key (1 and "1", True and "true") are refused at TaskSpec,
    naming the spec and the key; tuples stay lists (and axes of a grid)."""
    with pytest.raises(TaskSpecError, match=r'Task "produce": the config keys \[1, \'1\'\] at "value" become the '
                                            r'same key "1"') as error:
        TaskSpec(task=t.produce, config={"value": {1: "a", "1": "b"}})
    assert error.value.key == "value"
    with pytest.raises(TaskSpecError, match=r"\[True, 'true'\]"):
        TaskSpec(task=t.produce, config={"value": [{"x": {True: 1, "true": 2}}]})
    spec = TaskSpec(task=t.produce, config={"value": {1: "a", 2: "b"}})
    assert spec.config == {"value": {"1": "a", "2": "b"}}
    assert Flow([TaskSpec(task=t.produce, config={"value": (1, 2)}, expand="product")]).num_tasks == 2
