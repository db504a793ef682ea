"""Config grids: expansion (product, zip, zip groups), relevant and prepared configs, the config hash.

Expansion reproduces the original fluidml's counts and order exactly, including its quirks
(a list of lists is flattened, a list wrapped in a list is a literal value, a list of dicts varies
its inner values fastest). It works in two stages:

1. ``_stage1`` takes the cartesian product over the keys of every dict (first key slowest). A list
   is a list of alternatives; a dict inside a list becomes a *bundle* of its own expansions.
2. ``_stage2`` flattens what stage 1 left nested: lists of alternatives inside chosen values and
   bundles, again as a product over keys.

Zip and zip groups are constraints: every alternative taken from a grouped list binds its group id
to its position, and a configuration survives only if each group id is bound to one position. The
constraints are checked while the product is built, so a zip of k lists of n values costs O(k*n),
not O(n**k) as a product-then-filter would.

What identifies a run (the relevant config, the hashes) lives in ``fluidml.identity``; its
functions are importable from here too, as before.
"""

import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from fluidml.exception import GridSearchExpansionError, TaskSpecError
from fluidml.identity import (
    HashedConfig, config_digest, config_hash, hashed_child_config, hashed_config, relevant_config
)

__all__ = [
    "HashedConfig",
    "config_digest",
    "config_hash",
    "copy_json",
    "expand_config",
    "hashed_child_config",
    "hashed_config",
    "prepared_config",
    "register_expansion",
    "relevant_config",
    "to_json_config",
]

ExpansionFn = Callable[..., List[Dict[str, Any]]]
_CUSTOM_EXPANSIONS: Dict[str, ExpansionFn] = {}
_CONFLICT = object()


def register_expansion(expand_id: str, fn: ExpansionFn) -> None:
    """Registers a custom ``expand`` method: ``fn(config, group_prefix=...)`` returns a list of dicts."""
    if expand_id in ("product", "zip"):
        raise ValueError(f'"{expand_id}" is a built-in expansion method and cannot be replaced.')
    _CUSTOM_EXPANSIONS[expand_id] = fn


def expansion_ids() -> List[str]:
    """All valid ``expand`` ids."""
    return ["product", "zip", *_CUSTOM_EXPANSIONS]


class _Alt(dict):
    """A dict built in stage 1, with the group bindings (group id -> position) it already made."""

    __slots__ = ("binds",)
    binds: Optional[dict]


class _Ctx:
    __slots__ = ("prefix", "zip_group", "spec_name", "empty")

    def __init__(self, prefix: Optional[str], zip_group: Optional[str], spec_name: Optional[str]):
        self.prefix = prefix
        self.zip_group = zip_group
        self.spec_name = spec_name
        self.empty: List[str] = []


def _merge(b1: Optional[dict], b2: Optional[dict]) -> Any:
    """Unites two binding dicts; returns _CONFLICT when a group is bound to two positions."""
    if not b2:
        return b1
    if not b1:
        return b2
    merged = None
    for group, pos in b2.items():
        seen = b1.get(group)
        if seen is None:
            if merged is None:
                merged = dict(b1)
            merged[group] = pos
        elif seen != pos:
            return _CONFLICT
    return b1 if merged is None else merged


def _stage1(value: Any, ctx: _Ctx, path: str) -> Any:
    if isinstance(value, dict):
        return _stage1_dict(value, ctx, path)
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], list):
            return [value]  # one alternative: the list itself (stage 2 yields its inner list)
        return [_stage1(item, ctx, path) for item in value]
    return value


