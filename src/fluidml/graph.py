"""From specs to the expanded task graph: spec graph, predecessor combinations, reduce, naming.

For each spec, in topological order, the tasks of its predecessor specs are combined (first
predecessor slowest). A combination is valid when its non-reduce members agree on every ancestor's
config they share (this keeps diamonds consistent); valid combinations are found with a hash join
on the shared ancestors, so a diamond over n configs costs O(n), not O(n**2). A normal spec makes
one task per valid combination and expanded config; a reduce spec makes one task that requires
every task of every valid combination; a group reducer (``reduce="seed"``) makes one such task per
group of combinations (see _reduce_groups.py) and, like a normal task, takes part in the agreement
check, on its ancestors' configs without the keys it reduced.
"""

import collections
import contextlib
import gc
import itertools
import json
import os
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterator, List, Sequence, Tuple


from fluidml._reduce_groups import Key, group_combinations
from fluidml.config import copy_json, prepared_config, relevant_config
from fluidml.exception import CyclicGraphError, GridSearchExpansionError, TaskNameError, TaskSpecError
from fluidml.spec_graph import SpecGraph
from fluidml.task import Task, task_for_spec
from fluidml.task_spec import TaskSpec

if TYPE_CHECKING:  # networkx is imported when a graph is built (it is slow to import)
    import networkx as nx

__all__ = [
    "build_spec_graph", "build_task_graph", "collect_specs", "expand_specs", "gc_paused", "optimal_num_workers"
]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector while a graph is built: building creates many linked
    objects and no garbage, and the collector would rescan them again and again (about 70% of the
    build time of 100 000 tasks). The previous state is restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collect_specs(tasks: Sequence[Any]) -> List[TaskSpec]:
    """The listed specs plus every predecessor reachable from them, each once, listed ones first."""
    specs: List[TaskSpec] = []
    seen: Dict[int, TaskSpec] = {}
    names: Dict[str, TaskSpec] = {}
    queue = collections.deque(tasks)
    while queue:
        spec = queue.popleft()
        if not isinstance(spec, TaskSpec):
            raise TaskSpecError(f"Flow takes TaskSpec objects, got {spec!r} ({type(spec).__name__}).")
        if id(spec) in seen:
            continue
        other = names.get(spec.name)
        if other is not None:
            raise TaskNameError(
                f'Two task specs are named "{spec.name}". Names identify tasks and their results; give '
                f"each spec its own name with TaskSpec(..., name=...).",
                task_name=spec.name,
            )
        seen[id(spec)] = spec
        names[spec.name] = spec
        specs.append(spec)
        queue.extend(spec.predecessors)
    return specs


def build_spec_graph(specs: Sequence[TaskSpec]) -> "nx.DiGraph":
    """The spec graph (nodes: spec names with attribute ``task``); raises on cycles."""
    import networkx as nx

    graph = nx.DiGraph(name="task spec graph")
    for spec in specs:
        graph.add_node(spec.name, task=spec)
        for pred in spec.predecessors:
            graph.add_edge(pred.name, spec.name)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    nodes = list(dict.fromkeys(node for edge in cycle for node in edge[:2]))
    raise CyclicGraphError(
        f"The task graph has a cycle: {' -> '.join(nodes + nodes[:1])}. Remove one of these requires().",
        task_name=nodes[0],
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, _Distinct):
        return value.values
    raise TypeError(type(value).__name__)


class _UniqueConfigKeys(dict):
    """Spec name -> the task names in its tasks' unique configs (itself and its ancestors),
    computed on first use: only specs with several predecessors need them."""

    def __init__(self, spec_graph: SpecGraph):
        super().__init__()
        self.spec_graph = spec_graph

    def __missing__(self, name: str) -> frozenset:
        keys = self[name] = frozenset(self.spec_graph.ancestors(name) | {name})
        return keys

    def __reduce__(self) -> Any:
        """Pickles as a plain dict with every spec's entry (worker processes need no graph)."""
        return dict, ({name: self[name] for name in self.spec_graph},)

    def get(self, name: str, default: Any = None) -> Any:
        """The keys of a task of this flow, or ``default`` for a name the flow does not have."""
        return self[name] if name in self.spec_graph else default


