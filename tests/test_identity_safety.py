"""A run's identity (its unique config) cannot be changed through what fluidml hands out, and
names and cross-task lookups stay right when graphs change."""

from typing import List

import pytest

import fluidml.config
import pipelines as p
from fluidml import Flow, Task, TaskSpec
from fluidml.config import register_expansion
from fluidml.exception import GridSearchExpansionError, TaskNameError, TaskSpecError
from fluidml.runner import RunHistory
from fluidml.storage import InMemoryStore, Sweep


def append_to_config(layers, k, task):
    layers.append(97)
    task.config["layers"].append(99)
    task.unique_config["append_to_config"]["layers"].append(98)
    task.save(1, "done")


def spoil_sweeps(done: List[Sweep], task):
    for sweep in done:
        sweep.config["append_to_config"]["layers"].append(0)
    task.save(len(done), "count")


def test_mutating_configs_handed_out_changes_nothing(make_store, executor_kwargs, recorder):
    """task.config, task.unique_config, Sweep.config and TaskResults.unique_config are copies: changing
    them leaves the stored identity alone, so the next run is served from the store."""
    store = make_store()
    grid = TaskSpec(task=append_to_config, config={"layers": [[1, 2]], "k": [1, 2]}, expand="product")
    red = TaskSpec(task=spoil_sweeps, reduce=True)
    red.requires(grid)
    flow = Flow([grid, red])
    results = flow.run(results_store=store, return_results="all", **executor_kwargs)
    results["append_to_config"][0].unique_config["append_to_config"]["layers"].append(7)
    assert grid.config == {"layers": [[1, 2]], "k": [1, 2]}
    flow.run(results_store=store, observers=[recorder], **executor_kwargs)
    assert recorder.executed == []
    assert flow.task_graph.nodes["append_to_config-1"]["task"].unique_config == {
        "append_to_config": {"layers": [1, 2], "k": 1}
    }


def test_expanded_names_may_not_collide():
    """A spec named like another spec's expanded task ("a-1") is a clear error, not a lost task."""
    a = TaskSpec(task=p.source, name="a", config={"value": [1, 2]}, expand="product")
    clash = TaskSpec(task=p.source, name="a-1", config={"value": 3})
    with pytest.raises(TaskNameError, match='"a" and "a-1" both give a task the name "a-1"'):
        Flow([a, clash])


class Labelled(Task):
    def __init__(self, task):
        super().__init__()
        self.label = task

    def run(self):
        self.save(self.label, "label")


def test_class_tasks_may_take_a_config_key_named_task():
    """"task" is only reserved for function tasks (which receive the Task under that name)."""
    results = Flow([TaskSpec(task=Labelled, config={"task": "ner"})]).run(num_workers=1)
    assert results["Labelled"][0].results == {"label": "ner"}


def greet(word, task):
    task.save(word, "greeting")


def listen(task):
    task.save(task.load("greeting", task_name="greet"), "heard")


def test_cross_task_loads_follow_the_current_graph():
    """After a spec gains a predecessor, a new Flow's tasks find upstream runs with the new configs."""
    a = TaskSpec(task=greet, config={"word": "hi"})
    b = TaskSpec(task=listen)
    b.requires(a)
    assert Flow([a, b]).run(num_workers=1)["listen"][0].results == {"heard": "hi"}
    root = TaskSpec(task=p.source, name="root", config={"value": 1})
    a.requires(root)
    assert Flow([root, a, b]).run(num_workers=1)["listen"][0].results == {"heard": "hi"}


def test_custom_expansions_must_return_configs(monkeypatch):
    """A custom expand method that returns no configs is an error naming the spec and the method."""
    monkeypatch.setattr(fluidml.config, "_CUSTOM_EXPANSIONS", {})
    register_expansion("nothing", lambda config, group_prefix=None: [])
    with pytest.raises(GridSearchExpansionError, match='Task "source": the expand method "nothing"'):
        Flow([TaskSpec(task=p.source, config={"value": 1}, expand="nothing")])


def test_a_config_that_contains_itself_is_explained():
    """A self-referencing config gets a TaskSpecError naming the key, not a RecursionError."""
    config = {"a": []}
    config["a"].append(config)
    with pytest.raises(TaskSpecError, match=r'"a\[0\]" \(a reference to itself\)'):
        TaskSpec(task=p.source, config=config)


class JsonOnlyStore(InMemoryStore):
    """A store that keeps copies made through JSON, like a file or database store."""

    keeps_objects = False

    def save(self, obj, name, task_name, task_unique_config, type_=None, **kwargs):
        import json

        if type_ == "json":
            obj = json.loads(json.dumps(obj))
        super().save(obj, name, task_name, task_unique_config, type_, **kwargs)


def test_run_histories_reach_serializing_stores_as_plain_dicts():
    """Stores that serialize get each task's run history as a plain dict of all its ancestors."""
    store = JsonOnlyStore()
    specs = [TaskSpec(task=p.source, name="t0", config={"value": 0})]
    for i in range(1, 300):
        spec = TaskSpec(task=p.double if i == 1 else _pass, name=f"t{i}")
        spec.requires(specs[-1])
        specs.append(spec)
    flow = Flow(specs)
    flow.run(results_store=store, run_name="deep", num_workers=1)
    info = store.load("fluidml_info", "t299", dict(flow.task_graph.nodes["t299"]["task"].unique_config))
    assert type(info["run_history"]) is dict
    assert list(info["run_history"])[0] == "t299" and len(info["run_history"]) == 300


def _pass(y, task):
    task.save(y, "y")


def test_run_history_reads_like_a_dict():
    """A shared RunHistory flattens with the task first and the first predecessor winning."""
    a = {"A": "r-000"}
    b = RunHistory({"B": "r-001"}, [a])
    c = RunHistory({"C": "r-002"}, [{"A": "other", "X": "r-9"}])
    d = RunHistory({"D": "r-003"}, [b, c])
    assert dict(d) == {"D": "r-003", "B": "r-001", "A": "r-000", "C": "r-002", "X": "r-9"}
    assert d == d.to_dict() and len(d) == 5 and d["A"] == "r-000"
