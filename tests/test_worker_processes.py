"""The worker pool seen from outside: scripts run in a subprocess with tasks defined in __main__,
their output in the parent's console, Ctrl-C, and tmux panes."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT_HEAD = """
import logging, os, sys, time
from pathlib import Path
from fluidml import Flow, Task, TaskSpec, configure_logging

OUT = Path(sys.argv[1])
"""


def run_script(tmp_path: Path, body: str, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_HEAD + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, **popen)


def test_main_module_tasks_and_output_reach_the_parent_once_labelled(tmp_path):
    """Classes and functions of __main__ run in spawned workers; each print and log line of a task
    appears once in the parent's output, labelled with its worker, even though the script sets up
    logging at import time (which every spawned worker repeats)."""
    proc = run_script(tmp_path, """
        configure_logging("INFO", rich_logging=False)   # at import time, on purpose

        class Shout(Task):
            def __init__(self, word):
                super().__init__()
                self.word = word

            def run(self):
                print(f"printed {self.word}")
                print(f"to stderr {self.word}", file=sys.stderr)
                logging.getLogger("user").info("logged %s", self.word)
                self.save(self.word.upper(), "loud")

        def whisper(loud, task):
            task.save(loud.lower(), "quiet")

        if __name__ == "__main__":
            shout = TaskSpec(task=Shout, config={"word": ["alpha", "beta", "gamma"]}, expand="product")
            quiet = TaskSpec(task=whisper)
            quiet.requires(shout)
            results = Flow([shout, quiet]).run(num_workers=2)
            print("RESULT", sorted(r.results["quiet"] for r in results["whisper"]))
    """)
    assert proc.returncode == 0, proc.stderr
    out, err = proc.stdout, proc.stderr
    assert "RESULT ['alpha', 'beta', 'gamma']" in out
    for word in ("alpha", "beta", "gamma"):
        printed = [line for line in out.splitlines() if line.endswith(f"printed {word}")]
        assert len(printed) == 1 and printed[0].startswith("[worker-")
        assert len([line for line in err.splitlines() if line.endswith(f"to stderr {word}")]) == 1
        logged = [line for line in err.splitlines() if line.endswith(f"logged {word}")]
        assert len(logged) == 1 and " worker-" in logged[0]


CTRL_C_SCRIPT = """
def slow(value, task):
    (OUT / f"started-{value}").write_text(str(os.getpid()))
    try:
        time.sleep(60)
    finally:
        (OUT / f"cleaned-{value}").write_text("yes")

if __name__ == "__main__":
    configure_logging("INFO", rich_logging=False)
    spec = TaskSpec(task=slow, config={"value": [1, 2, 3, 4]}, expand="product")
    Flow([spec]).run(num_workers=2)
