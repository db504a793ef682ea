"""Tasks for the Ray tests (a module of their own, so that Ray workers import them by name)."""

import logging
import os
import signal
import time
from pathlib import Path


def report(task, tag=0, hold=0.0):
    """Saves what the task was given and when it ran; holds ``hold`` seconds in between."""
    started = time.time()
    time.sleep(hold)
    task.save({"resource": task.resource, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(),
               "started": started, "ended": time.time()}, "seen")


def make_array(size, task):
    import numpy as np

    task.save(np.arange(size, dtype=np.float64), "array")


def array_sum(array, task):
    task.save({"sum": float(array.sum()), "writeable": bool(array.flags.writeable)}, "summary")


def explode(task):
    raise ValueError("exploded on the cluster")


def die_once(marker, task):
    """Kills its own worker process the first time it runs (``marker`` remembers), then succeeds."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    task.save("survived", "status")


def talk(word, task):
    """Prints and logs a line naming its word."""
    print(f"printed {word}", flush=True)
    logging.getLogger("ray_tasks").warning("logged %s", word)
    task.save(word, "word")


def wait_for_interrupt(marker, task):
    """Runs (a Python loop, like a training loop) until interrupted; writes "started" and then how
    it ended to ``marker``. (Ray interrupts a task between Python steps, not inside a long C call.)"""
    path = Path(marker)
    path.write_text("started")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
        path.write_text("not interrupted")
    except KeyboardInterrupt:
        path.write_text("interrupted")
        raise


def train(lr, epochs, task):
    """A stand-in for training: a score from the config."""
    task.save({"score": round(lr * epochs, 6), "node": task.resource.node_id}, "metrics")


def best_score(metrics, task):
    """Reduce: the best run's config and score."""
    best = max(metrics, key=lambda sweep: sweep.value["score"])
    task.save({"score": best.value["score"], "config": dict(best.config)}, "best")