def _stage1_dict(d: dict, ctx: _Ctx, path: str) -> List[_Alt]:
    root = _Alt()
    root.binds = None
    partials = [root]
    for key, value in d.items():
        key_path = f"{path}.{key}" if path else str(key)
        alts = _stage1(value, ctx, key_path)
        if not isinstance(alts, list):
            alts = [alts]
        group = None
        if ctx.prefix is not None and isinstance(value, list) and alts:
            last = alts[-1]
            if isinstance(last, str) and last.startswith(ctx.prefix):
                alts = alts[:-1]
                group = last
        if ctx.zip_group is not None:
            many = len(alts) > 1 and not all(isinstance(a, dict) for a in alts)
            group = ctx.zip_group if many else None
            if group is not None:
                _check_zippable(alts, ctx, key_path)
        if not alts:
            ctx.empty.append(key_path)
            return []
        extended = []
        for partial in partials:
            for pos, alt in enumerate(alts):
                binds = partial.binds
                if group is not None:
                    binds = _merge(binds, {group: pos})
                if isinstance(alt, _Alt) and binds is not _CONFLICT:
                    binds = _merge(binds, alt.binds)
                if binds is _CONFLICT:
                    continue
                new = _Alt(partial)
                new[key] = alt
                new.binds = binds
                extended.append(new)
        partials = extended
    return partials


def _stage2(value: Any, binds: Optional[dict]) -> List[tuple]:
    """All final values of a stage-1 value, each with the bindings it needs."""
    if isinstance(value, dict):
        binds = _merge(binds, getattr(value, "binds", None))
        if binds is _CONFLICT:
            return []
        if not any(isinstance(v, (dict, list)) for v in value.values()):
            return [(dict(value), binds)]
        results: List[tuple] = [({}, binds)]
        for key, item in value.items():
            extended = []
            for partial, partial_binds in results:
                for final, final_binds in _stage2(item, partial_binds):
                    new = dict(partial)
                    new[key] = final
                    extended.append((new, final_binds))
            results = extended
        return results
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], list):
            return [(copy_json(value[0]), binds)]  # (also turns stage-1 dicts into plain ones)
        flat: List[tuple] = []
        for item in value:
            flat.extend(_stage2(item, binds))
        return flat
    return [(value, binds)]


