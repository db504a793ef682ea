"""Signals to a driver running worker processes (scripts in a subprocess): SIGTERM stops the run as
Ctrl-C does, SIGKILL leaves no orphan behind, and a Ctrl-C while workers start is quiet.

Processes are checked through /proc, by the PIDs (and start times) recorded while the run went on.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Tuple

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")

SWEEP = """
import os, subprocess, sys, time
from pathlib import Path
from fluidml import Flow, TaskSpec, configure_logging
from fluidml.storage import LocalFileStore

OUT = Path(sys.argv[1])

def work(value, task):
    hold = float(os.environ.get("HOLD", "120"))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (OUT / f"started-{value}").write_text(f"{os.getpid()} {child.pid}")
    try:
        time.sleep(hold)
    finally:
        (OUT / f"cleaned-{value}").write_text("yes")
    child.kill()
    child.wait()
    task.save(value, "v")

if __name__ == "__main__":
    configure_logging("INFO", rich_logging=False)
    spec = TaskSpec(task=work, config={"value": [1, 2, 3, 4]}, expand="product")
    Flow([spec]).run(num_workers=2, results_store=LocalFileStore(str(OUT / "store")), run_name="sweep")
    print("SWEEP DONE")
"""

Proc = Tuple[int, str]  # (pid, start time)


def _stat(pid: int) -> List[str]:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()


def process_tree(root: int) -> List[Proc]:
    """``root`` and all its descendants now."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat(int(entry))
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    tree, stack = [(root, _stat(root)[19])], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            tree.append(child)
            stack.append(child[0])
    return tree


def alive(proc: Proc) -> bool:
    try:
        fields = _stat(proc[0])
    except OSError:
        return False
    return fields[19] == proc[1] and fields[0] not in ("Z", "X")


def start(tmp_path: Path, script: str, **env: str) -> subprocess.Popen:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.Popen([sys.executable, str(path), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, start_new_session=True, env={**os.environ, **env})


def wait_for(tmp_path: Path, pattern: str, count: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while len(list(tmp_path.glob(pattern))) < count:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[1] if proc.poll() else "timeout"
        time.sleep(0.05)


def stored_states(tmp_path: Path) -> dict:
    from fluidml.storage import LocalFileStore

    store = LocalFileStore(str(tmp_path / "store"))
    states = {}
    for value in (1, 2, 3, 4):
        info = store.load("fluidml_info", "work", {"work": {"value": value}})
        states[value] = info["state"] if info else None
    return states


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signalled_driver_leaves_no_process_and_a_rerun_finishes_the_sweep(tmp_path, signum):
    """SIGTERM or SIGKILL to a driver with two workers whose tasks each started a child process:
    5 s later no process of the driver's tree is alive (workers, the tasks' children, the
    multiprocessing resource tracker), the running tasks' finally blocks ran and their runs are
    KILLED in the store, stderr holds no traceback (SIGTERM: exit status 143), and a second run
    finishes the sweep (taking over the dead driver's claims)."""
    proc = start(tmp_path, SWEEP)
    try:
        wait_for(tmp_path, "started-*", 2, proc)
        time.sleep(0.3)  # the children the tasks started are up
        tree = process_tree(proc.pid)
        started = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("started-*"))
        children = [int(p.read_text().split()[1]) for p in tmp_path.glob("started-*")]
        assert set(children) <= {pid for pid, _ in tree} and len(tree) >= 6, tree  # + 2 workers, a tracker
        os.kill(proc.pid, signum)
        killed_at = time.monotonic()
        _, err = proc.communicate(timeout=60)
        time.sleep(max(0.0, killed_at + 5 - time.monotonic()))
        assert [p for p in tree if alive(p)] == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == (143 if signum == signal.SIGTERM else -signal.SIGKILL)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "lost sys.std" not in err, err
    assert sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("cleaned-*")) == started
    states = stored_states(tmp_path)
    assert [states[value] for value in started] == ["killed", "killed"]
    if signum == signal.SIGTERM:
        assert 'Task "work-1" was killed' in err and "2 killed, 2 not run" in err
    again = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path)], capture_output=True,
                           text=True, cwd=tmp_path, env={**os.environ, "HOLD": "0"}, timeout=120)
    assert again.returncode == 0 and "SWEEP DONE" in again.stdout, again.stderr
    assert list(stored_states(tmp_path).values()) == ["finished"] * 4
    if signum == signal.SIGKILL:
        assert f"taking over its claim from run \"sweep\" (pid {proc.pid} " in again.stderr


