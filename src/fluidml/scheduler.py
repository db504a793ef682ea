"""The scheduler: a pure state machine over task ids (0 .. n-1, in task order).

No processes, no I/O: the same object drives every executor and is tested with plain lists.

State (every id is in exactly one of these)::

    waiting           id -> number of predecessors not finished yet (ids with a count > 0)
    ready             FIFO of ids whose predecessors all finished, not handed out yet
    running           ids handed out by pop_ready() and not reported back
    finished          ids reported finished (run or cached)
    failed            ids reported failed or killed
    upstream_failed   ids that can never run because an ancestor failed
    (stopped)         after stop(), ready ids stay unissued and nothing new is handed out

Moves::

    pop_ready()      ready -> running
    finished(id)     running -> finished; successors whose last predecessor this was -> ready
                     (returned, in successor order)
    failed(id)       running -> failed; every not-yet-started descendant -> upstream_failed
                     (returned, in task order)
    retry(id)        running -> ready again, at the end of the FIFO: an attempt that failed and
                     may run again, or a job that never started (after stop() it stays unissued,
                     so it counts as pending); its successors keep waiting
    stop()           no further pop_ready(); running ids still report back
"""

from collections import deque
from typing import Deque, Dict, List, Sequence, Set

__all__ = ["Scheduler"]


class Scheduler:
    """Decides which task may run next, given each task's predecessor ids."""

    def __init__(self, predecessors: Sequence[Sequence[int]]):
        n = len(predecessors)
        self.successors: List[List[int]] = [[] for _ in range(n)]
        self.waiting: Dict[int, int] = {}
        for task_id, preds in enumerate(predecessors):
            unique = list(dict.fromkeys(preds))
            for pred in unique:
                if not 0 <= pred < n or pred == task_id:
                    raise ValueError(f"task {task_id} has an invalid predecessor id {pred}")
                self.successors[pred].append(task_id)
            if unique:
                self.waiting[task_id] = len(unique)
        self.ready: Deque[int] = deque(i for i in range(n) if i not in self.waiting)
        self.running: Set[int] = set()
        self.finished_ids: Set[int] = set()
        self.failed_ids: Set[int] = set()
        self.upstream_failed: Set[int] = set()
        self.stopped = False
        self.total = n

    def pop_ready(self) -> int:
        """Hands out the next ready id (FIFO). Raises ``IndexError`` if none is ready or after stop()."""
        if self.stopped:
            raise IndexError("the scheduler was stopped")
        task_id = self.ready.popleft()
        self.running.add(task_id)
        return task_id

    def has_ready(self) -> bool:
        """True if pop_ready() would hand out an id."""
        return bool(self.ready) and not self.stopped

    def finished(self, task_id: int) -> List[int]:
        """Marks a running id finished; returns the successors that became ready."""
        self.running.remove(task_id)
        self.finished_ids.add(task_id)
        newly_ready = []
        for succ in self.successors[task_id]:
            count = self.waiting.get(succ)
            if count is None:
                continue  # already upstream-failed through another predecessor
            if count == 1:
                del self.waiting[succ]
                self.ready.append(succ)
                newly_ready.append(succ)
            else:
                self.waiting[succ] = count - 1
        return newly_ready

    def failed(self, task_id: int) -> List[int]:
        """Marks a running id failed; returns its descendants that can no longer run, in task order."""
        self.running.remove(task_id)
        self.failed_ids.add(task_id)
        lost: List[int] = []
        stack = list(self.successors[task_id])
        while stack:
            succ = stack.pop()
            if succ in self.waiting:
                del self.waiting[succ]
                self.upstream_failed.add(succ)
                lost.append(succ)
                stack.extend(self.successors[succ])
        return sorted(lost)

    def retry(self, task_id: int) -> None:
        """Puts a running id back into the ready FIFO (to run again, or as never started)."""
        self.running.remove(task_id)
        self.ready.append(task_id)

    def stop(self) -> None:
        """Hands out nothing more; ids already running still report back."""
        self.stopped = True

    @property
    def done(self) -> bool:
        """True when nothing runs and nothing more can be handed out."""
        return not self.running and not self.has_ready()

    @property
    def pending(self) -> List[int]:
        """Ids that were never handed out (waiting, or ready when the run stopped)."""
        return sorted([*self.waiting, *self.ready])
