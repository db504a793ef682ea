"""Group reducers (``TaskSpec(reduce="seed")``): which upstream config keys vary, which of them a
spec names, and the groups of predecessor combinations that agree on every other varying key.

A *key* is a top-level config key of an upstream task, held as a ``(task name, key)`` pair. Each
combination of predecessor tasks (see graph.py) has one value per key: the value in its members'
unique configs (a member lacking the key, e.g. for a ``None`` value, reads as missing; members that
disagree, which only reducers upstream allow, give the set of their values). A key *varies* when
the combinations do not all have the same value for it. A group reducer gets one task per distinct
value of the varying keys it keeps (every varying key but the reduced ones), in order of first
appearance; each group's members are the tasks of its combinations, each once, in order.
"""

import json
from typing import Any, Dict, FrozenSet, List, Sequence, Tuple, Union

from fluidml.exception import TaskSpecError

__all__ = ["Key", "group_combinations", "key_label"]

#: A config key of an upstream task: (task name, top-level key).
Key = Tuple[str, str]

_MISSING = object()  # the value of a key that a combination does not have
_PLAIN = frozenset({str, int, float, bool, type(None), object})  # values that compare as they are


class _Mixed(frozenset):
    """The values one key has among the members of one combination, where they disagree."""


def key_label(key: Key) -> str:
    """How messages and views write a key: ``"train.seed"``."""
    return f"{key[0]}.{key[1]}"


