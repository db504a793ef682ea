"""Tasks of the integrity tests (module-level, so every executor can import them)."""

import os
import sys
from typing import List

from fluidml import Task
from fluidml.storage import LocalFileStore, Sweep, TypeInfo


def produce(value, task):
    """Saves its value as "x" (pickle)."""
    task.save(value, "x")


def attempt(value, task, fail=False):
    """Saves "x" (and, when it fails, "extra" first) and appends to a log; fails if ``fail``."""
    with task.open("log", mode="a", type_="text") as log:
        log.write(f"attempt fail={fail}\n")
    if fail:
        task.save("from the failed attempt", "extra")
    task.save(value, "x")
    if fail:
        raise RuntimeError("this attempt fails")


def consume(x, task, extra="default"):
    """Saves what it got: x, and extra (or its default)."""
    task.save([x, extra], "seen")


def total(x: List[Sweep], task):
    """Reduce: the sum of every x and how many there were."""
    task.save(sum(s.value for s in x), "total")
    task.save(len(x), "count")


def exits(task, code=3):
    """Calls sys.exit inside the task."""
    sys.exit(code)


class UnprintableError(Exception):
    """An exception whose __str__ raises."""

    def __str__(self):
        raise RuntimeError("no text for this error")


def unprintable(task):
    raise UnprintableError("hidden")


class SlowTask(Task):
    """Saves its value after a short while (so it runs beside a failing task in a pool)."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def run(self):
        import time

        time.sleep(0.5)
        self.save(self.value, "x")


def takes_kwarg(task, lock=None):
    task.save(lock is not None, "had_lock")


def attempt_plain(value, task, fail=False):
    """Like ``attempt``, without a log (for stores that cannot open files)."""
    if fail:
        task.save("from the failed attempt", "extra")
    task.save(value, "x")
    if fail:
        raise RuntimeError("this attempt fails")


def produce_bytes(size, task):
    """Saves ``size`` bytes as "x" (large enough for several GridFS chunks)."""
    task.save(bytes(range(256)) * (size // 256), "x")


def _write_text(obj, file):
    file.write(str(obj))


def _read_text(file):
    return file.read()


def _open_full_disk(path, mode, **kwargs):
    """Opens /dev/full instead of ``path``: every write there fails with ENOSPC, as on a full disk."""
    return open("/dev/full", mode, **kwargs)


class FullDiskStore(LocalFileStore):
    """A LocalFileStore whose type "full" writes to a full disk."""

    def __init__(self, base_dir):
        super().__init__(base_dir)
        self.type_registry["full"] = TypeInfo(_write_text, _read_text, "txt", open_fn=_open_full_disk)


def saves_to_full_disk(task):
    task.save("x" * 100000, "big", type_="full")


def saves_long_name(task):
    task.save(1, "n" * 300)


def blocks_its_info(task):
    """Puts a directory where its run's info file goes, so that the info cannot be written."""
    os.mkdir(os.path.join(task.get_store_context().run_dir, "fluidml_info.json"))


def removes_its_run(task):
    """Removes its own run through another store object (as another process's force would), then saves."""
    LocalFileStore(task.results_store.base_dir).delete_run(task.name, task.unique_config)
    task.save(1, "x")


def saves_config(task, type_="json"):
    task.save({"mine": True}, "config", type_=type_)
