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


def test_plain_format_has_time_level_and_process_columns(capsys):
    """Without rich, lines read "<date time> <LEVEL> <process> <message>" on stderr."""
    configure_logging("INFO", rich_logging=False, rich_traceback=False)
    grid(2).run(num_workers=1)
    err = capsys.readouterr().err.splitlines()
    started = [line for line in err if "Started task" in line]
    assert len(started) == 2
    assert re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO     MainProcess   Started task "source-1" .*',
                        started[0])


def test_rich_handler_writes_to_stderr(capsys):
    """The rich handler prints the run's lines to stderr, with the process name column."""
    configure_logging("INFO", rich_traceback=False)
    grid(1).run(num_workers=1)
    out, err = capsys.readouterr()
    assert out == ""
    assert "MainProcess" in err and "Finished task" in err


def test_run_log_lines(caplog):
    """Started / Finished with [k/N - p%] / already executed lines, and a closing summary."""
    caplog.set_level(logging.INFO, logger="fluidml")
    flow = grid(2)
    store = InMemoryStore()
    flow.run(results_store=store, run_name="one", num_workers=1)
    flow.run(results_store=store, run_name="two", num_workers=1)
    messages = [r.getMessage() for r in caplog.records]
    assert any(re.fullmatch(r'Started task "source-1" \(new config [0-9a-z]{8}\)', m) for m in messages)
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
