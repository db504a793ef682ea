"""configure_logging() and the log lines of a run."""

import logging
import re
import subprocess
import sys

import pytest

import pipelines as p
from fluidml import Flow, TaskSpec, configure_logging
from fluidml.logging import _progress
from fluidml.storage import InMemoryStore


def fluidml_handlers():
    return [h for h in logging.getLogger().handlers if getattr(h, "_fluidml_handler", False)]


def grid(n):
    return Flow([TaskSpec(task=p.source, config={"value": list(range(n))}, expand="product")])


def test_configure_logging_is_idempotent():
    """Calling it twice leaves one handler: no doubled lines."""
    configure_logging("INFO")
    configure_logging("DEBUG")
    assert len(fluidml_handlers()) == 1
    assert logging.getLogger().level == logging.DEBUG


@pytest.mark.parametrize("level, number", [("info", 20), ("Warning", 30), ("WARN", 30), ("fatal", 50), (10, 10)])
def test_level_names_in_any_case(level, number):
    """Level names are accepted in any case, and numbers as they are."""
    configure_logging(level, rich_traceback=False)
    assert logging.getLogger().level == number
    assert fluidml_handlers()[0].level == number


@pytest.mark.parametrize("level", ["loud", None, 2.5, True])
def test_invalid_levels_are_explained(level):
    """An unknown level raises ValueError listing the valid names."""
    with pytest.raises(ValueError, match="level"):
        configure_logging(level)


def test_plain_format_has_time_level_and_worker_columns(capsys):
    """Without rich, lines read "<date time> <LEVEL> <worker> <message>" on stderr ("main" here)."""
    configure_logging("INFO", rich_logging=False, rich_traceback=False)
    grid(2).run(num_workers=1)
    err = capsys.readouterr().err.splitlines()
    started = [line for line in err if "Started task" in line]
    assert len(started) == 2
    assert re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO     main      Started task "source-1" .*',
                        started[0])


def test_rich_handler_writes_to_stderr(capsys):
    """The rich handler prints the run's lines to stderr, with the time and worker columns."""
    configure_logging("INFO", rich_traceback=False)
    grid(1).run(num_workers=1)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert re.match(r"\[\d\d:\d\d:\d\d\] INFO +main +Run ", lines[0]), lines[0]
    finished = next(line for line in lines if "Finished task" in line)
    assert re.match(r" *INFO +main +Finished task", finished), finished  # (rich leaves a repeated time out)


def test_run_log_lines(caplog):
    """The plan per task name, Started (with why) / Finished with [k/N - p%] / already executed lines,
    and a closing summary."""
    caplog.set_level(logging.INFO, logger="fluidml")
    flow = grid(2)
    store = InMemoryStore()
    flow.run(results_store=store, run_name="one", num_workers=1)
    flow.run(results_store=store, run_name="two", num_workers=1)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("source: 0 cached, 2 to run (new config)") == 1
    assert messages.count("source: 2 cached, 0 to run") == 1
    assert any(re.fullmatch(r'Started task "source-1" \(new config; config [0-9a-z]{8}\)', m) for m in messages)
    assert 'Finished task "source-1" [1/2 - 50%]' in messages
    assert 'Finished task "source-2" [2/2 - 100%]' in messages
    assert any(re.fullmatch(r'Task "source-2" already executed \(config [0-9a-z]{8}\) \[2/2 - 100%\]', m)
               for m in messages)
    assert any(m.startswith('Run "two" ended after') and "2 finished (2 already executed)" in m for m in messages)


def test_progress_rounds_half_to_even():
    """The percentage uses Python's rounding, as the original (1/8 -> 12%, 5/8 -> 62%)."""
    assert _progress(1, 8) == "[1/8 - 12%]"
    assert _progress(5, 8) == "[5/8 - 62%]"


def test_a_run_does_not_touch_the_root_logger():
    """Without configure_logging(), running a flow adds no handler and changes no level."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    grid(2).run(num_workers=1)
    assert root.handlers == handlers and root.level == level


def test_importing_fluidml_has_no_global_side_effects():
    """Importing fluidml keeps warnings.showwarning, the root logger and the start method as they were."""
    code = (
        "import logging, multiprocessing, warnings\n"
        "show = warnings.showwarning\n"
        "import fluidml, fluidml.storage, fluidml.task\n"
        "assert warnings.showwarning is show\n"
        "assert logging.getLogger().handlers == []\n"
        "assert multiprocessing.get_start_method(allow_none=True) is None\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "clean"


def forwarded_record(message, worker):
    """A record as the worker pool re-emits it in the parent: made in a worker, tagged with its name."""
    record = logging.LogRecord("fluidml.runner", logging.INFO, __file__, 1, message, None, None)
    if worker is not None:
        record.worker = worker
    return record


@pytest.mark.parametrize("rich_logging", [False, True])
def test_worker_column_names_the_worker_that_logged(capsys, rich_logging):
    """Records forwarded from a worker show its name; records made in this process show "main"."""
    configure_logging("INFO", rich_logging=rich_logging, rich_traceback=False)
    logging.getLogger("fluidml.runner").handle(forwarded_record("from the pool", "worker-2"))
    logging.getLogger("fluidml.runner").info("from here")
    err = capsys.readouterr().err
    assert re.search(r"INFO +worker-2 +from the pool", err), err
    assert re.search(r"INFO +main +from here", err), err


def test_closing_summary_lines(caplog):
    """The run ends with counts per state, the time, where results are, and each failure's first line."""
    caplog.set_level(logging.INFO, logger="fluidml")
    src = TaskSpec(task=p.source, config={"value": 1})
    bad = TaskSpec(task=p.fail, config={"message": "exploded\nsecond line"})
    after = TaskSpec(task=p.double, name="after")
    bad.requires(src)
    after.requires(bad)
    Flow([src, bad, after]).run(run_name="sum", exit_on_error=False, num_workers=1)
    messages = [r.getMessage() for r in caplog.records if r.name == "fluidml.flow"]
    closing = messages[-2:]
    assert re.fullmatch(r'Run "sum" ended after \d+\.\d\ds: 1 finished \(0 already executed\), 1 failed, '
                        r"1 upstream failed\. Results: InMemoryStore\.", closing[0]), closing
    assert closing[1] == '  failed: "fail": ValueError: exploded'
