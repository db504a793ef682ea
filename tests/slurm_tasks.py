"""Tasks for the Slurm tests (a module of their own, so that jobs import them by name)."""

import os
import signal
import time
from pathlib import Path


def job_id() -> str:
    """The Slurm id of the job running the caller: ``123`` or, in a job array, ``123_4``."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID", "")


def report(task, tag=0, hold=0.0):
    """Saves its job id and what it was given; holds ``hold`` seconds."""
    started = time.time()
    time.sleep(hold)
    task.save({"job": job_id(), "resource": task.resource, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "started": started, "ended": time.time()}, "seen")


def wait_for_release(folder, task):
    """Notes each start in ``<folder>/runs``, then waits for ``<folder>/release`` (up to 120 s). An
    interruption (SIGTERM from scancel) is noted in ``<folder>/interrupted``."""
    folder = Path(folder)
    with open(folder / "runs", "a") as runs:
        runs.write(f"{job_id()}\n")
    try:
        deadline = time.monotonic() + 120
        while not (folder / "release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{folder / 'release'} did not appear")
            time.sleep(0.1)
    except KeyboardInterrupt:
        (folder / "interrupted").write_text(job_id())
        raise
    task.save(job_id(), "job")


def after(job, task):
    """A successor: saves the job id its predecessor saved."""
    task.save({"after": job, "job": job_id()}, "after")


def die_once(marker, task):
    """Kills its own job's process the first time it runs (``marker`` remembers), then succeeds."""
    path = Path(marker)
    if not path.exists():
        path.write_text(job_id())
        print("about to die", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    task.save("survived", "status")
