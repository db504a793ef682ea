"""Listing and removing a store's runs: run counts per task, finding one run by its id or hash,
choosing runs by filters, and the runs of other tasks that were built on them.

"Built on" (for ``rm --with-successors``): a run S of another task is built on run R of task T
when S's unique config holds R's unique config (T's entry and its ancestors' entries, all equal).
A reduce run's config merges its members': where its entries for T equal no stored run of T, it
is built on R when each of R's values equals, or is one of the values listed for, that key.
"""

from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from fluidml.exception import UnknownNameError
from fluidml.results._columns import filter_rows, rows_of, run_hash, run_state, unknown_column
from fluidml.storage.base import ResultsStore, RunRecord

__all__ = ["delete_runs", "find_run", "select_runs", "successor_runs", "task_counts"]

_SHOWN_IDS = 8  # runs named in an error message before "..."


def task_counts(store: ResultsStore) -> Dict[str, Dict[str, int]]:
    """``{task: {state: number of runs}}`` for every task in the store (runs without info count as
    ``"running"``)."""
    return {task: dict(Counter(run_state(record) for record in store.runs(task))) for task in store.task_names()}


def _records(store: ResultsStore, task_name: str) -> List[RunRecord]:
    records = list(store.runs(task_name))
    if not records and task_name not in store.task_names():
        raise UnknownNameError(f'The store has no task "{task_name}"; its tasks: '
                               f"{', '.join(store.task_names()) or 'none'}.", task_name=task_name)
    return records


def _some(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_SHOWN_IDS])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _SHOWN_IDS else "")


def find_run(store: ResultsStore, task_name: str, ref: str, records: Optional[List[RunRecord]] = None) -> RunRecord:
    """The run of ``task_name`` that ``ref`` names: its run id (e.g. ``exp-1-004``), its config hash,
    or a prefix of either that fits only one run. Raises ``UnknownNameError`` listing the runs otherwise."""
    records = _records(store, task_name) if records is None else records
    exact = [r for r in records if ref in (r.run_id, run_hash(r))]
    found = exact or [r for r in records if r.run_id.startswith(ref) or run_hash(r).startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownNameError(f'Task "{task_name}" has no run "{ref}" (a run id, a config hash, or the start of '
                               f"either); its runs: {_some([r.run_id for r in records]) or 'none'}.",
                               task_name=task_name, key=ref)
    raise UnknownNameError(f'"{ref}" fits {len(found)} runs of task "{task_name}": '
                           f"{_some([f'{r.run_id} ({run_hash(r)})' for r in found])}; give more of the id or hash.",
                           task_name=task_name, key=ref)


def select_runs(store: ResultsStore, task_name: str, refs: Iterable[str] = (),
                where: Optional[Mapping[str, Any]] = None,
                state: Optional[Union[str, Sequence[str]]] = None) -> List[RunRecord]:
    """The runs of ``task_name`` that ``refs`` name (see ``find_run``), or else those that pass the
    filters (config and info columns of the sweep table, e.g. ``{"C": 0.1}``, and the state)."""
    records = _records(store, task_name)
    refs = list(refs)
    if refs:
        chosen = [find_run(store, task_name, ref, records) for ref in refs]
        return list({id(r): r for r in chosen}.values())
    rows, names, others = filter_rows(rows_of(store, task_name), task_name, where, state)
    if others:
        raise unknown_column(next(iter(others)), task_name, names, {})
    return [row.record for row in rows if row.record is not None]


def _covers(value: Any, member: Any) -> bool:
    """True if a reducer's merged value holds a member's value (equal, or listed among distinct ones)."""
    if value == member:
        return True
    if isinstance(value, dict) and isinstance(member, dict):
        return all(key in value and _covers(value[key], item) for key, item in member.items())
    return isinstance(value, list) and member in value


def _built_on(config: Mapping[str, Any], run: RunRecord, stored: List[Dict[str, Any]]) -> bool:
    target = run.unique_config
    if not all(name in config for name in target):
        return False
    if all(config[name] == value for name, value in target.items()):
        return True
    if any(all(config.get(name) == value for name, value in other.items()) for other in stored):
        return False  # built on another run of the task
    return all(_covers(config[name], value) for name, value in target.items())


def successor_runs(store: ResultsStore, task_name: str, runs: Sequence[RunRecord]) -> List[RunRecord]:
    """The runs of other tasks built on any of ``runs`` of ``task_name`` (see the module docstring),
    their own successors included."""
    stored = [record.unique_config for record in store.runs(task_name)]
    found = []
    for other in store.task_names():
        if other == task_name:
            continue
        for record in store.runs(other):
            if task_name in record.unique_config and any(_built_on(record.unique_config, run, stored) for run in runs):
                found.append(record)
    return found


def delete_runs(store: ResultsStore, runs: Iterable[RunRecord]) -> List[RunRecord]:
    """Deletes each run from the store (``delete_run``); returns them."""
    deleted = []
    for record in runs:
        store.delete_run(record.task_name, record.unique_config)
        deleted.append(record)
    return deleted