#: Spec name of a group reducer -> {ancestor name: the keys of its config that the reducer reduced}.
Reduced = Dict[str, Dict[str, FrozenSet[str]]]
#: What two members of a combination compare: an ancestor's config without some of its keys.
_Field = Tuple[str, FrozenSet[str]]


def _fields(mine: frozenset, mine_reduced: Dict[str, FrozenSet[str]], others: List[Tuple[frozenset, Dict]]) -> List:
    """The fields a member shares with ``others`` (their keys and reduced keys): each shared ancestor's
    config without the keys that either side reduced, sorted."""
    fields = {(name, mine_reduced.get(name, frozenset()) | reduced.get(name, frozenset()))
              for keys, reduced in others for name in mine & keys}
    return sorted(fields, key=lambda field: (field[0], sorted(field[1])))


def _field_value(task: Task, field: _Field) -> str:
    entry = task._uc()[field[0]]
    if field[1]:
        entry = {key: value for key, value in entry.items() if key not in field[1]}
    return _canonical(entry)


def _valid_combinations(spec: TaskSpec, tasks_of: Dict[str, List[Task]], keys_of: Dict[str, frozenset],
                        specs: Dict[str, TaskSpec], reduced_of: Reduced) -> List[Tuple[Task, ...]]:
    """Combinations of predecessor tasks (first predecessor slowest) whose non-reduce members (and
    group reducers) agree on every shared ancestor's config."""
    pred_names = [p.name for p in spec.predecessors]
    checked = [not specs[name].reduce or name in reduced_of for name in pred_names]
    overlap = False
    if sum(checked) > 1:  # (keys_of is only computed where two members could disagree)
        seen: set = set()
        for name in itertools.compress(pred_names, checked):
            overlap = overlap or bool(keys_of[name] & seen)
            seen |= keys_of[name]
    if not overlap:  # nothing to agree on: every combination is valid
        return list(itertools.product(*(tasks_of[name] for name in pred_names)))
    members_of = [(keys_of[n], reduced_of.get(n, {})) for n in pred_names]
    combos: List[Tuple[Tuple[Task, ...], Dict[_Field, str]]] = [((), {})]
    bound: List[Tuple[frozenset, Dict]] = []
    for position, name in enumerate(pred_names):
        later = [m for m, c in zip(members_of[position + 1:], checked[position + 1:]) if c]
        keep = _fields(*members_of[position], later) if checked[position] else []
        shared = _fields(*members_of[position], bound) if checked[position] else []
        index: Dict[tuple, List[Tuple[Task, Dict[_Field, str]]]] = {}
        for task in tasks_of[name]:
            entries = {f: _field_value(task, f) for f in set(shared) | set(keep)} if shared or keep else {}
            index.setdefault(tuple(entries[k] for k in shared), []).append((task, entries))
        extended = []
        for members, agreed in combos:
            for task, entries in index.get(tuple(agreed[k] for k in shared), ()):
                if keep:
                    merged = dict(agreed)
                    merged.update((k, entries[k]) for k in keep)
                else:
                    merged = agreed
                extended.append((members + (task,), merged))
        combos = extended
        if checked[position]:
            bound.append(members_of[position])
    return [members for members, _ in combos]


def _equality_key(value: Any) -> Any:
    """A hashable stand-in that is equal exactly when the values are (``==``, as the original)."""
    if isinstance(value, (dict, list, _Distinct)):
        return (_Distinct, _canonical(value))
    return value


class _Distinct:
    """The distinct values one config key took across a reducer's predecessors, in order."""

    __slots__ = ("values", "seen")

    def __init__(self) -> None:
        self.values: List[Any] = []
        self.seen: set = set()

    def add(self, value: Any) -> None:
        key = _equality_key(value)
        if key not in self.seen:
            self.seen.add(key)
            self.values.append(value)


