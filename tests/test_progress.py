"""The live progress display on a terminal (read back from a pseudo-terminal), its switches, and
the closing summary."""

import re
import textwrap

import pytest

from fluidml.driver import RunSummary
from fluidml.progress import format_duration, progress_observers, summary_lines
from fluidml.task import TaskState
from screen import ANSI, run_in_pty

RUN = textwrap.dedent("""
    import time
    from fluidml import Flow, TaskSpec

    def slow(i):
        time.sleep(0.4 * SLOW)

    def boom(i):
        time.sleep(0.2 * SLOW)
        raise ValueError("bad value " + str(i) + "\\nsecond line")

    def after(task):
        pass

    good = TaskSpec(task=slow, config={"i": [1, 2, 3]}, expand="product")
    bad = TaskSpec(task=boom, config={"i": 7})
    skipped = TaskSpec(task=after, name="after")
    skipped.requires(bad)
    Flow([good, bad, skipped]).run(run_name="watched", exit_on_error=False, num_workers=1, **KWARGS)
    print("RUN RETURNED")
""")


def script(kwargs="", slow=1):
    return RUN.replace("**KWARGS", kwargs).replace("SLOW", str(slow))


def screen_text(raw):
    return ANSI.sub("", raw).replace("\r", "\n")


def test_live_display_on_a_terminal_shows_counts_running_names_and_the_summary():
    """On a terminal: done / running / failed / skipped of the total, the running task's name,
    elapsed time; then a summary with counts, the failure's first line and the store."""
    code, raw = run_in_pty(script())
    assert code == 0, raw
    text = screen_text(raw)
    assert re.search(r"fluidml watched .*0/5 done \(0 cached\), 1 running, 0 failed, 0:00:0\d", text), text
    assert re.search(r"running: slow-1\b", text)
    assert re.search(r"running: slow-2\b", text)
    assert re.search(r"1/5 done \(0 cached\), \d running, 0 failed", text)
    summary = text[text.rindex("Run watched"):]
    assert re.search(r"Run watched \(project uncategorized\): 5 tasks in \d\.\d\ds", summary)
    assert re.search(r"finished +3 *\n", summary) and re.search(r"\nfailed +1 *\n", summary)
    assert re.search(r"upstream failed +1 *\n", summary)
    assert re.search(r"boom +ValueError: bad value 7 *\n", summary)
    assert "second line" not in summary
    assert "Results: InMemoryStore (ran in this process)" in summary
    assert summary.rstrip().endswith("RUN RETURNED")


@pytest.mark.parametrize("switch, env", [("progress=False", {}), ("", {"FLUIDML_PROGRESS": "0"}),
                                         ("", {"FLUIDML_PROGRESS": "off"})])
def test_display_can_be_switched_off(switch, env):
    """Flow.run(progress=False) or FLUIDML_PROGRESS=0/off: nothing is drawn, even on a terminal."""
    code, raw = run_in_pty(script(switch, slow=0), env=env)
    assert code == 0, raw
    text = screen_text(raw)
    assert text.rstrip().endswith("RUN RETURNED")
    assert "running:" not in text and "fluidml watched" not in text and "Run watched" not in text
    assert 'Task "boom" failed' in text  # the error is still reported (Python's last-resort handler)


def test_nothing_is_drawn_when_stdout_is_not_a_terminal(capsys):
    """Off a terminal (CI, files) no display is added: the log lines tell the same in plain text."""
    assert progress_observers(True) == []
    assert capsys.readouterr().out == ""


def test_log_lines_on_a_terminal_appear_above_the_display():
    """With configure_logging(), log lines and the display share the terminal without mixing."""
    code, raw = run_in_pty("from fluidml import configure_logging\nconfigure_logging('info')\n"
                           + script())
    assert code == 0, raw
    text = screen_text(raw)
    finished = re.findall(r'INFO +main +Finished task "slow-\d" \[\d/5 - \d+%\]', text)
    assert len(finished) == 3
    assert all("running:" not in line for line in text.splitlines() if "Finished task" in line)


def test_summary_lines_list_states_in_order_and_failures():
    """Plain summary: finished (cached), failed, killed, upstream failed, not run; then failures."""
    summary = RunSummary(run_name="r", project_name="p", total=6, store="LocalFileStore(/data)", cached=2,
                         duration=3.5)
    summary.states = {"a": TaskState.FINISHED, "b": TaskState.FINISHED, "c": TaskState.FAILED,
                      "d": TaskState.KILLED, "e": TaskState.UPSTREAM_FAILED, "f": TaskState.PENDING}
    summary.failures = [("c", "ValueError: no"), ("d", "killed")]
    assert summary_lines(summary) == [
        'Run "r" ended after 3.50s: 2 finished (2 already executed), 1 failed, 1 killed, 1 upstream failed, '
        "1 not run. Results: LocalFileStore(/data).",
        '  failed: "c": ValueError: no',
        '  failed: "d": killed',
    ]


@pytest.mark.parametrize("seconds, text", [(0.421, "0.42s"), (12.34, "12.3s"), (245, "4m 05s"),
                                           (7387, "2h 03m 07s")])
def test_durations_read_naturally(seconds, text):
    """Times in the summary: seconds, then minutes and hours."""
    assert format_duration(seconds) == text


def test_the_display_follows_a_worker_pool_and_shows_worker_output_above_it():
    """With two worker processes: two tasks run at once, and a task's print appears once, labelled
    with its worker, outside the display."""
    code = script().replace("num_workers=1", "num_workers=2")
    code = code.replace("time.sleep(0.4 * 1)", 'print("hello from", i); time.sleep(0.4)')
    exit_code, raw = run_in_pty(code)
    assert exit_code == 0, raw
    text = screen_text(raw)
    assert re.search(r"\d/5 done \(0 cached\), 2 running", text), text
    for i in (1, 2, 3):  # (the ANSI-stripped text may join it to the display's last line: count matches)
        assert len(re.findall(rf"hello from {i}\b", text)) == 1, text
        assert re.search(rf"\[worker-\d\] hello from {i} *$", text, re.MULTILINE), text
    assert "Results: InMemoryStore (ran on 2 worker processes (spawn))" in text
