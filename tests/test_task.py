"""The Task API outside a run: construction, bookkeeping properties and store access."""

import datetime

import pytest

import pipelines as p
from fluidml import Flow, Task, TaskSpec
from fluidml._metadict import MetaDict
from fluidml.storage import InMemoryStore
from fluidml.task import PROTECTED_NAMES, TaskInfo, TaskResults, TaskState


def bound_task(name="A", unique_config=None):
    """A task wired to a fresh in-memory store, as the driver would wire it."""
    task = p.Counter(name=name, run_name="run", project_name="proj", results_store=InMemoryStore(),
                     unique_config=unique_config or {name: {"x": 1}})
    task.unique_config_hash = "abcdefgh"
    return task


def test_task_state_values_and_order():
    """TaskState is a str enum with the original's values and order."""
    assert [s.value for s in TaskState] == [
        "pending", "scheduled", "running", "killed", "failed", "upstream_failed", "finished"
    ]
    assert TaskState.FINISHED == "finished"


def test_task_info_fields():
    """TaskInfo has exactly the documented fields and stores the state as its string value."""
    assert list(TaskInfo.model_fields) == [
        "project_name", "run_name", "state", "started", "ended", "duration", "run_history",
        "sweep_counter", "unique_config_hash", "id",
    ]
    info = TaskInfo(project_name="p", run_name="r", state=TaskState.FAILED)
    assert info.state == "failed" and info.model_dump(mode="json")["state"] == "failed"
    with pytest.raises(ValueError):
        TaskInfo(run_name="r")


def test_task_results_fields():
    """TaskResults holds the task name, unique name, unique config and results."""
    r = TaskResults(task_name="a", task_unique_name="a-1", unique_config={"a": {}}, results={"m": object})
    assert (r.task_name, r.task_unique_name, r.unique_config, r.results) == ("a", "a-1", {"a": {}}, {"m": object})


def test_direct_construction_sets_defaults():
    """A task built directly has its class name as name and empty bookkeeping."""
    task = p.Scale(factor=3)
    assert task.name == "Scale" and task.unique_name == "Scale"
    assert task.factor == 3 and task.state is None and task.predecessors == []
    assert task.run_name is None and task.results_store is None


def test_super_init_inside_a_flow_keeps_the_bookkeeping():
    """Once a task is initialised, a second Task.__init__ (the user's super().__init__()) is a no-op."""
    task = p.Counter(name="kept")
    Task.__init__(task, name="lost")
    assert task.name == "kept"


def test_id_uses_the_sweep_counter_or_the_hash():
    """id is "<run_name>-<sweep_counter>", or "<run_name>-<hash>" without a counter."""
    task = bound_task()
    assert task.id == "run-abcdefgh"
    task.sweep_counter = "003"
    assert task.id == "run-003"


def test_duration_while_running_and_after():
    """duration counts up while running and is ended - started afterwards."""
    task = bound_task()
    assert task.duration is None
    task.started = datetime.datetime.now() - datetime.timedelta(seconds=5)
    task.state = TaskState.RUNNING
    assert task.duration >= datetime.timedelta(seconds=5)
    task.ended = task.started + datetime.timedelta(seconds=2)
    assert task.duration == datetime.timedelta(seconds=2)


def test_info_snapshot():
    """info is a TaskInfo of the current bookkeeping, also before any run."""
    task = bound_task()
    task.state = TaskState.FINISHED
    info = task.info
    assert (info.project_name, info.run_name, info.state, info.id) == ("proj", "run", "finished", "run-abcdefgh")
    assert p.Counter().info.run_name == ""


def test_save_load_delete_through_the_task():
    """save/load/delete default to the task's own run and keep its results registry."""
    task = bound_task()
    task.save({"a": 1}, "obj")
    task.save(2, "other")
    assert task.load("obj") == {"a": 1}
    assert task.results_store.get_results("A", task.unique_config) == {"obj": {"a": 1}, "other": 2}
    task.delete("obj")
    assert task.load("obj") is None
    assert task.results_store.load(".saved_results", "A", task.unique_config) == ["other"]


