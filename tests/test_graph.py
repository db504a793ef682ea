"""Flow construction: spec graph, expanded task graph, naming, reduce configs and graph errors."""

import os

import networkx as nx
import pytest

from fluidml import Flow, TaskSpec
from fluidml.exception import CyclicGraphError, GridSearchExpansionError, NoTasksError, TaskNameError, TaskSpecError


def spec(name, config=None, expand=None, reduce=None, requires=()):
    s = TaskSpec(task=_noop, name=name, config=config, expand=expand, reduce=reduce)
    s.requires(*requires)
    return s


def _noop(task, **kwargs):
    task.save(kwargs, "kwargs")


def test_no_tasks_is_an_error():
    """Flow([]) raises NoTasksError."""
    with pytest.raises(NoTasksError):
        Flow([])


def test_two_specs_with_one_name_are_an_error():
    """Specs with the same name would share results, so Flow refuses them, naming the name."""
    with pytest.raises(TaskNameError, match='Two task specs are named "_noop"'):
        Flow([TaskSpec(task=_noop, config={"a": 1}), TaskSpec(task=_noop, config={"a": 2})])


def test_cycles_are_reported_with_their_nodes():
    """A cycle in the spec graph raises CyclicGraphError naming the tasks on it."""
    a, b = spec("p1"), spec("p2")
    a.requires(b)
    b.requires(a)
    with pytest.raises(CyclicGraphError, match=r"p\d -> p\d -> p\d") as error:
        Flow([a, b])
    assert error.value.task_name in ("p1", "p2")


def test_unlisted_predecessors_are_added_transitively():
    """Predecessors missing from the list (and theirs) become part of the flow."""
    x = spec("x")
    b = spec("b", requires=[x])
    a = spec("a")
    c = spec("c", requires=[a, b])
    flow = Flow([c])
    assert set(flow.task_spec_graph.nodes) == {"a", "b", "c", "x"}
    assert set(flow.task_graph.nodes) == {"a", "b", "c", "x"}


def test_graph_objects_and_attributes():
    """Both graphs are named networkx DiGraphs holding specs and tasks; edges run pred -> succ."""
    a = spec("A", {"x": [1, 2]}, "product")
    b = spec("B", requires=[a])
    flow = Flow([a, b])
    assert isinstance(flow.task_spec_graph, nx.DiGraph) and flow.task_spec_graph.name == "task spec graph"
    assert flow.task_spec_graph.nodes["A"]["task"] is a
    assert list(flow.task_spec_graph.edges) == [("A", "B")]
    assert flow.task_graph.name == "task graph"
    assert list(flow.task_graph.nodes) == ["A-1", "A-2", "B-1", "B-2"]
    assert list(flow.task_graph.edges) == [("A-1", "B-1"), ("A-2", "B-2")]
    assert flow.task_graph.nodes["B-2"]["task"].predecessors == [flow.task_graph.nodes["A-2"]["task"]]
    assert flow.num_tasks == 4


def test_successor_configs_multiply_in_order():
    """A(2) -> B(grid of 3) gives 6 B tasks: B's configs for A-1 first, then for A-2."""
    a = spec("A", {"x": [1, 2]}, "product")
    b = spec("B", {"y": [1, 2, 3]}, "product", requires=[a])
    flow = Flow([a, b])
    bs = [flow.task_graph.nodes[f"B-{i}"]["task"] for i in range(1, 7)]
    assert [(dict(t.unique_config)["A"]["x"], dict(t.unique_config)["B"]["y"]) for t in bs] == [
        (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)
    ]


def test_reduce_unique_config_is_written_as_a_grid():
    """The reducer's unique config merges its sweeps back into grid notation, own entry last."""
    a = spec("A", {"x": [1, 2]}, "product")
    b = spec("B", {"y": [1, 2, 3]}, "product", requires=[a])
    c = spec("C", reduce=True, requires=[b])
    task = Flow([a, b, c]).task_graph.nodes["C"]["task"]
    assert dict(task.unique_config) == {"A": {"x": [1, 2]}, "B": {"y": [1, 2, 3]}, "C": {}}
    assert len(task.predecessors) == 6


