"""The networkx-free spec graph a Flow builds and runs with gives networkx's orders and answers,
so task order, unique names and ``flow.task_spec_graph`` are those of before."""

import random

import networkx as nx
import pytest

from fluidml import Flow, TaskSpec
from fluidml.exception import CyclicGraphError
from fluidml.graph import build_spec_graph
from fluidml.spec_graph import SpecGraph


def noop():
    return None


def random_specs(seed: int, size: int) -> list:
    rng = random.Random(seed)
    specs = [TaskSpec(task=noop, name=f"t{i}") for i in range(size)]
    for i, spec in enumerate(specs):
        for pred in rng.sample(specs[:i], k=min(i, rng.randint(0, 3))):
            spec.requires(pred)
    rng.shuffle(specs)  # a predecessor may come after its successor in the list
    return specs


@pytest.mark.parametrize("seed", range(12))
def test_orders_and_reachability_equal_networkx(seed):
    specs = random_specs(seed, 15)
    ours, theirs = SpecGraph(specs), build_spec_graph(specs)
    assert list(ours) == list(theirs.nodes)
    assert ours.topological_order() == list(nx.topological_sort(theirs))
    for name in theirs.nodes:
        assert ours.ancestors(name) == nx.ancestors(theirs, name)
        assert ours.descendants(name) == nx.descendants(theirs, name)
    assert list(ours.to_networkx().edges) == list(theirs.edges)


def test_flow_builds_its_networkx_spec_graph_on_first_access():
    a, b = TaskSpec(task=noop, name="A"), TaskSpec(task=noop, name="B")
    b.requires(a)
    flow = Flow([b])
    assert flow._task_spec_graph is None
    graph = flow.task_spec_graph
    assert isinstance(graph, nx.DiGraph) and list(graph.edges) == [("A", "B")] and graph.nodes["B"]["task"] is b
    assert flow.task_spec_graph is graph


def test_a_cycle_is_named_as_before():
    a, b = TaskSpec(task=noop, name="A"), TaskSpec(task=noop, name="B")
    b.requires(a)
    a.requires(b)
    with pytest.raises(CyclicGraphError, match="The task graph has a cycle: "):
        SpecGraph([a, b])
