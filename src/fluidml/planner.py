"""The planner: whether each task of a run runs or is served from the store, and why.

``decide`` is a pure function of a task's stored info, the flow's current identity record for the
task (``identity.identity_records``), ``force``, the ``cache`` setting and which predecessors run;
it answers ``(runs, reason)`` with ``reason`` one of the strings below. ``plan_tasks`` applies it
to every task in task order, reading each task's stored info once and writing nothing; the
driver uses it at the start of a run (its plan is logged, and reused at dispatch) and
``Flow.plan()`` returns it as ``PlanEntry`` rows.

Reasons, checked in this order (the first that applies):
``"forced"``; ``"new config"`` (nothing stored); ``"failed last time"``, ``"killed last time"``,
``"interrupted last time"`` (stored, not finished); ``"version <old> → <new>"`` (the task's pinned
version); ``"code version not recorded"`` / ``"code changed: <qualnames>"`` (``cache="code"``, the
task's own code); ``"upstream runs: <names>"`` (a predecessor runs in this run for any reason but
"forced"); the same version and code checks for its ancestors (a run interrupted between an
upstream re-run and its successors); ``"results missing"`` (the store finds the run damaged);
else ``"cached"``.
"""

import datetime
import logging
from collections import Counter
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from fluidml.exception import StoredResultDamaged, error_text
from fluidml.identity import Record, hashed_in_order
from fluidml.storage.base import TASK_INFO, damage_marker

logger = logging.getLogger(__name__)

__all__ = [
    "CACHED", "CODE_NOT_RECORDED", "FAILED", "FORCED", "INTERRUPTED", "KILLED", "NEW_CONFIG", "PlanEntry", "Planned",
    "RESULTS_MISSING", "code_changed", "damage_check", "decide", "plan_lines", "plan_tasks", "read_stored", "replan",
    "upstream_runs",
    "version_changed",
]

CACHED = "cached"
NEW_CONFIG = "new config"
FORCED = "forced"
FAILED = "failed last time"
KILLED = "killed last time"
INTERRUPTED = "interrupted last time"
RESULTS_MISSING = "results missing"
CODE_NOT_RECORDED = "code version not recorded"

#: The stored info's state -> why a run that did not finish runs again.
_NOT_FINISHED = {"failed": FAILED, "killed": KILLED}


def code_changed(qualnames: Sequence[str]) -> str:
    """``"code changed: Train.run, fit_model"``."""
    return "code changed: " + ", ".join(qualnames)


def version_changed(old: Optional[str], new: Optional[str]) -> str:
    """``"version 1 → 2"`` (``none`` where no version is pinned)."""
    return f"version {old or 'none'} → {new or 'none'}"


def upstream_runs(names: Sequence[str]) -> str:
    """``"upstream runs: split"``: predecessors (task names) that run in this run."""
    return "upstream runs: " + ", ".join(names)


class PlanEntry(NamedTuple):
    """One row of ``Flow.plan()``: an expanded task, whether it runs, and why."""

    unique_name: str
    task_name: str
    config_hash: str
    runs: bool
    reason: str


class Planned(NamedTuple):
    """The planner's answer for one task, with what the driver needs to act on it."""

    runs: bool
    reason: str
    stored: Optional[Dict[str, Any]]  # the task's stored info (None: nothing stored)
    hash: str
    digest: str
    damage: List[Any]  # what the store found damaged ("results missing")


def _changed_parts(old: Any, new: Dict[str, str]) -> List[str]:
    if not isinstance(old, dict):
        return sorted(new)
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


def _version_reason(old: Mapping[str, Any], new: Mapping[str, Any], names: Sequence[str]) -> Optional[str]:
    for name in names:
        if old.get(name) != new.get(name):
            return version_changed(old.get(name), new.get(name))
    return None


def _code_reason(old: Any, new: Dict[str, Dict[str, str]], names: Sequence[str]) -> Optional[str]:
    for name in names:
        if name not in new:
            continue
        if not isinstance(old, dict) or not isinstance(old.get(name), dict):
            return CODE_NOT_RECORDED
        if old[name] != new[name]:
            return code_changed(_changed_parts(old[name], new[name]))
    return None


def decide(
    stored: Optional[Mapping[str, Any]],
    task_name: str,
    record: Record,
    cache: str = "config",
    forced: bool = False,
    upstream: Sequence[str] = (),
    damage: Callable[[], List[Any]] = list,
) -> Tuple[bool, str, List[Any]]:
    """Whether a task runs and why (see the module docstring), and the damage found, if any.

    ``stored``: the run's stored info (None if there is none); ``record``: the flow's current
    record for the task; ``upstream``: names of predecessors that run for a reason other than
    force; ``damage``: called only for a run that would otherwise be cached.
    """
    if forced:
        return True, FORCED, []
    if stored is None:
        return True, NEW_CONFIG, []
    state = stored.get("state")
    if state != "finished":
        return True, _NOT_FINISHED.get(str(state), INTERRUPTED), []
    recorded = stored.get("fluidml")
    recorded = recorded if isinstance(recorded, dict) else {}
    old_pinned = recorded.get("pinned")
    old_pinned = old_pinned if isinstance(old_pinned, dict) else {}
    new_pinned = record.get("pinned", {})
    new_code = record.get("code", {}) if cache == "code" else {}
    old_code = recorded.get("code")
    if old_pinned == new_pinned and (not new_code or old_code == new_code):  # (the usual case: one check)
        reason = upstream_runs(upstream) if upstream else None
    else:
        reason = (_version_reason(old_pinned, new_pinned, [task_name])
                  or _code_reason(old_code, new_code, [task_name])
                  or (upstream_runs(upstream) if upstream else None)
                  or _version_reason(old_pinned, new_pinned, list(dict.fromkeys([*new_pinned, *old_pinned])))
                  or _code_reason(old_code, new_code, list(new_code)))
    if reason is not None:
        return True, reason, []
    found = damage()
    if found:
        return True, RESULTS_MISSING, list(found)
    return False, CACHED, []


