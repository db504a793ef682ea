"""What a task asks for (``Requests``) and what it was given on a cluster (``Allocation``).

Requests are declared on a ``TaskSpec`` (``requests=``) or per run (``Flow.run(requests=...)``).
Resources (cpus, gpus, memory, custom) are used by executors that place tasks by their needs (the
Ray executor); retries and timeouts apply on every executor. Resources are a different thing from
``Flow.run(resources=...)``, which hands one value to each worker process.
"""

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, Union

from fluidml.exception import TaskSpecError

__all__ = ["Allocation", "Requests"]

_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$")
_MEMORY_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                 "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


@dataclass(frozen=True)
class Requests:
    """What one run of a task needs: resources on a cluster, retries and a time limit.

    Args:
        cpus: CPU cores (fractions allowed); ``None`` keeps the engine's default (Ray: 1).
        gpus: GPUs; a fraction such as 0.25 lets four tasks share one GPU.
        memory: Memory to reserve, in bytes or as text such as ``"4GB"`` / ``"512MiB"``.
        custom: Custom resources by name, e.g. ``{"a100": 1}`` (declared by the cluster's nodes).
        retries: How often the task runs again after a failed attempt, on every executor: always
            when its worker process or node died, and when it raised an instance of ``retry_on``.
            ``None`` keeps the executor's default (``RayExecutor(max_retries=N)``; 0 elsewhere).
        retry_on: Exception classes that make a failed attempt worth another one (a class or a
            tuple of them, e.g. ``(ConnectionError, TaskTimeoutError)``); other exceptions fail the
            task at once. Default: none.
        retry_delay: Seconds (or text such as ``"30s"``, ``"2m"``) to wait before the second
            attempt; each further wait is ``retry_backoff`` times longer. Default: no wait.
        retry_backoff: The factor by which each wait between attempts grows (at least 1).
        timeout: The most time one attempt's ``__init__`` and ``run()`` may take, in seconds or as
            text with a unit: ``"90s"``, ``"30m"`` (minutes), ``"2h"``, ``"1d"``. At the deadline
            the task is interrupted (``TaskTimeoutError`` is raised in it, so its ``finally``
            blocks run); if it has not stopped 10 s later, it is killed. Loading inputs does not count.
    """

    cpus: Optional[float] = None
    gpus: float = 0
    memory: Optional[int] = None
    custom: Mapping[str, float] = field(default_factory=dict)
    retries: Optional[int] = None
    retry_on: Tuple[Type[Exception], ...] = ()
    retry_delay: float = 0.0
    retry_backoff: float = 2.0
    timeout: Optional[float] = None

    def __post_init__(self) -> None:
        _check_amount("cpus", self.cpus, optional=True)
        _check_amount("gpus", self.gpus)
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise TaskSpecError(f"Requests: gpus={self.gpus!r}; more than one GPU must be a whole number.",
                                key="gpus")
        object.__setattr__(self, "memory", _memory_bytes(self.memory))
        if not isinstance(self.custom, Mapping) or not all(isinstance(k, str) for k in self.custom):
            raise TaskSpecError(f"Requests: custom must map resource names to amounts, got {self.custom!r}.",
                                key="custom")
        for name, amount in self.custom.items():
            _check_amount(f"custom[{name!r}]", amount)
        object.__setattr__(self, "custom", dict(self.custom))
        if self.retries is not None and (isinstance(self.retries, bool) or not isinstance(self.retries, int)
                                         or self.retries < 0):
            raise TaskSpecError(f"Requests: retries must be a non-negative int, got {self.retries!r}.",
                                key="retries")
        object.__setattr__(self, "retry_on", _exception_classes(self.retry_on))
        object.__setattr__(self, "retry_delay", _seconds("retry_delay", self.retry_delay, allow_zero=True))
        if isinstance(self.retry_backoff, bool) or not isinstance(self.retry_backoff, (int, float)) \
                or not self.retry_backoff >= 1:
            raise TaskSpecError(f"Requests: retry_backoff must be a number of at least 1, got {self.retry_backoff!r}.",
                                key="retry_backoff")
        if self.timeout is not None:
            object.__setattr__(self, "timeout", _seconds("timeout", self.timeout))

    def retries_or(self, default: int) -> int:
        """The number of retries: ``retries``, or ``default`` (the executor's) when it is None."""
        return default if self.retries is None else self.retries

    def retry_wait(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 for the first retry)."""
        return self.retry_delay * self.retry_backoff ** max(0, attempt - 2) if self.retry_delay else 0.0

    @classmethod
    def of(cls, value: Union["Requests", Mapping[str, Any], None], task_name: str) -> Optional["Requests"]:
        """``value`` as Requests: a Requests, a dict of its fields, or None. Errors name the task."""
        if value is None or isinstance(value, Requests):
            return value
        if not isinstance(value, Mapping):
            raise TaskSpecError(f'Task "{task_name}": requests must be a fluidml.Requests or a dict, got '
                                f"{type(value).__name__}.", task_name=task_name, key="requests")
        known = [f.name for f in fields(cls)]
        unknown = [key for key in value if key not in known]
        if unknown:
            raise TaskSpecError(f'Task "{task_name}": unknown request {unknown[0]!r}; use {known}.',
                                task_name=task_name, key=str(unknown[0]))
        try:
            return cls(**value)
        except TaskSpecError as exc:
            raise TaskSpecError(f'Task "{task_name}": {exc}', task_name=task_name, key=exc.key) from None

    def ray_options(self) -> Dict[str, Any]:
        """The matching options of a Ray task (``num_cpus``, ``num_gpus``, ``memory``, ``resources``)."""
        options: Dict[str, Any] = {}
        if self.cpus is not None:
            options["num_cpus"] = self.cpus
        if self.gpus:
            options["num_gpus"] = self.gpus
        if self.memory is not None:
            options["memory"] = self.memory
        if self.custom:
            options["resources"] = dict(self.custom)
        return options


@dataclass(frozen=True)
class Allocation:
    """What a task running on a cluster was given; the task sees it as ``task.resource``.

    Attributes:
        cpus: CPU cores reserved for it.
        gpus: GPUs reserved for it (a fraction when it shares one).
        gpu_ids: The ids of its GPUs; ``CUDA_VISIBLE_DEVICES`` lists exactly these.
        memory: Bytes of memory reserved, or None.
        custom: Custom resources reserved, by name.
        node_id: The cluster node it runs on.
    """

    cpus: float = 0
    gpus: float = 0
    gpu_ids: List[str] = field(default_factory=list)
    memory: Optional[int] = None
    custom: Dict[str, float] = field(default_factory=dict)
    node_id: str = ""


def _check_amount(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise TaskSpecError(f"Requests: {name} must be a non-negative number, got {value!r}.", key=name)


def _seconds(name: str, value: Any, allow_zero: bool = False) -> float:
    """A duration in seconds from a number or text with a unit (s, m = minutes, h, d)."""
    seconds: Optional[float] = None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    if seconds is None or not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        what = "non-negative" if allow_zero else "positive"
        raise TaskSpecError(f'Requests: {name}={value!r} is not a {what} duration; give seconds (e.g. 90) or text '
                            f'with a unit: "90s", "30m" (minutes), "2h", "1d".', key=name)
    return seconds


def _exception_classes(value: Any) -> Tuple[Type[Exception], ...]:
    """``retry_on`` as a tuple of exception classes (a single class is accepted)."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, Exception)):
            raise TaskSpecError(f"Requests: retry_on takes exception classes (e.g. ConnectionError or a tuple of "
                                f"them), got {item!r}.", key="retry_on")
    return tuple(items)


def _memory_bytes(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().upper().replace(" ", "")
        number = text.rstrip("KMGTIB")
        unit = text[len(number):]
        try:
            value = float(number) * _MEMORY_UNITS[unit]
        except (ValueError, KeyError):
            raise TaskSpecError(f'Requests: memory={value!r} is not a size; write bytes or e.g. "4GB", "512MiB".',
                                key="memory") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise TaskSpecError(f"Requests: memory must be a positive number of bytes, got {value!r}.", key="memory")
    return int(value)
