"""What every read tool shares: a task's runs as rows (from a store or from ``flow.run()``'s
return value), the names of their columns, and filters on them (see tables.py for the columns)."""

import datetime
import functools
import json
import re
from collections import abc  # isinstance against typing.Mapping costs ~10 µs a call
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from fluidml.config import config_hash
from fluidml.exception import UnknownNameError
from fluidml.storage.base import ObjectMeta, ResultsStore, RunRecord

__all__ = [
    "INFO_COLUMNS", "ConfigNames", "Row", "cell", "duration_seconds", "filter_rows", "matches", "rows_of", "run_extras",
    "run_hash", "run_state", "unknown_column",
]

#: The columns that describe a run, in the order they are shown.
INFO_COLUMNS = ("run", "state", "started", "duration", "unique_name", "hash")


@dataclass
class Row:
    """One row's source: a stored run (``record``) or a run in ``flow.run()``'s return value."""

    info: Dict[str, Any]  # values of the INFO_COLUMNS
    config: Dict[str, Any]  # full config column name -> value
    metas: Mapping[str, ObjectMeta]
    load: Callable[[str], Any]
    in_memory: bool = False  # values are at hand (flow.run() results): every object may be tried
    values: Dict[str, Any] = field(default_factory=dict)  # object column (without "result.") -> value
    loaded: set = field(default_factory=set)  # the object names already loaded into values
    record: Optional[RunRecord] = None


def run_state(record: RunRecord) -> str:
    """The state a stored run is in: its info's, or ``"running"`` while it has written no info yet
    (it is running, or its process died)."""
    state = (record.info or {}).get("state")
    return str(state) if state else "running"