def _merge_into(acc: Any, value: Any) -> Any:
    """Merges one more predecessor value into the accumulated one: equal values stay, dicts merge
    key by key, different values collect as distinct values (in order of appearance)."""
    if isinstance(acc, _Distinct):
        acc.add(value)
        return acc
    if isinstance(acc, dict) and isinstance(value, dict):
        for key, item in value.items():
            acc[key] = _merge_into(acc[key], item) if key in acc else copy_json(item)
        return acc
    if _equality_key(acc) == _equality_key(value):
        return acc
    distinct = _Distinct()
    distinct.add(acc)
    distinct.add(value)
    return distinct


def _plain(value: Any) -> Any:
    if isinstance(value, _Distinct):
        return [_plain(v) for v in value.values]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _grid_notation(value: Any) -> Any:
    """Writes merged values back as a grid: distinct values become a list, a plain list value is
    wrapped once more (so it reads as one literal value), dicts recursively."""
    if isinstance(value, _Distinct):
        return [_plain(v) for v in value.values]
    if isinstance(value, dict):
        return {k: _grid_notation(v) for k, v in value.items()}
    if isinstance(value, list):
        return [value]
    return value


def _reduce_unique_config(spec: TaskSpec, members: List[Task], specs: Dict[str, TaskSpec],
                          reduced: Sequence[Key] = ()) -> Dict[str, Any]:
    """The members' unique configs merged (see ``_merge_into``), with the spec's own entry last. The
    ``reduced`` keys of a group reducer are lists even where its group holds one value."""
    merged: Dict[str, Any] = {}
    for task in members:
        _merge_into(merged, task._uc())
    for name, key in reduced:
        value = merged.get(name, {}).get(key, _Distinct)
        if value is not _Distinct and not isinstance(value, _Distinct):
            merged[name][key] = _Distinct()
            merged[name][key].add(value)
    rewrite = len(members) > 1
    plain, grid = {}, {}
    for name, value in merged.items():
        if rewrite and specs[name].expand_fn is not None:
            grid[name] = _grid_notation(value)
        else:
            plain[name] = _plain(value)
    return {**plain, **grid, spec.name: relevant_config(spec.config, spec.config_ignore_prefix)}


def expand_specs(spec_graph: SpecGraph) -> List[Task]:
    """Expands every spec and links the tasks; returns them in task order (by spec in topological
    order, then in creation order), with unique names assigned."""
    specs: Dict[str, TaskSpec] = spec_graph.specs
    tasks_of: Dict[str, List[Task]] = {}
    keys_of = _UniqueConfigKeys(spec_graph)
    reduced_of: Reduced = {}
    for name in spec_graph.topological_order():
        spec = specs[name]
        spec._uc_keys = keys_of  # lets a task find upstream runs by a larger config (Task.load)
        if spec.reduce and not spec.predecessors:
            raise TaskSpecError(
                f'Task "{name}" is a reduce task but requires no other task, so it has nothing to reduce; '
                f"add {name}.requires(...) or drop {'reduce=True' if spec.reduce_keys is None else 'its reduce keys'}.",
                task_name=name,
                key="reduce",
            )
        combos = _valid_combinations(spec, tasks_of, keys_of, specs, reduced_of)
        if not combos:
            raise GridSearchExpansionError(
                f'Task "{name}": its predecessors ({", ".join(p.name for p in spec.predecessors)}) have no '
                f"tasks whose configs agree on their shared ancestors, so it would get no tasks.",
                task_name=name,
            )
        if spec.reduce_keys:
            tasks_of[name] = _group_reducer_tasks(spec, combos, specs, keys_of[name] - {name}, reduced_of)
        elif spec.reduce:
            tasks_of[name] = _reduce_tasks(spec, combos, specs)
        else:
            tasks_of[name] = _normal_tasks(spec, combos)
    ordered: List[Task] = []
    owners: Dict[str, str] = {}
    for name in tasks_of:
        group = tasks_of[name]
        for number, task in enumerate(group, start=1):
            task.unique_name = f"{name}-{number}" if len(group) > 1 else name
            other = owners.setdefault(task.unique_name, name)
            if other != name:
                raise TaskNameError(
                    f'The task names "{other}" and "{name}" both give a task the name "{task.unique_name}" '
                    f'(expanded tasks are numbered "<name>-1", "<name>-2", ...); rename one of them.',
                    task_name=task.unique_name,
                )
            task._release_unique_config()  # built again when needed; keeps the graph small
        ordered.extend(group)
    return ordered