def test_reducer_predecessors_are_unique():
    """A reducer over two specs lists every upstream task once (the original repeated them)."""
    d = spec("D", {"d": [1, 2, 3, 4]}, "product")
    c = spec("Cc", {"c": [1, 2]}, "product")
    r = spec("R", reduce=True, requires=[d, c])
    task = Flow([d, c, r]).task_graph.nodes["R"]["task"]
    assert [t.unique_name for t in task.predecessors] == ["D-1", "Cc-1", "Cc-2", "D-2", "D-3", "D-4"]


def test_unique_names_only_number_expanded_names():
    """A name with one task keeps it bare; several tasks are numbered from 1."""
    flow = Flow([spec("solo"), spec("many", {"k": [1, 2, 3]}, "product")])
    assert list(flow.task_graph.nodes) == ["solo", "many-1", "many-2", "many-3"]


def test_expansion_errors_surface_at_flow_construction():
    """An unknown expand id is reported by Flow(...), naming the task."""
    with pytest.raises(GridSearchExpansionError, match='Task "bad": unknown expand method "cube"'):
        Flow([spec("bad", {"a": [1]}, "cube")])


def test_predecessors_that_never_agree_are_an_error():
    """A task whose predecessors have no consistent combination is reported, not silently dropped."""
    a = spec("A", {"x": [1, 2]}, "product")
    r = spec("R", reduce=True, requires=[a])
    s = spec("S", requires=[a, r])
    t = spec("T", requires=[s, a])
    with pytest.raises(GridSearchExpansionError, match='Task "T": its predecessors'):
        Flow([a, r, s, t])


def test_reduce_without_predecessors_is_an_error():
    """A reduce spec that requires nothing has nothing to reduce."""
    with pytest.raises(TaskSpecError, match='"R" is a reduce task but requires no other task'):
        Flow([spec("R", reduce=True)])


def test_flow_prefixes_apply_to_specs_without_their_own():
    """Flow-level ignore/group prefixes fill in for specs that set none; a spec's own wins."""
    plain = TaskSpec(task=_noop, name="plain", config={"_i": 1, "a": [1, 2, "@g"], "b": [3, 4, "@g"]},
                     expand="product")
    own = TaskSpec(task=_noop, name="own", config={"#i": 1, "a": [1, 2]}, expand="product",
                   config_ignore_prefix="#")
    flow = Flow([plain, own], config_ignore_prefix="_", config_group_prefix="@")
    assert plain.config_ignore_prefix == "_" and own.config_ignore_prefix == "#"
    assert [dict(flow.task_graph.nodes[f"plain-{i}"]["task"].unique_config) for i in (1, 2)] == [
        {"plain": {"a": 1, "b": 3}}, {"plain": {"a": 2, "b": 4}}
    ]
    assert dict(flow.task_graph.nodes["own-1"]["task"].config) == {"i": 1, "a": 1}


def test_optimal_number_of_workers():
    """The widest level of A(2) -> B(6) -> C(1) is 6, capped by the CPUs."""
    a = spec("A", {"x": [1, 2]}, "product")
    b = spec("B", {"y": [1, 2, 3]}, "product", requires=[a])
    c = spec("C", reduce=True, requires=[b])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert Flow([a, b, c]).optimal_num_workers == min(6, cpus)


def test_a_large_grid_builds():
    """A grid of 20 000 values with a successor and a reducer expands to 40 001 linked tasks."""
    a = spec("A", {"x": list(range(20000))}, "product")
    b = spec("B", requires=[a])
    c = spec("C", reduce=True, requires=[b])
    flow = Flow([a, b, c])
    assert flow.num_tasks == 40001
    reducer = flow.task_graph.nodes["C"]["task"]
    assert len(reducer.predecessors) == 20000
    assert dict(reducer.unique_config)["A"]["x"] == list(range(20000))