"""


@pytest.mark.parametrize("target", ["group", "parent"])
def test_ctrl_c_kills_running_tasks_and_leaves_no_process(tmp_path, target):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it, or to the parent alone):
    the running tasks are interrupted (their `finally` runs), become KILLED, run() raises
    KeyboardInterrupt, and no worker process is left."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_HEAD + textwrap.dedent(CTRL_C_SCRIPT))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        if target == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    started = sorted(tmp_path.glob("started-*"))
    assert len(started) == 2 and len(list(tmp_path.glob("cleaned-*"))) == 2
    assert err.count("was killed") == 2 and "2 killed" in err
    for marker in started:
        pid = int(marker.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed on this machine")
def test_tmux_shows_one_pane_per_worker_and_is_cleaned_up(tmp_path):
    """log_to_tmux: a session "<project>--<run>" with a pane per worker showing that worker's log
    (max_panes_per_window=1: a window each); gone after the run. (A private tmux server:
    TMUX_TMPDIR points into tmp_path.)"""
    env = {**os.environ, "TMUX_TMPDIR": str(tmp_path)}
    env.pop("TMUX", None)
    proc = run_script(tmp_path, """
        import subprocess

        def look(value, task):
            print(f"hello from task {value}")
            time.sleep(1.0)
            panes = subprocess.run(["tmux", "list-panes", "-s", "-t", "proj--run1", "-F", "#{pane_id}"],
                                   capture_output=True, text=True).stdout.split()
            seen = ""
            for _ in range(50):  # the pane's `tail -F` shows the line within moments
                seen = "".join(subprocess.run(["tmux", "capture-pane", "-p", "-t", pane], capture_output=True,
                                              text=True).stdout for pane in panes)
                if f"hello from task {value}" in seen:
                    break
                time.sleep(0.1)
            windows = subprocess.run(["tmux", "list-windows", "-t", "proj--run1"], capture_output=True,
                                     text=True).stdout.splitlines()
            task.save({"panes": len(panes), "windows": len(windows), "shown": f"hello from task {value}" in seen},
                      "tmux")

        if __name__ == "__main__":
            spec = TaskSpec(task=look, config={"value": [1, 2]}, expand="product")
            results = Flow([spec]).run(num_workers=2, log_to_tmux=True, max_panes_per_window=1, project_name="proj",
                                       run_name="run1")
            print("SEEN", [r.results["tmux"] for r in results["look"]])
    """, env=env)
    try:
        assert proc.returncode == 0, proc.stderr
        seen = "{'panes': 2, 'windows': 2, 'shown': True}"
        assert f"SEEN [{seen}, {seen}]" in proc.stdout
        sessions = subprocess.run(["tmux", "has-session", "-t", "proj--run1"], capture_output=True, env=env)
        assert sessions.returncode != 0
        assert not any(Path(d).name.startswith("fluidml-tmux-") for d in os.listdir(tmp_path))
    finally:
        subprocess.run(["tmux", "kill-server"], capture_output=True, env=env)


def test_tmux_missing_gives_a_warning_and_the_run_goes_on(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # no tmux on this PATH
    proc = run_script(tmp_path, """
        def noop(value, task):
            task.save(value, "v")

        if __name__ == "__main__":
            configure_logging("INFO", rich_logging=False)
            spec = TaskSpec(task=noop, config={"value": [1, 2]}, expand="product")
            results = Flow([spec]).run(num_workers=2, log_to_tmux=True)
            print("VALUES", [r.results["v"] for r in results["noop"]])
    """, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "VALUES [1, 2]" in proc.stdout
    assert "log_to_tmux=True, but tmux is not installed" in proc.stderr


def test_main_module_objects_stay_themselves_in_workers(tmp_path):
    """A script's own functions and classes reach workers as the script's objects, not copies: a
    task can hand a script function to its own multiprocessing pool, results are instances of the
    script's classes, tracebacks show the script's file and lines, and `except` catches the script's
    exception class. Code that needs a real descriptor (a subprocess's stdout) gets one."""
    proc = run_script(tmp_path, """
        import dataclasses, multiprocessing, subprocess, traceback

        @dataclasses.dataclass
        class Point:
            x: int

        class Refused(Exception):
            pass

        def square(x):
            return x * x

        def work(value, task):
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                total = sum(pool.map(square, range(value)))
            subprocess.run([sys.executable, "-c", "print('from a subprocess')"], stdout=sys.stdout, check=True)
            task.save(Point(total), "point")

        def refuse(point, task):
            raise Refused(f"no {point.x}")

        if __name__ == "__main__":
            from fluidml.storage import InMemoryStore

            store = InMemoryStore()
            first = TaskSpec(task=work, config={"value": [3, 4]}, expand="product")
            results = Flow([first]).run(num_workers=2, return_results="all", results_store=store)
            points = [r.results["point"] for r in results["work"]]
            print("POINTS", [p.x for p in points], all(isinstance(p, Point) for p in points))
            second = TaskSpec(task=refuse)
            second.requires(first)
            try:
                Flow([first, second]).run(num_workers=2, results_store=store)  # `work` is cached
            except Refused as error:
                print("CAUGHT", error)
                print("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert "POINTS [5, 14] True" in proc.stdout
    assert proc.stdout.count("from a subprocess") == 2
    assert "CAUGHT no " in proc.stdout
    script = str(tmp_path / "script.py")
    assert f'File "{script}", line ' in proc.stdout and 'raise Refused(f"no {point.x}")' in proc.stdout
