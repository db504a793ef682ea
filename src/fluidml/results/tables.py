"""Sweep tables: the runs of one task side by side, one row per run.

Columns, in this order:

- ``run`` (the run's id in the store, e.g. ``exp-1-004``), ``state``, ``started``, ``duration``
  (seconds), ``unique_name`` (e.g. ``train-3``; recorded since fluidml 0.4) and ``hash`` (the
  unique config's); a column that no row has a value for is left out;
- one column per config key whose value differs between the rows: ``config.<Task>.<key>``, with
  the task's own keys written ``<key>`` (unless an info column has that name);
- one column per saved object that is a number, string or bool (``accuracy``), and one per field
  of a saved dict (``metrics.f1``, nested dicts dotted further). An object column whose name is
  already taken becomes ``result.<object>``.

``where`` and ``sort`` take these names, and also ``config.<Task>.<key>`` for own keys and
``result.<object>`` for objects. Only what is shown is read: configs and infos, then the chosen
objects of the rows that pass the filters, never one larger than ``max_object_size``. Without
``objects``, the small ones are chosen: JSON objects up to 64 KiB and pickled ones up to 512 bytes
(a number or a dict of metrics pickles to far less; a model to far more).
"""

import datetime
import json
from collections import abc  # isinstance against typing.Mapping costs ~10 µs a call
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from fluidml.exception import UnknownNameError
from fluidml.results._columns import (
    INFO_COLUMNS, ConfigNames, Row, cell, filter_rows, matches, rows_of, unknown_column,
)

if TYPE_CHECKING:
    import pandas

__all__ = ["MAX_OBJECT_SIZE", "SweepRows", "sweep_rows", "sweep_table"]

#: Objects larger than this (bytes) are never loaded into a table unless the limit is raised.
MAX_OBJECT_SIZE = 1 << 20
#: Without a choice of objects, those of these types up to these sizes (bytes) are tried.
AUTO_OBJECT_SIZES = {"json": 64 * 1024, "pickle": 512}

_RESULT = "result."
_MISSING = object()


@dataclass
class SweepRows:
    """A sweep table without pandas: ``columns`` in order, one dict per row (keys: the columns),
    ``constants`` (the config columns left out because every run has the same value) and ``total``,
    the number of runs that passed the filters (more than ``len(rows)`` when a limit cut the rows)."""

    task_name: str
    columns: List[str]
    rows: List[Dict[str, Any]]
    constants: Dict[str, Any] = field(default_factory=dict)
    total: int = 0


def sweep_rows(
    source: Any,
    task_name: str,
    objects: Optional[Sequence[str]] = None,
    where: Optional[Mapping[str, Any]] = None,
    state: Optional[Union[str, Sequence[str]]] = None,
    sort: Optional[str] = None,
    ascending: bool = False,
    max_object_size: Optional[int] = MAX_OBJECT_SIZE,
    limit: Optional[int] = None,
) -> SweepRows:
    """The sweep table of ``task_name`` as plain rows (what ``sweep_table`` puts in a DataFrame).

    Args:
        source: A ``ResultsStore``, or what ``flow.run()`` returned (or a list of its ``TaskResults``).
        objects: Names of saved objects to show; None shows the small ones, ``[]`` none.
        where: Column name -> wanted value (or a function of the value returning True to keep the
            row). A string also matches a value whose JSON text is that string (``"0.1"``).
        state: Keep only runs in this state (or these states), e.g. ``"finished"``.
        sort: Column to order by, highest first (``ascending=True`` for lowest first); rows without
            a value come last. Without it, rows are in the order they started.
        max_object_size: Objects larger than this are never loaded (None: no limit).
        limit: At most this many rows (after sorting). The objects that ``where`` and ``sort`` name
            are loaded for every run, the other objects only for the rows kept.
    """
    runs, names, pending = filter_rows(rows_of(source, task_name), task_name, where, state)
    referenced = [name for name in [*pending, *([sort] if sort else [])] if names.resolve(name) is None]
    for name in _object_names(referenced):
        for run in runs:
            _load_object(run, name, task_name, max_object_size, explicit=False)
    object_columns = _object_columns(runs, names)
    for name, wanted in pending.items():
        object_column = _object_column(name, object_columns)
        if object_column is None:
            raise unknown_column(name, task_name, names, object_columns)
        runs = [run for run in runs if matches(run.values.get(object_column), wanted)]
    if sort is not None:
        runs = _sorted(runs, sort, ascending, names, object_columns, task_name)
    else:
        runs.sort(key=lambda run: (run.info["started"] is None, run.info["started"] or datetime.datetime.min))
    kept = runs if limit is None else runs[:limit]
    _load_objects(kept, runs, task_name, objects, max_object_size)
    return _assemble(task_name, runs, kept, names, _object_columns(kept, names))