def expand_config(
    config: Dict[str, Any],
    expand: Optional[str],
    group_prefix: Optional[str] = None,
    spec_name: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Expands a config grid into the list of its configs, in the original fluidml's order.

    ``expand`` is ``None`` (the config as it is), ``"product"``, ``"zip"`` or a registered id.
    Raises ``GridSearchExpansionError`` for an unknown id, for a zip over a list of lists and for a
    grid that yields no config at all (the message names the spec and the empty key).
    """
    if expand is None:
        return [copy_json(config)]
    if expand not in ("product", "zip"):
        fn = _CUSTOM_EXPANSIONS.get(expand)
        if fn is None:
            raise GridSearchExpansionError(
                f'Task "{spec_name}": unknown expand method "{expand}". '
                f"Use one of: {', '.join(repr(i) for i in expansion_ids())}.",
                task_name=spec_name,
                key="expand",
            )
        custom = fn(config, group_prefix=group_prefix)
        if not isinstance(custom, list) or not custom or not all(isinstance(c, dict) for c in custom):
            raise GridSearchExpansionError(
                f'Task "{spec_name}": the expand method "{expand}" must return a non-empty list of config '
                f"dicts, it returned {custom!r:.200}.",
                task_name=spec_name,
                key="expand",
            )
        return [to_json_config(c, spec_name or "") for c in custom]
    if expand == "zip":
        prefix = group_prefix or "@"
        ctx = _Ctx(prefix, prefix + "x", spec_name)
    else:
        ctx = _Ctx(group_prefix, None, spec_name)
    configs: List[Dict[str, Any]] = []
    for alt in _stage1_dict(config, ctx, ""):
        configs.extend(final for final, _ in _stage2(alt, alt.binds))
    if not configs:
        where = (
            f"the list at {', '.join(repr(p) for p in ctx.empty)} is empty"
            if ctx.empty
            else "its zip groups leave no consistent combination"
        )
        raise GridSearchExpansionError(
            f'Task "{spec_name}": the config grid expands to zero tasks: {where}. '
            f"Give every grid list at least one value.",
            task_name=spec_name,
            key=ctx.empty[0] if ctx.empty else None,
        )
    return configs


def _check_zippable(alts: list, ctx: _Ctx, path: str) -> None:
    """Zip pairs values by position; a zipped value that is itself a list of several plain values
    has no defined pairing (the original crashed on it), so it is an error. Lists of dicts zip."""
    for alt in alts:
        if not isinstance(alt, list) or all(isinstance(item, _Alt) for item in alt):
            continue
        values = _stage2(alt, None)
        if len(values) > 1 and not all(isinstance(value, dict) for value, _ in values):
            raise GridSearchExpansionError(
                f'Task "{ctx.spec_name}": expand="zip" cannot zip the list of lists at "{path}". '
                f'Wrap a literal list value in one more list (e.g. [[1, 2]]), or use expand="product".',
                task_name=ctx.spec_name,
                key=path,
            )


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts and lists are copied, other values shared)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def prepared_config(value: Any, ignore_prefix: Optional[str]) -> Any:
    """The config a task receives: ignore-prefixed keys keep their value, the prefix is removed."""
    if not ignore_prefix:
        return value
    if isinstance(value, dict):
        n = len(ignore_prefix)
        return {
            (k[n:] if isinstance(k, str) and k.startswith(ignore_prefix) else k): prepared_config(v, ignore_prefix)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [prepared_config(v, ignore_prefix) for v in value]
    return value


def to_json_config(config: Optional[Dict[str, Any]], spec_name: str) -> Dict[str, Any]:
    """Copies a spec config as JSON does (tuples become lists, keys become strings).

    The config identifies results in stores, so it must be plain JSON; anything else gets an error
    that names the spec and the key. Objects belong in ``additional_kwargs``.
    """
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TaskSpecError(
            f'Task "{spec_name}": config must be a dict, got {type(config).__name__}.',
            task_name=spec_name,
            key="config",
        )
    try:
        converted = json.loads(json.dumps(config))
    except (TypeError, ValueError):
        path, what = _find_non_json(config, "")
        raise TaskSpecError(
            f'Task "{spec_name}": config value at "{path}" ({what}) is not JSON-serialisable. '
            f"Configs identify results, so they hold plain JSON values; pass objects through "
            f"additional_kwargs instead.",
            task_name=spec_name,
            key=path,
        ) from None
    collision = _key_collision(config, "")
    if collision is not None:
        path, keys = collision
        raise TaskSpecError(
            f'Task "{spec_name}": the config keys {keys} at "{path or "(top level)"}" become the same key '
            f'"{json.dumps(keys[0])}" in JSON (config keys are strings there), so one would silently replace the '
            f"other. Give them keys that differ as strings.",
            task_name=spec_name,
            key=path or repr(keys[0]),
        )
    return converted


def _json_key(key: Any) -> str:
    """The string JSON writes for a dict key (as ``json.dumps`` converts it)."""
    return key if isinstance(key, str) else json.dumps(key)


def _key_collision(value: Any, path: str) -> Optional[Tuple[str, List[Any]]]:
    """(path, keys) of the first dict whose keys collide once converted to JSON strings, e.g.
    ``1`` and ``"1"``; None if there is none."""
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            seen: Dict[str, Any] = {}
            for key in value:
                text = _json_key(key)
                if text in seen:
                    return path, [seen[text], key]
                seen[text] = key
        for key, item in value.items():
            found = _key_collision(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, (dict, list, tuple)):
                found = _key_collision(item, f"{path}[{i}]")
                if found is not None:
                    return found
    return None


def _find_non_json(value: Any, path: str, seen: frozenset = frozenset()) -> Tuple[Optional[str], str]:
    """The path of the first value JSON cannot write, and what it is."""
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return path or "(top level)", "a reference to itself"
        seen = seen | {id(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return (f"{path}.{key!r}" if path else repr(key)), f"a key of type {type(key).__name__}"
            found = _find_non_json(item, f"{path}.{key}" if path else str(key), seen)
            if found[0] is not None:
                return found
        return None, ""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _find_non_json(item, f"{path}[{i}]", seen)
            if found[0] is not None:
                return found
        return None, ""
    if value is None or isinstance(value, (str, int, float, bool)):
        return None, ""
    return path, type(value).__name__