def _value(value: Any) -> Any:
    """A hashable stand-in, equal exactly when the values are (as the reduce merge rule compares)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _combination_entries(combo: Sequence[Any]) -> Dict[str, Any]:
    """{task name: config entry} of a combination: its member's unique config, or the members'
    entries merged (keys where members disagree hold a ``_Mixed`` of their values)."""
    if len(combo) == 1:
        return combo[0]._uc()
    merged: Dict[str, Any] = {}
    for task in combo:
        for name, entry in task._uc().items():
            seen = merged.setdefault(name, entry)
            if seen is not entry and seen != entry:
                mixed = dict(seen)
                for key, value in entry.items():
                    old = mixed.get(key, _MISSING)
                    if old is _MISSING:
                        mixed[key] = value
                    elif _value(old) != _value(value):
                        mixed[key] = _Mixed((old if isinstance(old, _Mixed) else {_value(old)}) | {_value(value)})
                merged[name] = mixed
    return merged


def _varying_keys(rows: List[Dict[str, Any]]) -> Tuple[List[Key], Dict[Key, Any], Dict[Key, List[Any]]]:
    """The keys that vary across the combinations (in order of first appearance), every key with a
    value it has, and each varying key's values by combination. A task's entry that is the same in
    every combination (e.g. a shared ancestor's) is passed over without looking at its keys."""
    first_entries: Dict[str, Any] = {}
    changing = set()
    for row in rows:
        for name, entry in row.items():
            seen = first_entries.setdefault(name, entry)
            if seen is not entry and name not in changing and seen != entry:
                changing.add(name)
    first: Dict[Key, Any] = {}
    columns: Dict[Key, List[Any]] = {}
    for name, entry in first_entries.items():
        if name not in changing and all(name in row for row in rows):
            first.update(((name, key), value) for key, value in entry.items())
            continue
        entries = [row.get(name, {}) for row in rows]
        keys: Any = entry.keys()
        if any(each.keys() != keys for each in entries):
            keys = dict.fromkeys(key for each in entries for key in each)
        for key in keys:
            column = [each.get(key, _MISSING) for each in entries]
            first[(name, key)] = next(value for value in column if value is not _MISSING)
            if not _PLAIN.issuperset(map(type, column)):  # dicts and lists compare by their JSON
                column = [_value(value) for value in column]
            if column.count(column[0]) != len(column):
                columns[(name, key)] = column
    return [key for key in first if key in columns], first, columns


def group_combinations(
    spec: Any, combos: Sequence[Tuple[Any, ...]], specs: Dict[str, Any], upstream: FrozenSet[str]
) -> Tuple[Tuple[Key, ...], List[Key], List[List[Any]]]:
    """The keys ``spec.reduce_keys`` names, the varying keys it keeps, and the members of each group
    (groups in order).

    ``combos`` are the spec's valid predecessor combinations, ``upstream`` the names of its
    ancestors. Raises ``TaskSpecError`` (naming the spec and the keys that vary) for a key that
    is unknown, nested, under an ignore prefix, ambiguous, or does not vary.
    """
    varying, first, columns = _varying_keys([_combination_entries(combo) for combo in combos])
    reduced = tuple(dict.fromkeys(_resolve(spec, given, first, varying, specs, upstream) for given in spec.reduce_keys))
    kept = [key for key in varying if key not in reduced]
    groups: Dict[tuple, List[Tuple[Any, ...]]] = {}
    for combo, values in zip(combos, zip(*(columns[key] for key in kept)) if kept else [()] * len(combos)):
        groups.setdefault(values, []).append(combo)
    members = [list({id(task): task for combo in group for task in combo}.values()) for group in groups.values()]
    return reduced, kept, members


def _candidates(text: str, first: Dict[Key, Any]) -> List[Key]:
    """The keys a string names: ``key`` of any task, or ``Task.key`` split at any dot."""
    found = [key for key in first if key[1] == text]
    found += [(text[:i], text[i + 1:]) for i, char in enumerate(text)
              if char == "." and (text[:i], text[i + 1:]) in first]
    return list(dict.fromkeys(found))


def _holds_dicts(value: Any) -> bool:
    """True for a config value that has keys inside it: a dict, or a grid list with dicts."""
    return isinstance(value, dict) or (isinstance(value, list) and any(_holds_dicts(item) for item in value))


def _resolve(spec: Any, given: Union[str, Key], first: Dict[Key, Any], varying: List[Key],
             specs: Dict[str, Any], upstream: FrozenSet[str]) -> Key:
    """The one varying upstream key that ``given`` names, or a ``TaskSpecError`` saying why not."""
    shown = repr(given)
    if varying:
        axes = f"Keys that vary upstream: {', '.join(key_label(key) for key in varying)}."
    else:
        axes = "No config key varies upstream of it, so there is nothing to group by (use reduce=True)."

    def error(problem: str) -> TaskSpecError:
        return TaskSpecError(f'Task "{spec.name}": reduce key {shown} {problem} {axes}', task_name=spec.name,
                             key=given if isinstance(given, str) else key_label(given))

    if isinstance(given, tuple):
        if given[0] not in upstream:
            raise error(f'names the task "{given[0]}", which is not upstream of "{spec.name}". A tuple names one '
                        f'key as ("Task", "key"); several keys go in a list.')
        candidates = [given] if given in first else []
        named = [given]
    else:
        candidates = _candidates(given, first)
        named = [(name, given) for name in sorted(upstream)]
        named += [(given[:i], given[i + 1:]) for i, char in enumerate(given) if char == "." and given[:i] in upstream]
    if not candidates:
        for name, key in named:
            prefix = specs[name].config_ignore_prefix if name in specs else None
            config = specs[name].config if name in specs else {}
            if prefix and ((key.startswith(prefix) and key in config) or prefix + key in config):
                raise error(f'is a config key of "{name}" under its ignore prefix "{prefix}": such keys do not '
                            f"identify runs, so they are not sweep axes.")
        for name, key in named:
            for head in (key[:i] for i, char in enumerate(key) if char == "."):
                if (name, head) in first and _holds_dicts(specs[name].config.get(head) if name in specs else None):
                    raise error(f'names a key inside "{key_label((name, head))}"; a group reducer reduces over '
                                f'top-level config keys (written "key", "Task.key" or ("Task", "key")), here '
                                f'"{key_label((name, head))}" as a whole.')
        raise error(f'is not a config key of any task upstream of "{spec.name}".')
    moving = [key for key in candidates if key in varying]
    if len(moving) > 1:
        raise error(f"is ambiguous: it varies in {', '.join(key_label(key) for key in moving)}; name one as "
                    f'"Task.key" or ("Task", "key"), or list each of them.')
    if not moving:
        raise error(f"({', '.join(key_label(key) for key in candidates)}) does not vary upstream: every upstream "
                    f"run has the same value.")
    return moving[0]