def sweep_table(
    source: Any,
    task_name: str,
    objects: Optional[Sequence[str]] = None,
    where: Optional[Mapping[str, Any]] = None,
    state: Optional[Union[str, Sequence[str]]] = None,
    sort: Optional[str] = None,
    ascending: bool = False,
    max_object_size: Optional[int] = MAX_OBJECT_SIZE,
    limit: Optional[int] = None,
) -> "pandas.DataFrame":
    """The runs of ``task_name`` as a ``pandas.DataFrame``, one row per run (see ``sweep_rows``
    for the arguments and the module docstring for the columns)::

        table = fluidml.sweep_table(LocalFileStore("results"), "evaluate", sort="accuracy")
        table = fluidml.sweep_table(flow.run(return_results="all"), "evaluate")

    Needs pandas: ``pip install "fluidml[table]"``.
    """
    try:
        import pandas
    except ImportError as error:
        raise ImportError(f'sweep_table needs pandas, which is not installed ({error}). Install it with: '
                          f'pip install "fluidml[table]"') from error
    table = sweep_rows(source, task_name, objects, where, state, sort, ascending, max_object_size, limit)
    return pandas.DataFrame(table.rows, columns=table.columns)


# ---------------------------------------------------------------------------------- objects


def _auto_choice(run: Row) -> List[str]:
    if run.in_memory:
        return list(run.metas)
    return [name for name, meta in run.metas.items()
            if meta.size is not None and meta.size <= AUTO_OBJECT_SIZES.get(meta.type or "", -1)]


def _object_names(columns: Sequence[str]) -> List[str]:
    """The object names a column name may belong to: ``metrics.f1`` -> ``metrics.f1``, ``metrics``
    (object names may hold dots), ``result.C`` -> also ``C``."""
    names: Dict[str, None] = {}
    for column in columns:
        for text in (column, column[len(_RESULT):]) if column.startswith(_RESULT) else (column,):
            parts = text.split(".")
            for end in range(len(parts), 0, -1):
                names.setdefault(".".join(parts[:end]))
    return list(names)


def _load_object(run: Row, name: str, task_name: str, max_object_size: Optional[int], explicit: bool) -> bool:
    """Loads one object of the row into ``run.values`` (flattened into columns), once; False if the
    run did not save it. A chosen object (``explicit``) that is too large or not a value is an error;
    otherwise it is left out."""
    if name in run.loaded:
        return True
    meta = run.metas.get(name)
    if meta is None:
        return False  # the run did not save it
    run.loaded.add(name)
    if meta.size is not None and max_object_size is not None and meta.size > max_object_size:
        if explicit:
            raise ValueError(f'The object "{name}" of run {run.info["run"]} of task "{task_name}" is {meta.size} '
                             f"bytes, more than max_object_size={max_object_size}; raise the limit to load it.")
        return True
    try:
        value = run.load(name)
    except (ImportError, AttributeError) if not explicit else ():
        return True  # a class this process cannot import: not a number, string or dict of them
    cells = _flatten(name, value)
    if cells is None and explicit:
        raise ValueError(f'The object "{name}" of run {run.info["run"] or run.info["unique_name"]} of task '
                         f'"{task_name}" is a {type(value).__name__}, not a number, string, bool or dict of '
                         f"them, so it cannot be a column.")
    run.values.update(cells or {})
    return True