def damage_check(store: Any, task: Any, unique_config: Dict[str, Any], log: bool = True) -> Callable[[], List[Any]]:
    """The store's cheap check of a finished run (``run_damage``), for stores that have one; damage
    found is logged (``log``) once, naming what is damaged."""
    check = getattr(store, "run_damage", None)
    if check is None:
        return list

    def damage() -> List[Any]:
        found = check(task.name, unique_config)
        if found and log:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            logger.warning('Task "%s": %s %s%s. Its run counts as not finished and runs again.', task.unique_name,
                           found[0].location, found[0].problem, more)
        return found

    return damage


def read_stored(store: Any, task: Any, unique_config: Dict[str, Any],
                log: bool = True) -> Tuple[Optional[Dict[str, Any]], bool]:
    """The task's stored run info (None if there is none or it is unreadable), and whether the run is
    known to be damaged: its info cannot be read, or it was marked damaged when a successor found an
    object gone. One warning names what is damaged; the run then runs again."""
    try:
        stored = store.load(TASK_INFO, task.name, unique_config)
    except StoredResultDamaged as error:
        if log:
            logger.warning("%s", error_text(error))
        return None, True
    marker = damage_marker(stored)
    if marker is not None and log:
        logger.warning('Task "%s": %s %s (found before). Its run runs again.', task.unique_name,
                       marker.get("location"), marker.get("problem"))
    return stored, marker is not None


def plan_tasks(tasks: Sequence[Any], store: Any, cache: str, forced: Set[str],
               records: Mapping[str, Record], keep_stored: bool = True) -> List[Planned]:
    """Plans every task (in task order, predecessors first): reads each task's stored info once,
    writes nothing. ``forced``: the task names to force; ``records``: the identity record by task
    name. With ``keep_stored=False`` the stored infos are not kept (``Flow.plan()``)."""
    index = {id(task): i for i, task in enumerate(tasks)}
    planned: List[Planned] = []
    empty: Record = {"pinned": {}}
    for task, unique_config in hashed_in_order(tasks):
        stored, damaged = read_stored(store, task, unique_config)
        upstream = []
        for pred in task._predecessors:
            pred_plan = planned[index[id(pred)]] if id(pred) in index else None
            if pred_plan is not None and pred_plan.runs and pred_plan.reason != FORCED and pred.name not in upstream:
                upstream.append(pred.name)
        damage: List[Any] = []
        if damaged and task.name not in forced:
            runs, reason = True, RESULTS_MISSING
        else:
            runs, reason, damage = decide(stored, task.name, records.get(task.name, empty), cache,
                                          task.name in forced, upstream, damage_check(store, task, unique_config))
        if stored is not None and (not keep_stored or "fluidml" in stored):  # (its records are decided on)
            stored = {key: value for key, value in stored.items() if key != "fluidml"} if keep_stored else None
        planned.append(Planned(runs, reason, stored, unique_config.hash, unique_config.digest, damage))
    return planned


def replan(store: Any, task: Any, planned: Planned, ran: Sequence[Optional[str]], record: Record,
           cache: str) -> Planned:
    """Decides again, at dispatch, for a task planned to run: on its stored info as it is now and on
    ``ran``, why each of its predecessors was dispatched in this run (None: served from the store)."""
    uc = task._uc()
    stored, damaged = read_stored(store, task, uc, log=False)
    if damaged:
        return planned._replace(stored=stored)
    started = _started(stored)  # a stored run made after a predecessor ran here already used its results
    upstream = list(dict.fromkeys(p.name for p, why in zip(task.predecessors, ran) if why not in (None, FORCED)
                                  and not (started is not None and p.ended is not None and p.ended <= started)))
    runs, reason, damage = decide(stored, task.name, record, cache, bool(task.force), upstream,
                                  damage_check(store, task, uc, log=False))
    return Planned(runs, reason, stored, planned.hash, planned.digest, damage)


def _started(stored: Optional[Dict[str, Any]]) -> Optional[datetime.datetime]:
    """When a stored run started (another driver may have made it during this run), or None."""
    text = stored.get("started") if stored is not None else None
    try:
        return datetime.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def plan_lines(entries: Sequence[PlanEntry]) -> List[str]:
    """One line per task name, in task order: ``train: 4 cached, 2 to run (code changed: Train.run)``
    (several reasons: ``(new config ×2, failed last time ×1)``)."""
    by_name: Dict[str, List[PlanEntry]] = {}
    for entry in entries:
        by_name.setdefault(entry.task_name, []).append(entry)
    lines = []
    for name, group in by_name.items():
        reasons = Counter(entry.reason for entry in group if entry.runs)
        to_run = sum(reasons.values())
        line = f"{name}: {len(group) - to_run} cached, {to_run} to run"
        if len(reasons) == 1:
            line += f" ({next(iter(reasons))})"
        elif reasons:
            line += " (" + ", ".join(f"{reason} ×{count}" for reason, count in reasons.items()) + ")"
        lines.append(line)
    return lines
