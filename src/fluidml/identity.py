"""A task run's identity: its unique config, the hash of it, and what it records about its code.

One home for both ``task.py`` and ``task_spec.py`` (and the driver and planner), so that the
import graph runs one way: ``identity`` imports no other part of fluidml.

- The **unique config** of a task is its own relevant config (no ``None`` values, no
  ignore-prefixed keys) plus all its ancestors', keyed by task name; ``materialize`` builds it
  bottom-up, ``hashed_in_order`` hashes a whole graph in task order.
- Its **hash** is the MD5 of its JSON text with sorted keys: ``digest`` (hex, the store key) and
  ``hash`` (8 characters of it in base 36, shown to users), exactly as fluidml 0.3.4 made them.
- Its **record** (``identity_records``) is what each run stores next to its info about the code
  that made it (``"fluidml": {"code": ..., "pinned": ...}``): the code version of the task and of
  every ancestor (with ``cache="code"``), and the versions pinned with ``TaskSpec(version=...)``.
"""

import bisect
import json
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

try:  # the interpreter's own MD5 (same digests): importing hashlib loads OpenSSL, a few ms of `import fluidml`
    from _md5 import md5
except ImportError:  # an interpreter built without it
    from hashlib import md5

__all__ = [
    "HashedConfig",
    "config_digest",
    "config_hash",
    "hashed_child_config",
    "hashed_config",
    "hashed_in_order",
    "identity_records",
    "materialize",
    "relevant_config",
    "run_record",
    "with_known_hash",
]


def relevant_config(value: Any, ignore_prefix: Optional[str]) -> Any:
    """The part of a config that identifies a run: no ``None`` values and no ignore-prefixed keys."""
    if isinstance(value, dict) and not _has_irrelevant(value, ignore_prefix):
        return value  # nothing to drop: share the object (one less dict per task)
    if isinstance(value, dict):
        return {
            k: relevant_config(v, ignore_prefix)
            for k, v in value.items()
            if v is not None and not (ignore_prefix and isinstance(k, str) and k.startswith(ignore_prefix))
        }
    if isinstance(value, list):
        return [relevant_config(v, ignore_prefix) for v in value if v is not None]
    return value


def _has_irrelevant(value: Any, ignore_prefix: Optional[str]) -> bool:
    if isinstance(value, dict):
        return any(
            v is None or (ignore_prefix and isinstance(k, str) and k.startswith(ignore_prefix))
            or _has_irrelevant(v, ignore_prefix)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(v is None or _has_irrelevant(v, ignore_prefix) for v in value)
    return False



_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


_POWERS = [36 ** k for k in range(26)]  # a 128-bit digest has at most 25 base-36 digits


_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]  # every two-digit base-36 text, by value


def _short_hash(digest: str) -> str:
    """The first 8 base-36 digits of the hex digest's number (only those are computed, two at a
    time: this runs once per task)."""
    number = int(digest, 16)
    digits = bisect.bisect_right(_POWERS, number)
    if digits > 8:
        number //= _POWERS[digits - 8]
    high, low = divmod(number, 36 ** 4)
    a, b = divmod(high, 36 ** 2)
    c, d = divmod(low, 36 ** 2)
    return (_PAIRS[a] + _PAIRS[b] + _PAIRS[c] + _PAIRS[d]).lstrip("0") or "0"


class HashedConfig(dict):
    """A unique config that carries its hash: ``hash`` (8 characters, shown to users) and ``digest``
    (the full MD5 hex, used as the store key). Made once per task run by ``hashed_config``.

    It may also keep the sorted JSON pieces its hash was computed from, so that a task with a
    single predecessor hashes its config without encoding all its ancestors' entries again.
    """

    __slots__ = ("hash", "digest", "_keys", "_pieces")
    hash: str
    digest: str
    _keys: Optional[List[str]]
    _pieces: Optional[List[str]]

    def __reduce__(self) -> Any:
        return _rebuild_hashed, (dict(self), self.hash, self.digest)


def _rebuild_hashed(config: Dict[str, Any], hash_: str, digest: str) -> HashedConfig:
    """Unpickles a HashedConfig: the config with its hash, without the pieces it was computed from."""
    hashed = HashedConfig(config)
    hashed.hash, hashed.digest = hash_, digest
    hashed._keys = hashed._pieces = None
    return hashed


def _hash_pieces(hashed: HashedConfig, keys: List[str], pieces: List[str]) -> HashedConfig:
    """Hashes the JSON text made of the sorted pieces (the same text as json.dumps(sort_keys=True))."""
    hashed.digest = md5(("{" + ", ".join(pieces) + "}").encode("utf-8")).hexdigest()
    hashed.hash = _short_hash(hashed.digest)
    hashed._keys, hashed._pieces = keys, pieces
    return hashed


def _piece(key: str, value: Any) -> str:
    return f"{json.dumps(key)}: {json.dumps(value, sort_keys=True)}"