def test_ctrl_c_while_workers_start_reports_not_run_and_no_worker_traceback(tmp_path):
    """Workers that are still importing the script when Ctrl-C comes print nothing; their tasks
    never ran and are reported as not run (not failed); no worker is left."""
    proc = start(tmp_path, """
        import os, sys, time
        from pathlib import Path
        from fluidml import Flow, TaskSpec, configure_logging

        OUT = Path(sys.argv[1])
        if __name__ == "__mp_main__":  # a worker importing this script: slowly
            (OUT / f"importing-{os.getpid()}").write_text("")
            time.sleep(30)

        def work(value, task):
            task.save(value, "v")

        if __name__ == "__main__":
            configure_logging("INFO", rich_logging=False)
            Flow([TaskSpec(task=work, config={"value": [1, 2, 3, 4]}, expand="product")]).run(num_workers=2)
    """)
    try:
        wait_for(tmp_path, "importing-*", 2, proc)
        workers = [(int(p.name.split("-")[1]), _stat(int(p.name.split("-")[1]))[19]) for p in tmp_path.glob("importing-*")]
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert "__mp_main__" not in err and "spawn_main" not in err and "time.sleep(30)" not in err, err
    assert "4 not run" in err and "failed" not in err, err
    assert [w for w in workers if alive(w)] == []


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed on this machine")
def test_tmux_panes_close_when_the_driver_is_killed(tmp_path):
    env = {"TMUX_TMPDIR": str(tmp_path)}
    script = SWEEP.replace('run_name="sweep")', 'run_name="sweep", log_to_tmux=True, project_name="p")')
    proc = start(tmp_path, script, **env)
    tmux_env = {**os.environ, **env}
    try:
        wait_for(tmp_path, "started-*", 2, proc)
        assert subprocess.run(["tmux", "has-session", "-t", "=p--sweep"], env=tmux_env).returncode == 0
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while subprocess.run(["tmux", "has-session", "-t", "=p--sweep"], env=tmux_env,
                             capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "the tmux session outlived the driver"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(["tmux", "kill-server"], capture_output=True, env=tmux_env)


def test_sigterm_in_this_process_kills_the_task_and_raises_run_terminated(recorder):
    """flow.run in the main thread: SIGTERM interrupts the running task (KILLED) and run() raises
    RunTerminated (a SystemExit with code 143); the previous SIGTERM handler is back afterwards."""
    import longjobs_tasks as lt
    from fluidml import Flow, TaskSpec
    from fluidml.exception import RunTerminated

    before = signal.getsignal(signal.SIGTERM)
    flow = Flow([TaskSpec(task=lt.terminate_me), TaskSpec(task=lt.quick_pid)])
    with pytest.raises(RunTerminated) as info:
        flow.run(num_workers=1, observers=[recorder])
    assert info.value.code == 143 and info.value.signum == signal.SIGTERM
    assert str(info.value) == "the run was stopped by SIGTERM (exit status 143)"
    assert recorder.state("terminate_me") == "killed" and recorder.state("quick_pid") == "pending"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_run_in_another_thread_installs_no_signal_handler():
    import threading

    import longjobs_tasks as lt
    from fluidml import Flow, TaskSpec

    seen = {}
    flow = Flow([TaskSpec(task=lt.sigterm_handler)])
    seen["main"] = flow.run(num_workers=1)["sigterm_handler"][0].results["handler"]
    thread = threading.Thread(target=lambda: seen.update(other=flow.run(num_workers=1)["sigterm_handler"][0]))
    thread.start()
    thread.join(60)
    assert seen["main"] == "on_sigterm"
    assert seen["other"].results["handler"] != "on_sigterm"


def test_what_a_task_started_dies_with_its_worker(tmp_path):
    """A worker that dies (here: SIGKILL from its own task) takes the processes its task started
    with it: they are in its process group."""
    import longjobs_tasks as lt
    from fluidml import Flow, TaskSpec
    from fluidml.exception import TaskFailedError

    marker = tmp_path / "child"
    with pytest.raises(TaskFailedError, match="was ended by SIGKILL"):
        Flow([TaskSpec(task=lt.die_with_child, config={"marker": str(marker)})]).run(executor="processes")
    child = int(marker.read_text())
    child_proc = (child, _stat(child)[19]) if os.path.exists(f"/proc/{child}") else (child, "")
    deadline = time.monotonic() + 5
    try:
        while alive(child_proc):
            assert time.monotonic() < deadline, "the task's child outlived its worker"
            time.sleep(0.05)
    finally:
        if alive(child_proc):
            os.kill(child, signal.SIGKILL)
