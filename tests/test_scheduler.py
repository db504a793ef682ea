"""The scheduler is a pure state machine: tested with plain lists of predecessor ids."""

import pytest

from fluidml.scheduler import Scheduler


def test_roots_are_ready_in_task_order():
    """Tasks without predecessors are handed out first, FIFO in task order."""
    s = Scheduler([[], [0], [], [1, 2]])
    assert list(s.ready) == [0, 2]
    assert s.pop_ready() == 0
    assert s.pop_ready() == 2
    assert not s.has_ready()


def test_finished_releases_successors_when_all_predecessors_finished():
    """A successor becomes ready only with its last predecessor, and finished() returns it."""
    s = Scheduler([[], [], [0, 1]])
    a, b = s.pop_ready(), s.pop_ready()
    assert s.finished(a) == []
    assert s.waiting == {2: 1}
    assert s.finished(b) == [2]
    assert s.pop_ready() == 2
    assert s.finished(2) == []
    assert s.done and s.finished_ids == {0, 1, 2}


def test_breadth_first_order_of_a_grid():
    """A(2) -> b(2 each) -> reducer runs A-1, A-2, b-1..b-4, reducer, as the original did."""
    preds = [[], [], [0], [0], [1], [1], [2, 3, 4, 5]]
    s = Scheduler(preds)
    order = []
    while not s.done:
        task_id = s.pop_ready()
        order.append(task_id)
        s.finished(task_id)
    assert order == [0, 1, 2, 3, 4, 5, 6]


def test_failure_marks_every_descendant_upstream_failed():
    """failed() returns all not-yet-started descendants, in task order, and they never run."""
    s = Scheduler([[], [0], [1], [], [2, 3]])
    s.pop_ready()  # 0
    s.pop_ready()  # 3
    assert s.failed(0) == [1, 2, 4]
    assert s.upstream_failed == {1, 2, 4}
    assert s.finished(3) == []  # 4 already lost through 0
    assert s.done and not s.has_ready()


def test_independent_branch_keeps_running_after_a_failure():
    """Without stop(), tasks that do not depend on the failed one still become ready."""
    s = Scheduler([[], [], [1]])
    s.pop_ready(), s.pop_ready()
    s.failed(0)
    assert s.finished(1) == [2]
    assert s.pop_ready() == 2


def test_stop_hands_out_nothing_more_but_running_tasks_report_back():
    """After stop(), ready ids stay pending, and running ids can still finish."""
    s = Scheduler([[], [], []])
    first = s.pop_ready()
    s.stop()
    assert not s.has_ready()
    with pytest.raises(IndexError):
        s.pop_ready()
    s.finished(first)
    assert s.done
    assert s.pending == [1, 2]


def test_duplicate_predecessors_count_once():
    """A predecessor listed twice does not make its successor wait forever."""
    s = Scheduler([[], [0, 0]])
    s.pop_ready()
    assert s.finished(0) == [1]


def test_invalid_predecessor_ids_are_rejected():
    """Ids outside the task range (or a task depending on itself) are an error."""
    with pytest.raises(ValueError, match="invalid predecessor"):
        Scheduler([[1]])
    with pytest.raises(ValueError, match="invalid predecessor"):
        Scheduler([[0]])


def test_long_chain_is_handled_without_recursion():
    """A chain of 20000 tasks runs through in order (no recursion anywhere)."""
    n = 20000
    s = Scheduler([[]] + [[i - 1] for i in range(1, n)])
    count = 0
    while not s.done:
        task_id = s.pop_ready()
        assert task_id == count
        s.finished(task_id)
        count += 1
    assert count == n


def test_retry_puts_a_running_id_back_at_the_end_of_the_ready_queue():
    """retry(): the id runs again after the ids already ready; its successors keep waiting."""
    s = Scheduler([[], [], [0]])
    first = s.pop_ready()
    s.retry(first)
    assert list(s.ready) == [1, 0] and s.running == set() and s.waiting == {2: 1}
    assert s.pop_ready() == 1 and s.pop_ready() == 0
    s.finished(1)
    assert s.finished(0) == [2]


def test_a_retried_id_after_stop_counts_as_pending():
    """A job that never started, put back after stop(), is never handed out and is pending."""
    s = Scheduler([[], [0]])
    task_id = s.pop_ready()
    s.stop()
    s.retry(task_id)
    assert s.done and not s.has_ready()
    assert s.pending == [0, 1]