def run_extras(info: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The ``"fluidml"`` dict of a stored info (unique name, host, pid, worker, error), ``{}`` if it has none."""
    extra = info.get("fluidml") if isinstance(info, abc.Mapping) else None
    return extra if isinstance(extra, dict) else {}


def run_hash(record: RunRecord) -> str:
    """The 8-character hash of a stored run's unique config (from its info where recorded)."""
    return (record.info or {}).get("unique_config_hash") or config_hash(record.unique_config)


# ---------------------------------------------------------------------------------- sources


def rows_of(source: Any, task_name: str) -> List[Row]:
    """The rows of a task's runs: from a store (every stored run) or from ``flow.run()``'s return value."""
    if isinstance(source, ResultsStore):
        records = list(source.runs(task_name))
        if not records and task_name not in source.task_names():
            raise UnknownNameError(f'The store has no task "{task_name}"; its tasks: '
                                   f"{', '.join(source.task_names()) or 'none'}.", task_name=task_name)
        return [_stored_row(source, record) for record in records]
    if isinstance(source, abc.Mapping):
        if task_name not in source:
            raise UnknownNameError(
                f'The results hold no task "{task_name}"; they hold: {", ".join(sorted(source)) or "none"}. '
                f'flow.run() returns every task with return_results="all".', task_name=task_name)
        items = list(source[task_name])
    elif isinstance(source, (list, tuple)):
        items = [item for item in source if getattr(item, "task_name", None) == task_name]
    else:
        raise TypeError(f"sweep tables are made from a ResultsStore or from what flow.run() returned, got "
                        f"{type(source).__name__}.")
    return [_returned_row(item) for item in items]


def _stored_row(store: ResultsStore, record: RunRecord) -> Row:
    info = record.info or {}
    extra = run_extras(info)
    started = info.get("started")
    values = {
        "run": record.run_id, "state": run_state(record),
        "started": datetime.datetime.fromisoformat(started) if isinstance(started, str) else started,
        "duration": duration_seconds(info.get("duration")), "unique_name": extra.get("unique_name"),
        "hash": run_hash(record),
    }

    return Row(values, _config_cells(record.unique_config), record.objects,
               functools.partial(store.load_listed, record), record=record)


def _returned_row(item: Any) -> Row:
    results = item.results or {}
    info = dict.fromkeys(INFO_COLUMNS)
    info.update(unique_name=item.task_unique_name, hash=config_hash(item.unique_config))
    metas = {name: ObjectMeta(None, None) for name in results}
    return Row(info, _config_cells(item.unique_config), metas, results.get, in_memory=True)


def _config_cells(config: Mapping[str, Any]) -> Dict[str, Any]:
    cells = {}
    for task, entry in config.items():
        if isinstance(entry, dict):
            for key, value in entry.items():
                cells[f"config.{task}.{key}"] = value
        else:
            cells[f"config.{task}"] = entry
    return cells


_DURATION = re.compile(r"^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def duration_seconds(value: Any) -> Optional[float]:
    """Seconds of a stored duration (ISO 8601 text, as TaskInfo stores it, or a number)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    sign, days, hours, minutes, seconds = match.groups()
    total = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    return -total if sign else total


# ---------------------------------------------------------------------------------- naming


class ConfigNames:
    """The config columns of a task's runs: full names in display order (the task's own keys first)
    and the names they are shown under."""

    def __init__(self, runs: List[Row], task_name: str):
        own_prefix = f"config.{task_name}."
        own: Dict[str, None] = {}
        others: Dict[str, None] = {}
        for run in runs:
            for column in run.config:
                (own if column.startswith(own_prefix) else others).setdefault(column)
        self.full = [*own, *others]
        self.shown = {column: column for column in others}
        for column in own:
            key = column[len(own_prefix):]
            self.shown[column] = column if key in INFO_COLUMNS else key
        self._by_name = {**{name: name for name in self.full}, **{shown: full for full, shown in self.shown.items()}}

    def resolve(self, name: str) -> Optional[str]:
        """The info column or full config column that ``name`` names, or None."""
        return name if name in INFO_COLUMNS else self._by_name.get(name)

    def names(self) -> List[str]:
        return [*INFO_COLUMNS, *self.shown.values()]


def cell(run: Row, column: str) -> Any:
    """The row's value of an info column or a full config column (None where it has none)."""
    return run.info[column] if column in INFO_COLUMNS else run.config.get(column)


def unknown_column(name: str, task_name: str, names: ConfigNames, objects: Dict[str, str]) -> UnknownNameError:
    """The error for a filter or sort column that the table does not have (it lists those it has)."""
    return UnknownNameError(f'The sweep table of task "{task_name}" has no column "{name}"; its columns: '
                            f"{', '.join([*names.names(), *objects])}.", task_name=task_name, key=name)


def matches(actual: Any, wanted: Any) -> bool:
    """True if a cell passes a filter: equal values, a string that is the value's JSON text
    (``"0.1"`` for 0.1), or a function of the value that returns True."""
    if callable(wanted):
        return bool(wanted(actual))
    try:
        if actual == wanted:
            return True
    except Exception:  # e.g. an array: it equals no filter value
        return False
    if isinstance(wanted, str) and not isinstance(actual, str):
        try:
            return bool(json.loads(wanted) == actual)
        except (ValueError, TypeError):
            return False
    return False


def filter_rows(rows: List[Row], task_name: str, where: Optional[Mapping[str, Any]],
                state: Optional[Union[str, Sequence[str]]]) -> Tuple[List[Row], ConfigNames, Dict[str, Any]]:
    """Applies the state filter and the ``where`` filters on info and config columns. Returns the rows
    left, the config names (of all rows), and the filters on other columns (objects), not applied."""
    states = {state} if isinstance(state, str) else set(state or ())
    if states:
        rows = [row for row in rows if row.info["state"] in states]
    names = ConfigNames(rows, task_name)
    pending = {}
    for name, wanted in (where or {}).items():
        column = names.resolve(name)
        if column is None:
            pending[name] = wanted
        else:
            rows = [row for row in rows if matches(cell(row, column), wanted)]
    return rows, names, pending
