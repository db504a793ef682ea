"""The pydantic records of ``fluidml.task``: ``TaskInfo`` and ``TaskResults``. Imported on first
access to ``fluidml.task.TaskInfo`` / ``TaskResults`` (module ``__getattr__``), so that
``import fluidml`` and a run do not import pydantic."""

import datetime
from typing import Any, Dict, Optional

from pydantic import BaseModel, ConfigDict

from fluidml.task_info import TaskState

__all__ = ["TaskInfo", "TaskResults"]


class TaskInfo(BaseModel):
    """What a results store keeps about a task run (saved as ``fluidml_info``)."""

    __module__ = "fluidml.task"  # its documented (and pickled) home
    model_config = ConfigDict(arbitrary_types_allowed=True, use_enum_values=True)

    project_name: str
    run_name: str
    state: Optional[TaskState] = None
    started: Optional[datetime.datetime] = None
    ended: Optional[datetime.datetime] = None
    duration: Optional[datetime.timedelta] = None
    run_history: Optional[Dict] = None
    sweep_counter: Optional[str] = None
    unique_config_hash: Optional[str] = None
    id: Optional[str] = None


class TaskResults(BaseModel):
    """The results of one expanded task, as returned by ``Flow.run()``."""

    __module__ = "fluidml.task"
    model_config = ConfigDict(arbitrary_types_allowed=True)

    task_name: str
    task_unique_name: str
    unique_config: Dict[str, Any]
    results: Optional[Dict[str, Any]] = None


_FIELDS = tuple(TaskResults.model_fields)
_set_attribute = object.__setattr__


def task_results(task_name: str, task_unique_name: str, unique_config: Dict[str, Any],
                 results: Optional[Dict[str, Any]]) -> TaskResults:
    """``TaskResults.model_construct(...)`` with all four fields, made in a few steps (``Flow.run``
    returns one per task; pydantic's general construction loops over the fields)."""
    made = TaskResults.__new__(TaskResults)
    _set_attribute(made, "__dict__", {"task_name": task_name, "task_unique_name": task_unique_name,
                                      "unique_config": unique_config, "results": results})
    _set_attribute(made, "__pydantic_fields_set__", set(_FIELDS))
    _set_attribute(made, "__pydantic_extra__", None)
    _set_attribute(made, "__pydantic_private__", None)
    return made
