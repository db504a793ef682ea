"""What a task asks a cluster for (``Requests``) and what it was given (``Allocation``).

Requests are declared on a ``TaskSpec`` (``requests=``) or per run (``Flow.run(requests=...)``)
and are used by executors that place tasks by their needs (the Ray executor). They are a
different thing from ``Flow.run(resources=...)``, which hands one value to each worker process.
"""

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Union

from fluidml.exception import TaskSpecError

__all__ = ["Allocation", "Requests"]

_MEMORY_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                 "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


@dataclass(frozen=True)
class Requests:
    """What one run of a task needs on a cluster.

    Args:
        cpus: CPU cores (fractions allowed); ``None`` keeps the engine's default (Ray: 1).
        gpus: GPUs; a fraction such as 0.25 lets four tasks share one GPU.
        memory: Memory to reserve, in bytes or as text such as ``"4GB"`` / ``"512MiB"``.
        custom: Custom resources by name, e.g. ``{"a100": 1}`` (declared by the cluster's nodes).
        retries: How often to run the task again when its worker process or node dies (not when
            the task raises); ``None`` keeps the executor's setting.
    """

    cpus: Optional[float] = None
    gpus: float = 0
    memory: Optional[int] = None
    custom: Mapping[str, float] = field(default_factory=dict)
    retries: Optional[int] = None

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
        if self.retries is not None and (not isinstance(self.retries, int) or self.retries < 0):
            raise TaskSpecError(f"Requests: retries must be a non-negative int, got {self.retries!r}.",
                                key="retries")

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
