"""The graph of a Flow's task specs, without networkx: what building and running a flow need
(names, topological order, ancestors, descendants). ``Flow.task_spec_graph``, the documented
``networkx.DiGraph``, is made from it on first access (``to_networkx``), so that defining and
running a flow do not import networkx.
"""

from typing import TYPE_CHECKING, Dict, Iterator, List, Sequence, Set

if TYPE_CHECKING:
    import networkx as nx

    from fluidml.task_spec import TaskSpec

__all__ = ["SpecGraph"]


class SpecGraph:
    """Specs by name, with their edges, in the order networkx would hold them (a predecessor named
    by an edge before its own node comes first), so orders and views are those of the networkx graph.
    Raises ``CyclicGraphError`` (from ``graph.build_spec_graph``) on a cycle."""

    def __init__(self, specs: Sequence["TaskSpec"]):
        self.specs: Dict[str, "TaskSpec"] = {}
        self.successors: Dict[str, List[str]] = {}
        self.predecessors: Dict[str, List[str]] = {}
        for spec in specs:
            self._add(spec.name)
            self.specs[spec.name] = spec
            for pred in spec.predecessors:
                self._add(pred.name)
                if spec.name not in self.successors[pred.name]:
                    self.successors[pred.name].append(spec.name)
                    self.predecessors[spec.name].append(pred.name)
        self._order = self._topological_order()
        if len(self._order) < len(self.successors):  # a cycle: networkx finds and names it
            from fluidml.graph import build_spec_graph

            build_spec_graph(list(self.specs.values()))

    def _add(self, name: str) -> None:
        if name not in self.successors:
            self.successors[name] = []
            self.predecessors[name] = []

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __iter__(self) -> Iterator[str]:
        return iter(self.successors)

    def _topological_order(self) -> List[str]:
        """Kahn's algorithm by generations, visiting nodes and successors in insertion order: the
        order of ``networkx.topological_sort`` on the same graph."""
        indegree = {name: len(preds) for name, preds in self.predecessors.items() if preds}
        generation = [name for name, preds in self.predecessors.items() if not preds]
        order: List[str] = []
        while generation:
            order.extend(generation)
            following = []
            for name in generation:
                for child in self.successors[name]:
                    indegree[child] -= 1
                    if not indegree[child]:
                        following.append(child)
                        del indegree[child]
            generation = following
        return order

    def topological_order(self) -> List[str]:
        """Spec names, each after all its predecessors."""
        return list(self._order)

    def ancestors(self, name: str) -> Set[str]:
        return self._reachable(name, self.predecessors)

    def descendants(self, name: str) -> Set[str]:
        return self._reachable(name, self.successors)

    @staticmethod
    def _reachable(name: str, links: Dict[str, List[str]]) -> Set[str]:
        seen: Set[str] = set()
        stack = list(links[name])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(links[node])
        return seen

    def to_networkx(self) -> "nx.DiGraph":
        """The documented ``Flow.task_spec_graph``: nodes are spec names with attribute ``task``."""
        from fluidml.graph import build_spec_graph

        return build_spec_graph(list(self.specs.values()))
