"""Layered (Sugiyama) layout of a task graph with grandalf, shared by the console and the interactive view.

Each weakly connected component is laid out on its own (the original laid out only the first one).
A long edge gets a one-column "dummy" slot in every layer it crosses, so that nothing is drawn
through a node. Coordinates are in the caller's units: node widths come from ``width_of``.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import networkx as nx

__all__ = ["ComponentLayout", "Slot", "check_graph", "layered_layout", "node_label"]


@dataclass(eq=False)
class Slot:
    """A node, or the point where a long edge crosses a layer (``key is None``)."""

    key: Any
    label: str
    rank: int
    width: int
    x: float = 0.0  # centre
    succ: List["Slot"] = field(default_factory=list)  # next slots on the edges that leave this one
    pred: List["Slot"] = field(default_factory=list)

    @property
    def dummy(self) -> bool:
        return self.key is None


@dataclass
class ComponentLayout:
    """One connected component: its layers (top to bottom, each sorted left to right) and edges
    (each the chain of slots from source to target)."""

    layers: List[List[Slot]]
    edges: List[List[Slot]]

    @property
    def width(self) -> float:
        return max((s.x + s.width / 2 for layer in self.layers for s in layer), default=0.0)


def check_graph(graph: Any, function: str) -> None:
    """Raises a clear error unless ``graph`` is an acyclic networkx graph."""
    if not isinstance(graph, nx.Graph):
        raise TypeError(
            f"{function} takes a networkx graph such as flow.task_spec_graph or flow.task_graph, "
            f"got {type(graph).__name__}."
        )
    if graph.is_directed() and not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(graph))
        raise ValueError(f"{function} draws acyclic graphs; this one has a cycle: {cycle}.")


def node_label(node: Any) -> str:
    """The text shown for a node: its name on one line."""
    return " ".join(str(node).split())


def layered_layout(graph: nx.Graph, width_of: Callable[[str], int], xspace: float, height: float = 3,
                   dummy_width: int = 1) -> List[ComponentLayout]:
    """Lays out every weakly connected component of ``graph`` (in node order) with grandalf's
    Sugiyama layout; within a layer, slots keep at least ``xspace`` between them."""
    components = (nx.weakly_connected_components(graph) if graph.is_directed()
                  else nx.connected_components(graph))
    order = {node: i for i, node in enumerate(graph.nodes)}
    layouts = []
    for nodes in components:
        members = sorted(nodes, key=order.__getitem__)
        edges = [(u, v) for u, v in graph.subgraph(members).edges if u != v]
        layouts.append(_layout_component(members, edges, width_of, xspace, height, dummy_width))
    return layouts


class _View:
    def __init__(self, w: float, h: float):
        self.w, self.h = w, h
        self.xy = (0.0, 0.0)


def _layout_component(nodes: List[Any], edges: List[tuple], width_of: Callable[[str], int], xspace: float,
                      height: float, dummy_width: int) -> ComponentLayout:
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import DummyVertex, SugiyamaLayout

    class _Vertex(Vertex):  # grandalf keeps vertices and edges in sets: stable hashes, stable layouts
        def __init__(self, data: Any, index: int):
            super().__init__(data)
            self._stable_hash = index

        def __hash__(self) -> int:
            return self._stable_hash

    class _Edge(Edge):
        def __init__(self, x: Any, y: Any, index: int):
            super().__init__(x, y)
            self._stable_hash = index

        def __hash__(self) -> int:
            return self._stable_hash

    vertices = {node: _Vertex(node, i) for i, node in enumerate(nodes)}
    for node, vertex in vertices.items():
        vertex.view = _View(width_of(node_label(node)), height)
    g_edges = [_Edge(vertices[u], vertices[v], i) for i, (u, v) in enumerate(edges)]
    component = Graph(list(vertices.values()), g_edges).C[0]
    sugiyama = SugiyamaLayout(component)
    sugiyama.xspace, sugiyama.yspace = xspace, height
    sugiyama.dw, sugiyama.dh = dummy_width, height  # long edges take one column per layer
    sugiyama.init_all(roots=[v for v in component.sV if not v.e_in()], optimize=True)
    sugiyama.draw()

    slots: Dict[Any, Slot] = {}

    def slot_of(vertex: Any, rank: int) -> Slot:
        slot = slots.get(vertex)
        if slot is None:
            dummy = isinstance(vertex, DummyVertex)
            key = None if dummy else vertex.data
            slot = Slot(key, "" if dummy else node_label(key), rank,
                        dummy_width if dummy else int(vertex.view.w), float(vertex.view.xy[0]))
            slots[vertex] = slot
        return slot

    layers = [[slot_of(v, rank) for v in layer] for rank, layer in enumerate(sugiyama.layers)]
    chains = []
    for edge in g_edges:
        ctrl: Optional[Dict[int, Any]] = sugiyama.ctrls.get(edge)
        path = [ctrl[r] for r in sorted(ctrl)] if ctrl else [edge.v[0], edge.v[1]]
        chain = [slot_of(v, sugiyama.grx[v].rank) for v in path]
        for a, b in zip(chain, chain[1:]):
            a.succ.append(b)
            b.pred.append(a)
        chains.append(chain)
    _separate(layers, xspace)
    return ComponentLayout(layers, chains)


def _separate(layers: List[List[Slot]], xspace: float) -> None:
    """Sorts each layer by x and pushes slots apart so that none overlap; the leftmost edge is 0."""
    for layer in layers:
        layer.sort(key=lambda s: s.x)
        for left, right in zip(layer, layer[1:]):
            right.x = max(right.x, left.x + (left.width + right.width) / 2 + xspace)
    shift = min((s.x - s.width / 2 for layer in layers for s in layer), default=0.0)
    for layer in layers:
        for slot in layer:
            slot.x -= shift
