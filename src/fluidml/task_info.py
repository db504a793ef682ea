"""What a task run records about itself, without pydantic: ``TaskState`` and the stored info dict.

``fluidml.task.TaskInfo`` (a pydantic model, in ``_task_models.py``, built on first use) documents
these fields; ``info_fields`` gives the same dict as ``TaskInfo(...).model_dump(mode="json")``, so
a run records its info without importing pydantic or building a model per task.
"""

import datetime
from enum import Enum
from typing import Any, Dict, Mapping, Optional

__all__ = ["TaskState", "info_fields", "iso_duration", "plain_history"]


class TaskState(str, Enum):
    """The state of a task."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    KILLED = "killed"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    FINISHED = "finished"


def plain_history(history: Optional[Mapping[str, str]]) -> Optional[Dict[str, str]]:
    """A run history as a plain dict (a shared ``RunHistory`` is flattened once)."""
    if history is None or type(history) is dict:
        return history  # type: ignore[return-value]
    to_dict = getattr(history, "to_dict", None)
    return to_dict() if to_dict is not None else dict(history)


def iso_duration(delta: datetime.timedelta) -> str:
    """A duration as ISO 8601 text, exactly as pydantic writes a ``timedelta`` in JSON mode
    (``PT1.5S``, ``P2DT3S``, ``P1Y35D``, ``-PT0.000003S``: 365-day years, no trailing zeros)."""
    if not delta.days and delta.seconds < 60:  # the usual case: a task of less than a minute
        micro = delta.microseconds
        return f"PT{delta.seconds}.{micro:06d}".rstrip("0") + "S" if micro else f"PT{delta.seconds}S"
    sign = ""
    if delta.days < 0:
        sign, delta = "-", -delta
    years, days = divmod(delta.days, 365)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    micro = delta.microseconds
    text = f"{sign}P{f'{years}Y' if years else ''}{f'{days}D' if days else ''}"
    if hours or minutes or seconds or micro or not delta.days:
        text += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
        if seconds or micro or not (hours or minutes):
            text += (f"{seconds}.{micro:06d}".rstrip("0") if micro else str(seconds)) + "S"
    return text


_DATETIME, _TIMEDELTA = datetime.datetime, datetime.timedelta


def _plain_times(started: Any, ended: Any, duration: Any) -> bool:
    """Whether the three values are ones ``info_fields`` writes itself (naive datetimes, timedeltas)."""
    return ((started is None or (type(started) is _DATETIME and started.tzinfo is None))
            and (ended is None or (type(ended) is _DATETIME and ended.tzinfo is None))
            and (duration is None or type(duration) is _TIMEDELTA))


def info_fields(project_name: str, run_name: str, state: Optional[TaskState], started: Optional[datetime.datetime],
                ended: Optional[datetime.datetime], duration: Optional[datetime.timedelta],
                run_history: Optional[Dict], sweep_counter: Optional[str], unique_config_hash: Optional[str],
                id: Optional[str]) -> Dict[str, Any]:  # noqa: A002  (the field's documented name)
    """The ``TaskInfo`` fields as JSON-ready values, equal to ``TaskInfo(...).model_dump(mode="json")``
    (same keys, same order, same texts) but built without pydantic."""
    if not _plain_times(started, ended, duration):  # rare (an aware datetime): the model writes those
        from fluidml.task import TaskInfo

        return TaskInfo.model_construct(
            project_name=project_name, run_name=run_name, state=state, started=started, ended=ended,
            duration=duration, run_history=run_history, sweep_counter=sweep_counter,
            unique_config_hash=unique_config_hash, id=id).model_dump(mode="json")
    return {"project_name": project_name, "run_name": run_name, "state": getattr(state, "value", state),
            "started": None if started is None else started.isoformat(),
            "ended": None if ended is None else ended.isoformat(),
            "duration": None if duration is None else iso_duration(duration), "run_history": run_history,
            "sweep_counter": sweep_counter, "unique_config_hash": unique_config_hash, "id": id}