def hashed_config(config: Dict[str, Any]) -> HashedConfig:
    """The config with its hash attached (returned as is when it already carries one).

    The hash is the MD5 of the config's JSON text with sorted keys, written in base 36.
    """
    if type(config) is HashedConfig:
        return config
    hashed = HashedConfig(config)
    hashed.digest = md5(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()
    hashed.hash = _short_hash(hashed.digest)
    hashed._keys = hashed._pieces = None  # a child builds them if it needs them (hashed_child_config)
    return hashed


def hashed_child_config(parent: HashedConfig, name: str, own: Any) -> HashedConfig:
    """The config of a task with one predecessor: the parent's entries plus its own, hashed.

    Takes over the parent's sorted pieces (a second child of the same parent encodes afresh), so
    along a chain each task encodes only its own entry.
    """
    child = HashedConfig(parent)
    child[name] = own
    keys, pieces = getattr(parent, "_keys", None), getattr(parent, "_pieces", None)
    if keys is None or pieces is None or name in parent:
        keys = sorted(child)
        return _hash_pieces(child, keys, [_piece(k, child[k]) for k in keys])
    parent._keys = parent._pieces = None
    position = bisect.bisect(keys, name)
    keys.insert(position, name)
    pieces.insert(position, _piece(name, own))
    return _hash_pieces(child, keys, pieces)


def config_hash(config: Dict[str, Any]) -> str:
    """The 8-character hash of a unique config (``{"a": {"x": 1}}`` gives ``"dnihykfb"``)."""
    return hashed_config(config).hash


def config_digest(config: Dict[str, Any]) -> str:
    """The full MD5 hex digest of a unique config: the key stores file runs under."""
    return hashed_config(config).digest


# ------------------------------------------------------------------------------ unique configs

def materialize(task: Any) -> None:
    """Builds unique configs bottom-up without recursion: the predecessors' merged in order (a later
    one wins on a shared key), then the task's own entry last."""
    stack: List[Any] = [task]
    while stack:
        current = stack[-1]
        if current._unique_config is not None:
            stack.pop()
            continue
        predecessors = current._predecessors
        missing = [p for p in predecessors if p._unique_config is None and p._uc_own is not None]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        merged: Dict[str, Any] = {}
        for predecessor in predecessors:
            if predecessor._unique_config is not None:
                merged.update(predecessor._unique_config)
        merged[current.name] = current._uc_own
        current._unique_config = merged


def _hashed_unique_config(task: Any) -> HashedConfig:
    """The task's unique config, hashed; along a chain only the task's own entry is encoded."""
    preds = task._predecessors
    if len(preds) == 1 and task._uc_own is not None and type(preds[0]._unique_config) is HashedConfig:
        return hashed_child_config(preds[0]._unique_config, task.name, task._uc_own)
    return hashed_config(task._uc())


def with_known_hash(task: Any, hash_: str, digest: str) -> HashedConfig:
    """The task's unique config as a ``HashedConfig`` carrying a hash computed before (by
    ``hashed_in_order`` when the run was planned): built from its predecessors' configs without
    encoding anything again. Sets it on the task."""
    unique_config = task._unique_config
    if type(unique_config) is HashedConfig:
        return unique_config
    if unique_config is None and task._uc_own is not None and all(
            p._unique_config is not None or p._uc_own is None for p in task._predecessors):
        unique_config = HashedConfig()
        for predecessor in task._predecessors:
            if predecessor._unique_config is not None:
                unique_config.update(predecessor._unique_config)
        unique_config[task.name] = task._uc_own
    else:
        unique_config = HashedConfig(task._uc())
    unique_config.hash, unique_config.digest = hash_, digest
    unique_config._keys = unique_config._pieces = None
    task._unique_config = unique_config
    return unique_config


def hashed_in_order(tasks: Sequence[Any]) -> Iterator[Tuple[Any, HashedConfig]]:
    """Yields ``(task, its hashed unique config)`` for tasks in task order (predecessors first),
    setting each on its task. A task's config is released once all its successors have theirs, so a
    deep graph holds O(depth) configs at a time, not one per task."""
    index = {id(task): i for i, task in enumerate(tasks)}
    unprepared = [len(task._successors) for task in tasks]
    for task in tasks:
        unique_config = _hashed_unique_config(task)
        task._unique_config = unique_config
        yield task, unique_config
        for pred_id in {index[id(p)] for p in task._predecessors if id(p) in index}:
            unprepared[pred_id] -= 1
            if unprepared[pred_id] == 0:
                tasks[pred_id]._release_unique_config()


# ------------------------------------------------------------------------------------ records

#: A spec's record: {"pinned": {task name: version}, "code": {task name: {qualname: hash}}}.
Record = Dict[str, Dict[str, Any]]


def identity_records(specs: Sequence[Any],
                     code_version: Optional[Callable[[Any], Dict[str, str]]]) -> Dict[str, Record]:
    """The record each spec's runs store, by spec name: the pinned versions (``TaskSpec(version=)``)
    of the spec and its ancestors, and, when ``code_version`` is given (``cache="code"``), the code
    version of each of them that pins none. ``specs`` come in topological order.

    The records of a spec's tasks are one shared dict (they only differ by spec)."""
    records: Dict[str, Record] = {}
    for spec in specs:
        pinned: Dict[str, str] = {}
        code: Dict[str, Dict[str, str]] = {}
        for predecessor in spec.predecessors:
            pinned.update(records[predecessor.name]["pinned"])
            if code_version is not None:
                code.update(records[predecessor.name]["code"])
        version = getattr(spec, "version", None)
        if version is not None:
            pinned[spec.name] = version
        elif code_version is not None:
            code[spec.name] = code_version(spec.task)
        records[spec.name] = {"pinned": pinned} if code_version is None else {"pinned": pinned, "code": code}
    return records


def run_record(task: Any) -> Optional[Record]:
    """The record the task's run stores (set on its spec when the run was planned), or None."""
    spec = getattr(task, "_spec", None)
    return getattr(spec, "_identity_record", None)