def _normal_tasks(spec: TaskSpec, combos: List[Tuple[Task, ...]]) -> List[Task]:
    prefix = spec.config_ignore_prefix
    configs = [(prepared_config(c, prefix), relevant_config(c, prefix)) for c in spec.expand_configs()]
    tasks = []
    for members in combos:
        for prepared, own in configs:
            task = task_for_spec(spec)
            task._config = prepared
            task._uc_own = own  # the unique config is built from the predecessors' when needed
            if members:
                task._predecessors = list(members)
                for member in members:
                    member._successors.append(task)
            tasks.append(task)
    return tasks


def _reduce_tasks(spec: TaskSpec, combos: List[Tuple[Task, ...]], specs: Dict[str, TaskSpec]) -> List[Task]:
    members = list({id(t): t for combo in combos for t in combo}.values())
    task = task_for_spec(spec)
    task._config = prepared_config(spec.config, spec.config_ignore_prefix)
    task._unique_config = _reduce_unique_config(spec, members, specs)
    task._predecessors = members
    for member in members:
        member._successors.append(task)
    return [task]


def _group_reducer_tasks(spec: TaskSpec, combos: List[Tuple[Task, ...]], specs: Dict[str, TaskSpec],
                         upstream: frozenset, reduced_of: Reduced) -> List[Task]:
    """One reduce task per group of combinations (``reduce="seed"``), in order of the groups."""
    reduced, kept, groups = group_combinations(spec, combos, specs, upstream)
    by_name: Dict[str, set] = {}
    for owner, key in reduced:
        by_name.setdefault(owner, set()).add(key)
    reduced_of[spec.name] = {owner: frozenset(keys) for owner, keys in by_name.items()}
    config = prepared_config(spec.config, spec.config_ignore_prefix)
    tasks = []
    for members in groups:
        task = task_for_spec(spec)
        task._config = config
        task._unique_config = _reduce_unique_config(spec, members, specs, reduced)
        task.reduce_keys = reduced
        task._predecessors = members
        for member in members:
            member._successors.append(task)
        entries = task._unique_config
        task._reduce_group = tuple((key, entries[key[0]][key[1]]) for key in kept if key[1] in entries[key[0]])
        tasks.append(task)
    return tasks


def build_task_graph(tasks: Sequence[Task]) -> "nx.DiGraph":
    """The expanded task graph: nodes are unique names with attribute ``task``, edges run from
    predecessor to successor."""
    import networkx as nx

    graph = nx.DiGraph(name="task graph")
    with gc_paused():
        graph.add_nodes_from((task.unique_name, {"task": task}) for task in tasks)
        graph.add_edges_from((pred.unique_name, task.unique_name) for task in tasks for pred in task.predecessors)
    return graph


def optimal_num_workers(tasks: Sequence[Task]) -> int:
    """The most tasks on one level of the graph (level = longest path from a root), capped by the
    CPUs this process may use. ``tasks`` must be in task order (predecessors first)."""
    level: Dict[int, int] = {}
    width: Dict[int, int] = {}
    for task in tasks:
        depth = max((level[id(p)] + 1 for p in task.predecessors), default=0)
        level[id(task)] = depth
        width[depth] = width.get(depth, 0) + 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(max(width.values(), default=1), cpus))