def test_reserved_names_cannot_be_saved():
    """fluidml_info and .saved_results belong to fluidml."""
    task = bound_task()
    for name in ("fluidml_info", ".saved_results"):
        with pytest.raises(ValueError, match="reserved"):
            task.save(1, name)


def test_delete_of_another_task_updates_that_tasks_registry():
    """delete(name, task_name=other) removes the name from the other run's registry."""
    store = InMemoryStore()
    upstream = bound_task("U", {"U": {}})
    upstream.results_store = store
    upstream.save(1, "v")
    downstream = bound_task("D", {"U": {}, "D": {}})
    downstream.results_store = store
    downstream.delete("v", task_name="U", task_unique_config={"U": {}})
    assert store.load(".saved_results", "U", {"U": {}}) == []
    assert store.get_results("U", {"U": {}}) is None


def test_load_of_another_task_needs_its_exact_config_outside_a_flow():
    """A task built by hand (no flow graph) loads another task's object with that run's config."""
    store = InMemoryStore()
    upstream = bound_task("U", {"U": {"k": 1}})
    upstream.results_store = store
    upstream.save("hello", "greeting")
    downstream = bound_task("D", {"U": {"k": 1}, "D": {"m": 2}})
    downstream.results_store = store
    assert downstream.load("greeting", task_name="U", task_unique_config={"U": {"k": 1}}) == "hello"
    assert downstream.load("greeting") is None  # its own run has no such object


def test_load_from_an_ancestor_with_the_default_config():
    """In a flow, load(name, task_name=ancestor) finds the ancestor's run inside this task's config."""
    def greet(word, task):
        task.save(word, "greeting")

    def listen(task, level):
        task.save(task.load("greeting", task_name="greet"), "heard")

    a = TaskSpec(task=greet, config={"word": ["hi", "yo"]}, expand="product")
    b = TaskSpec(task=p.double, name="middle", additional_kwargs={"x": 1})
    c = TaskSpec(task=listen, config={"level": 3})
    b.requires(a)
    c.requires(b)
    results = Flow([a, b, c]).run(num_workers=1)
    assert [r.results["heard"] for r in results["listen"]] == ["hi", "yo"]


def test_delete_run_and_store_context():
    """delete_run removes the task's run; the in-memory store has no context to give."""
    task = bound_task()
    task.save(1, "v")
    assert task.get_store_context() is None
    task.delete_run()
    assert task.load("v") is None


def test_open_registers_writes_and_returns_none_in_memory():
    """open() for writing registers the name; the in-memory store has no files, so it returns None."""
    task = bound_task()
    assert task.open("stream", mode="w", type_="text") is None
    assert task.results_store.load(".saved_results", "A", task.unique_config) == ["stream"]


def test_store_access_without_a_store_explains_itself():
    """Using save() outside a run names the task and what to do."""
    with pytest.raises(RuntimeError, match='Task "Counter" has no results store'):
        p.Counter().save(1, "v")


def test_configs_are_metadicts():
    """config and unique_config allow attribute access (MetaDict)."""
    task = p.Counter(config={"a": {"b": 1}}, unique_config={"Counter": {"a": {"b": 1}}})
    assert isinstance(task.config, MetaDict) and task.config.a.b == 1
    assert isinstance(task.unique_config, MetaDict) and task.unique_config.Counter.a.b == 1


def test_from_spec_half_initialized_and_full():
    """from_spec copies the spec's identity; half-initialized class tasks skip the user's __init__."""
    spec = TaskSpec(task=p.Scale, config={"factor": 4}, name="scaler")
    half = Task.from_spec(spec, half_initialize=True)
    assert half.name == "scaler" and not hasattr(half, "factor") and half.config == {"factor": 4}
    full = Task.from_spec(spec)
    assert full.factor == 4 and full.name == "scaler"
    fn = Task.from_spec(TaskSpec(task=p.source, config={"value": 1}))
    assert fn.task is p.source and fn.config == {"value": 1}


def test_protected_names_cover_task_attributes():
    """Config keys of class tasks may not shadow Task attributes and methods."""
    for name in ("name", "config", "run", "save", "load", "id", "info", "state", "resource", "results_store",
                 "predecessors", "run_name", "unique_config"):
        assert name in PROTECTED_NAMES
