"""The ``requires()`` / ``required_by()`` links shared by task specs and expanded tasks.

Its own small module so that ``task.py`` (expanded tasks) and ``task_spec.py`` (specs, which
import ``task.py``) both build on it without importing each other.
"""

from typing import Any, List

from fluidml.exception import TaskSpecError

__all__ = ["DependencyMixin"]


class DependencyMixin:
    """Predecessor and successor links, registered with ``requires()``."""

    def __init__(self) -> None:
        self._predecessors: List[Any] = []
        self._successors: List[Any] = []

    @property
    def predecessors(self) -> List[Any]:
        """A list of predecessor task/task spec objects, registered to this task/task spec."""
        return self._predecessors

    @predecessors.setter
    def predecessors(self, predecessors: List[Any]) -> None:
        self._predecessors = predecessors

    @property
    def successors(self) -> List[Any]:
        """A list of successor task/task spec objects, registered to this task/task spec."""
        return self._successors

    @successors.setter
    def successors(self, successors: List[Any]) -> None:
        self._successors = successors

    def requires(self, *predecessors: Any) -> None:
        """Registers one or more predecessors: ``requires(a)``, ``requires(a, b)`` or ``requires([a, b])``.

        Registering the same predecessor twice has no further effect.
        """
        if len(predecessors) == 1 and isinstance(predecessors[0], (list, tuple)):
            predecessors = tuple(predecessors[0])
        elif any(isinstance(p, (list, tuple)) for p in predecessors):
            raise TaskSpecError(
                f"{self!r}.requires() takes either several task specs or one list of them, not a mix."
            )
        for predecessor in predecessors:
            if not isinstance(predecessor, DependencyMixin):
                raise TaskSpecError(
                    f"{self!r}.requires() got {predecessor!r}; pass TaskSpec (or Task) objects."
                )
            if predecessor is self:
                raise TaskSpecError(f"{self!r} cannot require itself.")
            if any(p is predecessor for p in self._predecessors):
                continue
            self._predecessors.append(predecessor)
            predecessor.required_by(self)

    def required_by(self, successor: Any) -> None:
        """Registers a successor task/task spec object to the current task/task spec."""
        if not any(s is successor for s in self._successors):
            self._successors.append(successor)