def _load_objects(kept: List[Row], runs: List[Row], task_name: str, objects: Optional[Sequence[str]],
                  max_object_size: Optional[int]) -> None:
    """Loads the chosen objects (None: the small ones) of the rows kept; a chosen object that no run
    saved is an error that lists the objects saved."""
    explicit = objects is not None
    saved_somewhere = set()
    for run in kept:
        for name in (objects if explicit else _auto_choice(run)):  # type: ignore[union-attr]
            if _load_object(run, name, task_name, max_object_size, explicit):
                saved_somewhere.add(name)
    missing = [name for name in objects or () if name not in saved_somewhere
               and not any(name in run.metas for run in runs)]
    if missing and runs:
        saved = sorted({name for run in runs for name in run.metas})
        raise UnknownNameError(f'No run of task "{task_name}" saved an object "{missing[0]}"; objects saved: '
                               f"{', '.join(saved) or 'none'}.", task_name=task_name, key=missing[0])


def _flatten(name: str, value: Any) -> Optional[Dict[str, Any]]:
    """``{column: value}`` for a scalar (numpy scalars become Python values) or a dict of them
    (nested dicts dotted further; fields that are neither are left out); None for anything else."""
    if value is None:
        return {}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return {name: value}
    if isinstance(value, abc.Mapping):
        cells: Dict[str, Any] = {}
        for key, item in value.items():
            cells.update(_flatten(f"{name}.{key}", item) or {})
        return cells or None
    return None


def _object_columns(runs: List[Row], names: ConfigNames) -> Dict[str, str]:
    """Shown name -> object column, ``result.``-prefixed where the name is taken."""
    taken = set(names.names()) | set(names.full)
    columns: Dict[str, str] = {}
    for run in runs:
        for column in run.values:
            columns.setdefault(_RESULT + column if column in taken else column, column)
    return columns


def _object_column(name: str, columns: Dict[str, str]) -> Optional[str]:
    if name in columns:
        return columns[name]
    if name.startswith(_RESULT) and name[len(_RESULT):] in columns.values():
        return name[len(_RESULT):]
    return None


# ---------------------------------------------------------------------------------- rows


def _sort_key(value: Any) -> Tuple[int, Any]:
    if isinstance(value, (int, float)):
        return 0, value
    if isinstance(value, datetime.datetime):
        return 1, value.isoformat()
    return (1, value) if isinstance(value, str) else (2, json.dumps(value, sort_keys=True, default=repr))


def _sorted(runs: List[Row], sort: str, ascending: bool, names: ConfigNames, objects: Dict[str, str],
            task_name: str) -> List[Row]:
    column = names.resolve(sort)
    if column is not None:
        def value(run: Row) -> Any:
            return cell(run, column)  # type: ignore[arg-type]
    else:
        object_column = _object_column(sort, objects)
        if object_column is None:
            raise unknown_column(sort, task_name, names, objects)

        def value(run: Row) -> Any:
            return run.values.get(object_column)  # type: ignore[arg-type]
    present = [run for run in runs if value(run) is not None]
    present.sort(key=lambda run: _sort_key(value(run)), reverse=not ascending)
    return present + [run for run in runs if value(run) is None]


def _identity(value: Any) -> Any:
    """What makes two config values the same value (1 and True differ, as in the config's JSON)."""
    if value is _MISSING or value is None or type(value) in (str, int, float, bool):
        return type(value), value
    return json.dumps(value, sort_keys=True, default=repr)


def _assemble(task_name: str, runs: List[Row], kept: List[Row], names: ConfigNames,
              objects: Dict[str, str]) -> SweepRows:
    """The table of the ``kept`` rows; which config columns vary is decided over all ``runs``."""
    info = [c for c in INFO_COLUMNS if not kept or any(run.info[c] is not None for run in kept)]
    config, constants = [], {}
    for column in names.full:
        values = [run.config.get(column, _MISSING) for run in runs]
        first = _identity(values[0]) if values else None
        if any(_identity(value) != first for value in values):
            config.append(column)
        elif values and values[0] is not _MISSING:
            constants[names.shown[column]] = values[0]
    rows = []
    for run in kept:
        row = {c: run.info[c] for c in info}
        row.update({names.shown[c]: run.config.get(c) for c in config})
        row.update({shown: run.values.get(column) for shown, column in objects.items()})
        rows.append(row)
    columns = [*info, *(names.shown[c] for c in config), *objects]
    return SweepRows(task_name, columns, rows, constants, total=len(runs))
